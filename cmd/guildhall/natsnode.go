package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	ghnats "github.com/guildhall/guildhall/nats"
)

// natsNode runs one NATS server node with JetStream, for a cluster of Guildhall
// tiers on machines that have no nats-server binary (see scripts/cluster.sh).
func natsNode(args []string) error {
	fs := flag.NewFlagSet("nats", flag.ContinueOnError)
	name := fs.String("name", "n1", "server name, unique in the cluster")
	host := fs.String("host", "127.0.0.1", "address to listen on")
	port := fs.Int("port", 4222, "client port")
	dir := fs.String("data", "./data/nats", "JetStream directory")
	cluster := fs.String("cluster", "guildhall", "cluster name")
	clusterPort := fs.Int("cluster-port", 0, "route port; 0 runs a single node")
	routes := fs.String("routes", "", "comma-separated nats-route://host:port of every node")
	leafPort := fs.Int("leaf-port", 0, "accept leaf-node connections (edge gateways) on this port")
	syncAlways := fs.Bool("sync-always", false, "fsync every JetStream write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := ghnats.ServerConfig{Name: *name, Host: *host, Port: *port, Dir: *dir, ClusterName: *cluster,
		ClusterPort: *clusterPort, LeafPort: *leafPort, SyncAlways: *syncAlways}
	if *routes != "" {
		cfg.Routes = strings.Split(*routes, ",")
	}
	s, err := ghnats.StartServer(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "guildhall: nats %s listening on %s\n", *name, s.ClientURL())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	s.Shutdown()
	s.WaitForShutdown()
	return nil
}

package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	ghnats "github.com/guildhall/guildhall/nats"
)

// natsNode runs one NATS server node with JetStream, for a cluster of Guildhall
// tiers on machines that have no nats-server binary (see scripts/cluster.sh), or
// an edge site's leaf node. `guildhall nats creds` creates a deployment's
// credentials instead.
func natsNode(args []string) error {
	if len(args) > 0 && args[0] == "creds" {
		return natsCreds(args[1:])
	}
	fs := flag.NewFlagSet("nats", flag.ContinueOnError)
	name := fs.String("name", "n1", "server name, unique in the cluster")
	host := fs.String("host", "127.0.0.1", "address to listen on")
	port := fs.Int("port", 4222, "client port")
	dir := fs.String("data", "./data/nats", "JetStream directory")
	creds := fs.String("creds", "", "directory of the bus credentials (`guildhall nats creds`): this node needs server.json, a leaf node leaf.nk too. Required")
	var tlsFiles ghnats.TLSFiles
	fs.StringVar(&tlsFiles.Cert, "tls-cert", "", "PEM certificate of this node: TLS on its client, route and leaf links")
	fs.StringVar(&tlsFiles.Key, "tls-key", "", "PEM key of --tls-cert")
	fs.StringVar(&tlsFiles.CA, "tls-ca", "", "PEM CA that signed every node's certificate: routes verify each other with it, leaf links the hub")
	cluster := fs.String("cluster", "guildhall", "cluster name")
	clusterPort := fs.Int("cluster-port", 0, "route port; 0 runs a single node")
	routes := fs.String("routes", "", "comma-separated nats-route://host:port of every node")
	advertise := fs.String("cluster-advertise", "", "host:port the other nodes dial this node's routes at (NAT, a proxy); empty means --host and --cluster-port")
	domain := fs.String("js-domain", "", "JetStream domain of this cluster, the same on every node: edge sites reach its JetStream by this name (--nats-js-domain of their processes). Required with --leaf-port")
	leafPort := fs.Int("leaf-port", 0, "accept leaf-node connections (edge sites) on this port; needs --js-domain")
	leafAdvertise := fs.String("leaf-advertise", "", "host:port leaf nodes are told to reconnect to (NAT, a proxy); empty means --host and --leaf-port")
	leafRemotes := fs.String("leaf-remotes", "", "run as an edge site's leaf node: comma-separated nats-leaf://host:port of the hub's leaf ports, alternatives for one link (no JetStream here: the site's processes use the hub's by its --js-domain)")
	syncAlways := fs.Bool("sync-always", false, "fsync every JetStream write")
	monitorPort := fs.Int("http-port", 0, "serve nats-server's monitoring endpoints (/varz, /connz, /routez, /leafz, /jsz) on --host at this port; 0 means none")
	if err := flagsFromEnv(fs, envPrefixed("GUILDHALL_NATS_"), os.LookupEnv); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *creds == "" {
		return errors.New("--creds DIR is required (create the set with `guildhall nats creds --out DIR`)")
	}
	auth, err := ghnats.LoadServerAuth(*creds)
	if err != nil {
		return err
	}
	cfg := ghnats.ServerConfig{Name: *name, Host: *host, Port: *port, Dir: *dir, ClusterName: *cluster,
		ClusterPort: *clusterPort, ClusterAdvertise: *advertise, JetStreamDomain: *domain,
		LeafPort: *leafPort, LeafAdvertise: *leafAdvertise, SyncAlways: *syncAlways, MonitorPort: *monitorPort, Auth: &auth, TLS: tlsFiles}
	if *routes != "" {
		cfg.Routes = strings.Split(*routes, ",")
	}
	if *leafRemotes != "" {
		cfg.LeafRemotes = strings.Split(*leafRemotes, ",")
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

// natsCreds writes a new credentials set for a deployment.
func natsCreds(args []string) error {
	fs := flag.NewFlagSet("nats creds", flag.ContinueOnError)
	out := fs.String("out", "", "directory to create the credentials in (mode 0700, files 0600). Required")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("usage: guildhall nats creds --out DIR")
	}
	if err := ghnats.GenerateCredentials(*out); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, `guildhall: bus credentials created in %s
  server.json   every NATS node (guildhall nats --creds DIR)
  api.nk writer.nk gateway.nk   processes of those roles (guildhall serve --nats-creds DIR)
  operator.nk   guildhall token create, and NATS administration
  leaf.nk       edge sites' leaf nodes
Copy to each machine only the files it needs.
`, *out)
	return nil
}

package nats

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ServerConfig configures an embedded nats-server. Zero values give a single node on
// 127.0.0.1 with a random client port and JetStream in Dir/jetstream.
type ServerConfig struct {
	// Name of the server; zero value means "guildhall".
	Name string
	// Host to listen on; zero value means 127.0.0.1.
	Host string
	// Port for clients; zero value means a random free port.
	Port int
	// Dir holds JetStream's file store. Required.
	Dir string
	// SyncAlways makes JetStream fsync every write (slower, survives power loss).
	// Zero value means JetStream's default periodic sync.
	SyncAlways bool
	// Cluster, when ClusterPort is non-zero, joins a cluster named ClusterName with the
	// given route URLs (nats-route://host:port).
	ClusterName string
	ClusterPort int
	Routes      []string
	// LeafPort, when non-zero, accepts leaf-node connections (edge gateways).
	LeafPort int
	// LeafRemotes connects this server as a leaf node to the given URLs.
	LeafRemotes []string
	// MaxStore bounds JetStream's file store in bytes; zero value means no bound but
	// the disk.
	MaxStore int64
}

// StartServer starts an embedded nats-server and waits until it accepts clients.
func StartServer(cfg ServerConfig) (*server.Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("nats: ServerConfig.Dir is required")
	}
	opts := &server.Options{
		ServerName:         cfg.Name,
		Host:               cfg.Host,
		Port:               cfg.Port,
		JetStream:          true,
		StoreDir:           filepath.Join(cfg.Dir, "jetstream"),
		SyncAlways:         cfg.SyncAlways,
		JetStreamMaxStore:  cfg.MaxStore,
		JetStreamMaxMemory: 256 << 20,
		NoSigs:             true,
		NoLog:              true,
		MaxPayload:         4 << 20,
	}
	if opts.ServerName == "" {
		opts.ServerName = "guildhall"
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.Port == 0 {
		opts.Port = server.RANDOM_PORT
	}
	if cfg.ClusterPort != 0 {
		opts.Cluster.Name = cfg.ClusterName
		opts.Cluster.Host = opts.Host
		opts.Cluster.Port = cfg.ClusterPort
		for _, r := range cfg.Routes {
			u, err := url.Parse(r)
			if err != nil {
				return nil, fmt.Errorf("nats: route %q: %w", r, err)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	if cfg.LeafPort != 0 {
		opts.LeafNode.Host = opts.Host
		opts.LeafNode.Port = cfg.LeafPort
	}
	for _, r := range cfg.LeafRemotes {
		u, err := url.Parse(r)
		if err != nil {
			return nil, fmt.Errorf("nats: leaf remote %q: %w", r, err)
		}
		opts.LeafNode.Remotes = append(opts.LeafNode.Remotes, &server.RemoteLeafOpts{URLs: []*url.URL{u}})
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats: new server: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, errors.New("nats: embedded server not ready after 30s")
	}
	return s, nil
}

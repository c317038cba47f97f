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
// 127.0.0.1 with a random client port and JetStream in Dir/jetstream; Dir and Auth
// are required.
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
	// ClusterAdvertise is the host:port other nodes are told to reach this node's
	// routes at, when that is not ClusterPort on Host (a proxy or NAT in between).
	// Zero value means Host:ClusterPort.
	ClusterAdvertise string
	// LeafPort, when non-zero, accepts leaf-node connections (edge gateways).
	LeafPort int
	// LeafAdvertise is the host:port leaf nodes are told to reconnect to, when
	// that is not LeafPort on Host (a proxy or NAT in between). Zero value means
	// Host:LeafPort.
	LeafAdvertise string
	// LeafRemotes connects this server as a leaf node to the given URLs (an edge
	// site): its link signs in with Auth.LeafSeed, and it runs no JetStream of its
	// own, so its clients' JetStream requests reach the hub's.
	LeafRemotes []string
	// Auth is who may connect: one nkey user per role with the role's
	// permissions, and the route secret (LoadServerAuth, EnsureCredentials).
	// Required: the bus has no unauthenticated mode.
	Auth *ServerAuth
	// TLS, when its Cert is set, is required on the client, route and leaf-node
	// links (routes verify both ends with TLS.CA; leaf links verify the hub with
	// it). Zero value means plaintext links.
	TLS TLSFiles
	// MaxStore bounds JetStream's file store in bytes; zero value means no bound but
	// the disk.
	MaxStore int64
}

// StartServer starts an embedded nats-server and waits until it accepts clients.
func StartServer(cfg ServerConfig) (*server.Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("nats: ServerConfig.Dir is required")
	}
	if cfg.Auth == nil {
		return nil, errors.New("nats: ServerConfig.Auth is required")
	}
	opts := &server.Options{
		ServerName:         cfg.Name,
		Host:               cfg.Host,
		Port:               cfg.Port,
		JetStream:          len(cfg.LeafRemotes) == 0,
		Nkeys:              cfg.Auth.users(),
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
	tlsOn := cfg.TLS.Cert != ""
	if tlsOn {
		c, err := cfg.TLS.serverConfig(false)
		if err != nil {
			return nil, err
		}
		opts.TLSConfig, opts.TLSTimeout = c, 5
	}
	if cfg.ClusterPort != 0 {
		opts.Cluster.Name = cfg.ClusterName
		opts.Cluster.Host = opts.Host
		opts.Cluster.Port = cfg.ClusterPort
		opts.Cluster.Advertise = cfg.ClusterAdvertise
		// Routes sign in with the route secret (every node accepts it and dials
		// with it, implicit routes too).
		opts.Cluster.Username = cfg.Auth.RouteUser
		opts.Cluster.Password = cfg.Auth.RoutePassword
		if tlsOn {
			c, err := cfg.TLS.serverConfig(true)
			if err != nil {
				return nil, err
			}
			opts.Cluster.TLSConfig, opts.Cluster.TLSTimeout = c, 5
		}
		for _, r := range cfg.Routes {
			u, err := url.Parse(r)
			if err != nil {
				return nil, fmt.Errorf("nats: route %q: %w", r, err)
			}
			u.User = url.UserPassword(cfg.Auth.RouteUser, cfg.Auth.RoutePassword)
			opts.Routes = append(opts.Routes, u)
		}
	}
	if cfg.LeafPort != 0 {
		// Leaf links sign in as users too (RoleLeaf, with a gateway's permissions).
		opts.LeafNode.Host = opts.Host
		opts.LeafNode.Port = cfg.LeafPort
		opts.LeafNode.Advertise = cfg.LeafAdvertise
		if tlsOn {
			c, err := cfg.TLS.serverConfig(false)
			if err != nil {
				return nil, err
			}
			opts.LeafNode.TLSConfig, opts.LeafNode.TLSTimeout = c, 5
		}
	}
	if cfg.LeafPort != 0 || len(cfg.LeafRemotes) > 0 {
		// One JetStream, the hub's, without domains: let the edge's JetStream API
		// requests cross the leaf link as they are (nats-server denies them by
		// default, expecting domains), so edge gateways run unchanged. The leaf
		// identity's permissions still bound what crosses.
		opts.JsAccDefaultDomain = map[string]string{server.DEFAULT_GLOBAL_ACCOUNT: ""}
	}
	if len(cfg.LeafRemotes) > 0 && cfg.Auth.LeafSeed == "" {
		return nil, errors.New("nats: a leaf node needs the leaf identity's seed (leaf.nk in the credentials)")
	}
	for _, r := range cfg.LeafRemotes {
		u, err := url.Parse(r)
		if err != nil {
			return nil, fmt.Errorf("nats: leaf remote %q: %w", r, err)
		}
		remote := &server.RemoteLeafOpts{URLs: []*url.URL{u}, Nkey: cfg.Auth.LeafSeed}
		if cfg.TLS.Enabled() {
			c, err := cfg.TLS.dialConfig()
			if err != nil {
				return nil, err
			}
			remote.TLS, remote.TLSConfig, remote.TLSTimeout = true, c, 5
		}
		opts.LeafNode.Remotes = append(opts.LeafNode.Remotes, remote)
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

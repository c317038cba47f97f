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
	// ClusterAdvertise is the host:port this node tells the others to dial its
	// routes at (behind NAT, or a proxy); zero value means its own route port.
	ClusterAdvertise string
	// JetStreamDomain names the JetStream of this server's cluster (the same on
	// every node). Processes at an edge site reach it by that name
	// ($JS.<domain>.API.…, ClientAuth.JSDomain): a leaf link does not carry the
	// unprefixed JetStream API. Zero value means no domain, which a server that
	// accepts leaf nodes may not have.
	JetStreamDomain string
	// LeafPort, when non-zero, accepts leaf-node connections (edge sites).
	LeafPort int
	// LeafAdvertise is the host:port leaf nodes are told to reconnect to, when
	// that is not LeafPort on Host (a proxy or NAT in between). Zero value means
	// Host:LeafPort.
	LeafAdvertise string
	// LeafRemotes connects this server as a leaf node to the given URLs (an edge
	// site): its link signs in with Auth.LeafSeed, and it runs no JetStream of its
	// own; its clients use the hub's through the hub's JetStreamDomain.
	LeafRemotes []string
	// Auth is who may connect: one nkey user per role with the role's
	// permissions, and the route secret (LoadServerAuth, EnsureCredentials).
	// Required: the bus has no unauthenticated mode.
	Auth *ServerAuth
	// TLS, when its Cert is set, is required on the client, route and leaf-node
	// links (routes verify both ends with TLS.CA; leaf links verify the hub with
	// it). Zero value means plaintext links.
	TLS TLSFiles
	// MonitorPort, when non-zero, serves nats-server's monitoring endpoints
	// (/varz, /connz, /routez, /leafz, /jsz) over HTTP on Host. Zero value means
	// none.
	MonitorPort int
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
	if cfg.LeafPort != 0 && cfg.JetStreamDomain == "" {
		return nil, errors.New("nats: a server that accepts leaf nodes needs a JetStream domain (the same on every node of its cluster): edge sites reach its JetStream by that name")
	}
	if len(cfg.LeafRemotes) > 0 && cfg.JetStreamDomain != "" {
		return nil, errors.New("nats: a leaf node runs no JetStream, so it has no JetStream domain: its clients name the hub's")
	}
	opts := &server.Options{
		ServerName:         cfg.Name,
		Host:               cfg.Host,
		Port:               cfg.Port,
		JetStream:          len(cfg.LeafRemotes) == 0,
		JetStreamDomain:    cfg.JetStreamDomain,
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
	if cfg.MonitorPort != 0 {
		opts.HTTPHost, opts.HTTPPort = opts.Host, cfg.MonitorPort
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
	if len(cfg.LeafRemotes) > 0 && cfg.Auth.LeafSeed == "" {
		return nil, errors.New("nats: a leaf node needs the leaf identity's seed (leaf.nk in the credentials)")
	}
	if len(cfg.LeafRemotes) > 0 {
		// One remote with every URL: the hub's nodes are alternatives for one
		// link, so a message crosses to the site once (a remote per URL would be a
		// link per hub node, each carrying every message the site wants).
		remote := &server.RemoteLeafOpts{Nkey: cfg.Auth.LeafSeed}
		for _, r := range cfg.LeafRemotes {
			u, err := url.Parse(r)
			if err != nil {
				return nil, fmt.Errorf("nats: leaf remote %q: %w", r, err)
			}
			remote.URLs = append(remote.URLs, u)
		}
		if cfg.TLS.Enabled() {
			c, err := cfg.TLS.dialConfig()
			if err != nil {
				return nil, err
			}
			remote.TLS, remote.TLSConfig, remote.TLSTimeout = true, c, 5
		}
		opts.LeafNode.Remotes = []*server.RemoteLeafOpts{remote}
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

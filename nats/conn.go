package nats

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Connect dials NATS at url (a comma-separated list for a cluster) and opens
// JetStream. It reconnects forever: a process of Guildhall is useless without NATS,
// and callers see the outage as failed requests, not as a dead connection. extra
// carries the identity (ClientAuth.Options); ConnectAs is the usual way in.
func Connect(url, name string, extra ...natsgo.Option) (*natsgo.Conn, jetstream.JetStream, error) {
	return connect(url, name, "", extra)
}

func connect(url, name, domain string, extra []natsgo.Option) (*natsgo.Conn, jetstream.JetStream, error) {
	opts := []natsgo.Option{
		natsgo.Name(name),
		natsgo.MaxReconnects(-1),
		natsgo.ReconnectWait(250 * time.Millisecond),
		natsgo.ReconnectJitter(100*time.Millisecond, time.Second),
		natsgo.RetryOnFailedConnect(true),
		// Bound what a slow subscriber may hold before NATS drops for it (it then
		// reports a slow-consumer error and the gateway fills the gap from the stream).
		natsgo.ReconnectBufSize(8 << 20),
		// A refused publish or subscribe is a bug or an attack, and NATS reports it
		// only asynchronously: say it.
		natsgo.ErrorHandler(func(_ *natsgo.Conn, sub *natsgo.Subscription, err error) {
			if errors.Is(err, natsgo.ErrPermissionViolation) {
				slog.Error("nats: permission violation", "conn", name, "err", err)
				return
			}
			if !errors.Is(err, natsgo.ErrSlowConsumer) {
				slog.Warn("nats: async error", "conn", name, "err", err)
			}
		}),
		// nats.go gives up after the server refused the credentials twice.
		natsgo.ClosedHandler(func(nc *natsgo.Conn) {
			if err := nc.LastError(); errors.Is(err, natsgo.ErrAuthorization) || errors.Is(err, natsgo.ErrAuthExpired) {
				slog.Error("nats: credentials refused; connection closed", "conn", name, "err", err)
			}
		}),
	}
	nc, err := natsgo.Connect(url, append(opts, extra...)...)
	if err != nil {
		return nil, nil, fmt.Errorf("nats: connect %s: %w", url, err)
	}
	js, err := NewJetStream(nc, domain)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// NewJetStream opens a JetStream context on nc in domain (see
// ClientAuth.JSDomain; "" is the JetStream of nc's own cluster).
func NewJetStream(nc *natsgo.Conn, domain string, opts ...jetstream.JetStreamOpt) (jetstream.JetStream, error) {
	var js jetstream.JetStream
	var err error
	if domain == "" {
		js, err = jetstream.New(nc, opts...)
	} else {
		js, err = jetstream.NewWithDomain(nc, domain, opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("nats: jetstream: %w", err)
	}
	return js, nil
}

// JetStreamLike opens another JetStream context on nc, with opts, in the
// domain of like: a component that needs its own options (a publish timeout)
// uses the same JetStream as the rest of its process.
func JetStreamLike(nc *natsgo.Conn, like jetstream.JetStream, opts ...jetstream.JetStreamOpt) (jetstream.JetStream, error) {
	domain := ""
	if like != nil {
		domain = like.Options().Domain
	}
	return NewJetStream(nc, domain, opts...)
}

// apiPrefix is the subject prefix of js's JetStream API requests: "$JS.API.",
// or "$JS.<domain>.API." in a domain: for the requests made without the
// jetstream package (a batch direct get, a get from the leader).
func apiPrefix(js jetstream.JetStream) string {
	o := js.Options()
	switch {
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	case o.APIPrefix != "":
		return strings.TrimSuffix(o.APIPrefix, ".") + "."
	}
	return jsAPI
}

// ClientAuth is how a process signs in to the bus: the deployment's credentials
// directory, from which it uses the seed of the role it connects as, and TLS.
type ClientAuth struct {
	// Dir holds <role>.nk (see GenerateCredentials). Required.
	Dir string
	// TLS: CA verifies the server; Cert and Key, when set, are presented to it.
	// Zero value means plaintext.
	TLS TLSFiles
	// JSDomain is the JetStream domain this process's JetStream contexts use
	// (ServerConfig.JetStreamDomain of the hub): set it for a process at an edge
	// site, whose NATS server is a leaf node without JetStream. Zero value means
	// the JetStream of the cluster the process connects to, unprefixed.
	JSDomain string
}

// Options are the nats.go options that connect as role: its nkey, its own inbox
// prefix (the only replies it may subscribe to), and TLS.
func (a ClientAuth) Options(role Role) ([]natsgo.Option, error) {
	if a.Dir == "" {
		return nil, errors.New("nats: no credentials directory")
	}
	nkey, err := natsgo.NkeyOptionFromSeed(SeedFile(a.Dir, role))
	if err != nil {
		return nil, fmt.Errorf("nats: %s credentials: %w", role, err)
	}
	opts := []natsgo.Option{nkey, natsgo.CustomInboxPrefix(role.InboxPrefix())}
	tlsOpts, err := a.TLS.clientOptions()
	if err != nil {
		return nil, err
	}
	return append(opts, tlsOpts...), nil
}

// ConnectAs dials NATS as role (see Connect), its JetStream in auth.JSDomain.
func ConnectAs(url, name string, role Role, auth ClientAuth, extra ...natsgo.Option) (*natsgo.Conn, jetstream.JetStream, error) {
	opts, err := auth.Options(role)
	if err != nil {
		return nil, nil, err
	}
	return connect(url, name, auth.JSDomain, append(opts, extra...))
}

package nats

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	natsgo "github.com/nats-io/nats.go"
)

// TLSFiles are the PEM files of TLS on the bus. Zero value means no TLS.
type TLSFiles struct {
	// Cert and Key are this process's certificate and key. A server serves them on
	// its client, route and leaf-node listeners and presents them on the routes and
	// leaf links it dials; a client presents them to the server (optional: clients
	// authenticate with their nkey).
	Cert, Key string
	// CA verifies the other side: a client or a leaf link verifies the server, and
	// both ends of a route verify each other.
	CA string
}

// Enabled reports whether any file is set.
func (t TLSFiles) Enabled() bool { return t.Cert != "" || t.Key != "" || t.CA != "" }

func (t TLSFiles) certificate() ([]tls.Certificate, error) {
	if t.Cert == "" && t.Key == "" {
		return nil, nil
	}
	if t.Cert == "" || t.Key == "" {
		return nil, errors.New("nats: TLS needs both a certificate and its key")
	}
	c, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil {
		return nil, fmt.Errorf("nats: TLS certificate: %w", err)
	}
	return []tls.Certificate{c}, nil
}

func (t TLSFiles) pool() (*x509.CertPool, error) {
	if t.CA == "" {
		return nil, nil
	}
	b, err := os.ReadFile(t.CA)
	if err != nil {
		return nil, fmt.Errorf("nats: TLS CA: %w", err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("nats: TLS CA %s: no PEM certificate in it", t.CA)
	}
	return p, nil
}

// serverConfig is the TLS of a server's listener. mutual (routes) also makes it
// the config the server dials with: both ends present a certificate the CA
// signed.
func (t TLSFiles) serverConfig(mutual bool) (*tls.Config, error) {
	certs, err := t.certificate()
	if err != nil {
		return nil, err
	}
	if certs == nil {
		return nil, errors.New("nats: a TLS server needs a certificate and key")
	}
	pool, err := t.pool()
	if err != nil {
		return nil, err
	}
	c := &tls.Config{Certificates: certs, MinVersion: tls.VersionTLS12}
	if mutual {
		if pool == nil {
			return nil, errors.New("nats: TLS between servers needs the CA that signed their certificates")
		}
		c.ClientCAs, c.RootCAs, c.ClientAuth = pool, pool, tls.RequireAndVerifyClientCert
	}
	return c, nil
}

// dialConfig is the TLS of a link this process dials (a leaf node's link).
func (t TLSFiles) dialConfig() (*tls.Config, error) {
	certs, err := t.certificate()
	if err != nil {
		return nil, err
	}
	pool, err := t.pool()
	if err != nil {
		return nil, err
	}
	if pool == nil {
		return nil, errors.New("nats: a TLS link needs the CA that signed the server's certificate")
	}
	return &tls.Config{Certificates: certs, RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// clientOptions make a client verify the server with CA (and present its own
// certificate when set). With a CA the client insists on TLS.
func (t TLSFiles) clientOptions() ([]natsgo.Option, error) {
	if !t.Enabled() {
		return nil, nil
	}
	c, err := t.dialConfig()
	if err != nil {
		return nil, err
	}
	return []natsgo.Option{natsgo.Secure(c)}, nil
}

package nats

import (
	"fmt"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Connect dials NATS at url (a comma-separated list for a cluster) and opens
// JetStream. It reconnects forever: a process of Guildhall is useless without NATS,
// and callers see the outage as failed requests, not as a dead connection.
func Connect(url, name string, extra ...natsgo.Option) (*natsgo.Conn, jetstream.JetStream, error) {
	opts := []natsgo.Option{
		natsgo.Name(name),
		natsgo.MaxReconnects(-1),
		natsgo.ReconnectWait(250 * time.Millisecond),
		natsgo.ReconnectJitter(100*time.Millisecond, time.Second),
		natsgo.RetryOnFailedConnect(true),
		// Bound what a slow subscriber may hold before NATS drops for it (it then
		// reports a slow-consumer error and the gateway fills the gap from the stream).
		natsgo.ReconnectBufSize(8 << 20),
	}
	nc, err := natsgo.Connect(url, append(opts, extra...)...)
	if err != nil {
		return nil, nil, fmt.Errorf("nats: connect %s: %w", url, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("nats: jetstream: %w", err)
	}
	return nc, js, nil
}

package messaging_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/guildhall/guildhall/testenv"
)

// TestWriterLagWhileStoreFails: while the store fails, the writer lag gauge shows
// the backlog building up in the stream (it was stuck at its last value, 0 after an
// idle stream, so an alert on writer lag could not fire during a database outage),
// and it goes back to 0 once the store is back and the backlog is written.
func TestWriterLagWhileStoreFails(t *testing.T) {
	t.Parallel()
	r := newWriterRig(t)
	r.run(r.writer(4))
	r.post("before")
	testenv.Eventually(t, 10*time.Second, func() error {
		if n := len(r.history()); n != 1 {
			return fmt.Errorf("store has %d messages; want 1", n)
		}
		return nil
	})

	r.store.failing.Store(true)
	for i := range 20 {
		r.post(fmt.Sprintf("m%d", i))
	}
	// 21 events were published; 1 is persisted: the 20 others are unacknowledged
	// (the writer's batch of 4) or pending.
	testenv.Eventually(t, 20*time.Second, func() error {
		if got := counter(r.metrics.WriterLag); got != 20 {
			return fmt.Errorf("writer lag = %v while the store fails; want 20", got)
		}
		return nil
	})

	r.store.failing.Store(false)
	testenv.Eventually(t, 20*time.Second, func() error {
		if n := len(r.history()); n != 21 {
			return fmt.Errorf("store has %d messages; want 21", n)
		}
		if got := counter(r.metrics.WriterLag); got != 0 {
			return fmt.Errorf("writer lag = %v after the backlog was written; want 0", got)
		}
		return nil
	})
}

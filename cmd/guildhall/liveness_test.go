package main

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/guildhall/guildhall/registry"
	"github.com/guildhall/guildhall/testenv"
)

// Session liveness without per-session writes: each gateway process beats in the
// session registry; a session is resumable for the window after its client left
// or its gateway's last beat. These tests run gateways as child processes, kill
// them with SIGKILL and restart them under the same node name.

// identified is a session identified on a gateway: its token, id and connection.
type identified struct {
	token, id string
	readySeq  uint64 // READY's s: the session's start
	c         *testenv.GatewayClient
}

func identifyOn(t *testing.T, url, token string) identified {
	t.Helper()
	c := testenv.DialGateway(t, url)
	ready := c.Identify(token)
	var r struct {
		SessionID string `json:"session_id"`
	}
	_ = jsonUnmarshal(ready.D, &r)
	c.WaitFor(t, "GUILD_CREATE", 10*time.Second)
	return identified{token: token, id: r.SessionID, readySeq: ready.Seq(), c: c}
}

// resumeOutcome resumes s on url and reports whether it was RESUMED (the
// connection) or refused with INVALID_SESSION; a 4000 ("try again") is retried
// as a client would.
func resumeOutcome(t *testing.T, url string, s identified) (*testenv.GatewayClient, bool) {
	t.Helper()
	for attempt := 0; attempt < 5; attempt++ {
		c := testenv.DialGateway(t, url)
		c.WaitFor(t, "op:10", 10*time.Second)
		if err := c.Resume(s.token, s.id, s.c.LastSeq()); err != nil {
			t.Fatal(err)
		}
		for {
			p, err := c.Next(20 * time.Second)
			if err != nil {
				break // closed (4000): try again
			}
			switch {
			case p.T == "RESUMED":
				return c, true
			case p.Op == 9:
				if string(p.D) != "false" {
					t.Fatalf("INVALID_SESSION d = %s; want false", p.D)
				}
				return c, false
			}
		}
	}
	t.Fatalf("session %s: no RESUMED or INVALID_SESSION after 5 attempts", s.id)
	return nil, false
}

// A gateway dies without goodbye (SIGKILL): its sessions resume on another
// gateway within the resume window after its last heartbeat, with what they
// missed, and are refused after it.
func TestKilledGatewaySessionsResumableForTheWindow(t *testing.T) {
	testenv.SkipShort(t, "cluster test")
	const window = 5 * time.Second
	tf := newTier(t, 2, "--resume-window", window.String())
	gwA := startGatewayProcess(t, tf.cluster.URLs[1], tf.cluster.Creds)
	gwB := startGatewayProcess(t, tf.cluster.URLs[2], tf.cluster.Creds)
	early, late := identifyOn(t, gwA.url(), tf.users[0]), identifyOn(t, gwA.url(), tf.users[1])

	gwA.kill(syscall.SIGKILL)
	killed := time.Now()
	missed := tf.api.post(t, tf.owner, tf.g1.channel, "while the gateway was dead")
	early.c.WaitClose(10 * time.Second)
	c, ok := resumeOutcome(t, gwB.url(), early)
	if !ok {
		t.Fatalf("resume %v after the kill refused; want RESUMED within the %v window", time.Since(killed), window)
	}
	if !replayed(c, missed.ID) {
		t.Fatalf("the resume did not replay the message missed while away (got %d messages)", len(c.Dispatches("MESSAGE_CREATE")))
	}

	time.Sleep(time.Until(killed.Add(window + 2*time.Second)))
	if _, ok := resumeOutcome(t, gwB.url(), late); ok {
		t.Fatalf("resume %v after the kill was RESUMED; want INVALID_SESSION past the %v window", time.Since(killed), window)
	}
}

// A session that stays connected for several windows costs no registry writes
// (its entry keeps its revision) and still resumes after its client drops, on
// the same gateway and, after a second drop, on another one.
func TestLiveSessionResumesAfterSeveralWindows(t *testing.T) {
	testenv.SkipShort(t, "cluster test")
	const window = 2 * time.Second
	tf := newTier(t, 1, "--resume-window", window.String())
	gwA := startGatewayProcess(t, tf.cluster.URLs[1], tf.cluster.Creds)
	gwB := startGatewayProcess(t, tf.cluster.URLs[2], tf.cluster.Creds)
	s := identifyOn(t, gwA.url(), tf.users[0])
	reg, err := registry.Open(context.Background(), tf.cluster.JS)
	if err != nil {
		t.Fatal(err)
	}
	// The entry is written before READY and raised to READY's s after it was
	// queued (the identify writes twice); count the writes from there on.
	var before registry.Session
	testenv.Eventually(t, 10*time.Second, func() error {
		if before, err = reg.Get(context.Background(), s.id); err != nil {
			return err
		}
		if before.Start < s.readySeq {
			return fmt.Errorf("the entry's start is %d; READY's s is %d", before.Start, s.readySeq)
		}
		return nil
	})
	for i := range 4 {
		time.Sleep(window)
		tf.api.post(t, tf.owner, tf.g1.channel, fmt.Sprintf("live %d", i))
	}
	s.c.WaitFor(t, "MESSAGE_CREATE", 10*time.Second)
	after, err := reg.Get(context.Background(), s.id)
	if err != nil {
		t.Fatal(err)
	}
	if after.Revision != before.Revision {
		t.Fatalf("the live session's entry was rewritten (revision %d → %d); want no writes", before.Revision, after.Revision)
	}

	s.c.Drop()
	missed := tf.api.post(t, tf.owner, tf.g1.channel, "while dropped")
	c, ok := resumeOutcome(t, gwA.url(), s)
	if !ok {
		t.Fatalf("a session live for %v was refused on resume right after its drop", 4*window)
	}
	if !replayed(c, missed.ID) {
		t.Fatalf("the resume did not replay the message missed while away (got %d messages)", len(c.Dispatches("MESSAGE_CREATE")))
	}
	// Its entry says where it is now; it is live again, on A.
	time.Sleep(2 * window)
	s.c = c
	c.Drop()
	if _, ok := resumeOutcome(t, gwB.url(), s); !ok {
		t.Fatal("the resumed session, live for two more windows, was refused on another gateway after its drop")
	}
}

// A gateway restarted under the same node name is a new incarnation: the
// sessions of the killed process resume on it within the window after the
// kill, and are refused after that window although the node beats again.
func TestGatewayRestartSameNodeName(t *testing.T) {
	testenv.SkipShort(t, "cluster test")
	const window = 5 * time.Second
	tf := newTier(t, 2, "--resume-window", window.String())
	gw := startGatewayProcess(t, tf.cluster.URLs[1], tf.cluster.Creds, "--node", "gw-same")
	early, late := identifyOn(t, gw.url(), tf.users[0]), identifyOn(t, gw.url(), tf.users[1])

	gw.kill(syscall.SIGKILL)
	killed := time.Now()
	<-gw.done
	gw = startGatewayProcess(t, tf.cluster.URLs[1], tf.cluster.Creds, "--node", "gw-same")
	if _, ok := resumeOutcome(t, gw.url(), early); !ok {
		t.Fatalf("resume on the restarted node %v after the kill refused; want RESUMED", time.Since(killed))
	}
	time.Sleep(time.Until(killed.Add(window + 2*time.Second)))
	if _, ok := resumeOutcome(t, gw.url(), late); ok {
		t.Fatal("a session of the killed incarnation resumed past the window: judged by the new incarnation's heartbeat")
	}
	// The new incarnation's own sessions are fine.
	fresh := identifyOn(t, gw.url(), tf.users[1])
	fresh.c.Drop()
	if _, ok := resumeOutcome(t, gw.url(), fresh); !ok {
		t.Fatal("a session of the new incarnation was refused right after its drop")
	}
}

// replayed reports whether c received the message id (a resume's replay comes
// before RESUMED).
func replayed(c *testenv.GatewayClient, id string) bool {
	for _, p := range c.Dispatches("MESSAGE_CREATE") {
		var m message
		if jsonUnmarshal(p.D, &m) == nil && m.ID == id {
			return true
		}
	}
	return false
}

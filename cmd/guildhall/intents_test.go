package main

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/testenv"
)

// Sessions get the events their intents ask for, message content only with
// MESSAGE_CONTENT (or for their own messages), and a resumed session keeps its
// intents for the replayed and the live events alike.
func TestIntentsFilterEventsAndContent(t *testing.T) {
	s := startStack(t, t.TempDir())
	f := newGuildFixture(t, s)
	const (
		guilds    = int64(guildhall.IntentGuilds)
		noContent = int64(guildhall.IntentGuilds | guildhall.IntentGuildMessages)
	)
	identify := func(token string, intents int64) (*testenv.GatewayClient, string) {
		c := testenv.DialGateway(t, s.gatewayURL())
		c.WaitFor(t, "op:10", 5*time.Second)
		ready := c.IdentifyWithIntents(token, intents)
		c.WaitFor(t, "GUILD_CREATE", 5*time.Second)
		return c, decode[struct {
			SessionID string `json:"session_id"`
		}](t, ready.D).SessionID
	}
	owner := testenv.DialGateway(t, s.gatewayURL())
	owner.Identify(f.ownerToken) // every intent
	owner.WaitFor(t, "GUILD_CREATE", 5*time.Second)
	guildsOnly, _ := identify(f.memberToken, guilds)
	member, sessionID := identify(f.memberToken, noContent)

	// contents returns the content each message in ids arrived with, once all have.
	contents := func(c *testenv.GatewayClient, ids ...string) map[string]string {
		t.Helper()
		got := map[string]string{}
		testenv.Eventually(t, 10*time.Second, func() error {
			got = map[string]string{}
			for _, p := range c.Dispatches("MESSAGE_CREATE") {
				m := decode[message](t, p.D)
				got[m.ID] = m.Content
			}
			for _, id := range ids {
				if _, ok := got[id]; !ok {
					return fmt.Errorf("message %s not received yet", id)
				}
			}
			return nil
		})
		return got
	}
	createChannel := func(name string) string {
		var ch struct{ ID string }
		s.rest.Must(t, http.StatusCreated, "POST", "/guilds/"+f.guildID+"/channels", f.ownerToken, map[string]any{"name": name, "type": 0}, &ch)
		return ch.ID
	}

	theirs := s.post(t, f.ownerToken, f.channelID, "owner's words")
	mine := s.post(t, f.memberToken, f.channelID, "member's words")
	s.rest.Must(t, http.StatusNoContent, "POST", "/channels/"+f.channelID+"/typing", f.ownerToken, nil, nil)
	owner.WaitFor(t, "TYPING_START", 10*time.Second)
	if got := contents(owner, theirs.ID, mine.ID); got[theirs.ID] != "owner's words" || got[mine.ID] != "member's words" {
		t.Errorf("session with every intent got contents %q", got)
	}
	if got := contents(member, theirs.ID, mine.ID); got[theirs.ID] != "" || got[mine.ID] != "member's words" {
		t.Errorf("session without MESSAGE_CONTENT got contents %q; want the other's empty, its own", got)
	}
	// A channel created after everything above reaches the GUILDS-only session;
	// frames reach a session in order, so by then anything else would have too.
	barrier := createChannel("barrier")
	testenv.Eventually(t, 10*time.Second, func() error {
		for _, p := range guildsOnly.Dispatches("CHANNEL_CREATE") {
			if decode[struct{ ID string }](t, p.D).ID == barrier {
				return nil
			}
		}
		return fmt.Errorf("GUILDS-only session has no CHANNEL_CREATE %s yet", barrier)
	})
	for _, name := range []string{"MESSAGE_CREATE", "TYPING_START"} {
		if n := len(guildsOnly.Dispatches(name)); n != 0 {
			t.Errorf("GUILDS-only session received %d %s", n, name)
		}
	}

	// Resume twice: first while other sessions keep the guild's room on the
	// gateway (its recent events can serve the replay), then with none left (the
	// replay reads the stream). Either way the intents are the original session's.
	resume := func(round int) {
		seq := member.LastSeq()
		member.Drop()
		missed := s.post(t, f.ownerToken, f.channelID, fmt.Sprintf("missed %d", round))
		ownMissed := s.post(t, f.memberToken, f.channelID, fmt.Sprintf("own missed %d", round))
		member = testenv.DialGateway(t, s.gatewayURL())
		member.WaitFor(t, "op:10", 5*time.Second)
		if err := member.Resume(f.memberToken, sessionID, seq); err != nil {
			t.Fatal(err)
		}
		member.WaitFor(t, "RESUMED", 10*time.Second)
		live := s.post(t, f.ownerToken, f.channelID, fmt.Sprintf("live %d", round))
		got := contents(member, missed.ID, ownMissed.ID, live.ID)
		if got[missed.ID] != "" || got[live.ID] != "" || got[ownMissed.ID] != ownMissed.Content {
			t.Errorf("round %d: resumed session got contents %q; want only its own", round, got)
		}
	}
	resume(1)
	owner.Close(1000)
	guildsOnly.Close(1000)
	for _, c := range []*testenv.GatewayClient{owner, guildsOnly} {
		_, _ = c.WaitClose(5 * time.Second)
	}
	resume(2)
}

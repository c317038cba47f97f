package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/guildhall/guildhall/testenv"
)

// groupEvents lists what a session received of a group DM's life, as "TYPE
// channel subject" strings in order: the subject is the user a
// CHANNEL_RECIPIENT_REMOVE names, the owner of a CHANNEL_UPDATE, the author of
// a MESSAGE_CREATE.
func groupEvents(t *testing.T, c *testenv.GatewayClient, channel string) []string {
	t.Helper()
	var out []string
	for _, p := range c.All() {
		if p.Op != 0 {
			continue
		}
		var d struct {
			ID        string `json:"id"`
			ChannelID string `json:"channel_id"`
			OwnerID   string `json:"owner_id"`
			User      struct {
				ID string `json:"id"`
			} `json:"user"`
			Author struct {
				ID string `json:"id"`
			} `json:"author"`
		}
		_ = json.Unmarshal(p.D, &d)
		var subject string
		switch p.T {
		case "CHANNEL_CREATE", "CHANNEL_DELETE":
			if d.ID != channel {
				continue
			}
		case "CHANNEL_UPDATE":
			if d.ID != channel {
				continue
			}
			subject = d.OwnerID
		case "CHANNEL_RECIPIENT_REMOVE":
			if d.ChannelID != channel {
				continue
			}
			subject = d.User.ID
		case "MESSAGE_CREATE":
			if d.ChannelID != channel {
				continue
			}
			subject = d.Author.ID
		default:
			continue
		}
		out = append(out, strings.TrimSpace(p.T+" "+subject))
	}
	return out
}

// TestGroupDMLeaveLive: the creator of a group DM leaves it (DELETE
// /channels/{id}); their live sessions receive CHANNEL_DELETE, the others
// CHANNEL_RECIPIENT_REMOVE and the group's new owner (CHANNEL_UPDATE), and from
// then on the group's messages reach the others only. The leaver's READY no
// longer lists it.
func TestGroupDMLeaveLive(t *testing.T) {
	s := startStack(t, t.TempDir())
	f := newGuildFixture(t, s)
	var inv struct {
		Code string `json:"code"`
	}
	s.rest.Must(t, http.StatusOK, "POST", "/channels/"+f.channelID+"/invites", f.ownerToken, map[string]any{}, &inv)
	s.rest.Must(t, http.StatusOK, "POST", "/invites/"+inv.Code, f.outsiderToken, nil, nil)
	third, thirdID := f.outsiderToken, f.outsiderID

	sessions := map[string]*testenv.GatewayClient{}
	for name, tok := range map[string]string{"member": f.memberToken, "owner": f.ownerToken, "third": third} {
		c := testenv.DialGateway(t, s.gatewayURL())
		c.Identify(tok)
		c.WaitFor(t, "GUILD_CREATE", 5*time.Second)
		sessions[name] = c
	}
	var group dmChannel
	s.rest.Must(t, http.StatusOK, "POST", "/users/@me/channels", f.memberToken, map[string]any{"recipients": []string{f.ownerID, thirdID}}, &group)
	s.post(t, f.ownerToken, group.ID, "before")
	var left dmChannel
	s.rest.Must(t, http.StatusOK, "DELETE", "/channels/"+group.ID, f.memberToken, nil, &left)
	if left.ID != group.ID {
		t.Errorf("DELETE /channels/{group} = %+v; want the group", left)
	}
	s.post(t, third, group.ID, "after")

	// The owner passes to the first who stayed: the guild owner, named first.
	stayed := []string{"CHANNEL_CREATE", "MESSAGE_CREATE " + f.ownerID, "CHANNEL_RECIPIENT_REMOVE " + f.memberID, "CHANNEL_UPDATE " + f.ownerID, "MESSAGE_CREATE " + thirdID}
	for _, c := range []struct {
		name string
		want []string
	}{
		{"member", []string{"CHANNEL_CREATE", "MESSAGE_CREATE " + f.ownerID, "CHANNEL_DELETE"}},
		{"owner", stayed},
		{"third", stayed},
	} {
		var got []string
		testenv.Eventually(t, 10*time.Second, func() error {
			if got = groupEvents(t, sessions[c.name], group.ID); len(got) < len(c.want) {
				return fmt.Errorf("%s: %d of %d events: %v", c.name, len(got), len(c.want), got)
			}
			return nil
		})
		time.Sleep(100 * time.Millisecond) // anything extra would have come by now
		if got = groupEvents(t, sessions[c.name], group.ID); !slices.Equal(got, c.want) {
			t.Errorf("%s received\n%s\nwant\n%s", c.name, strings.Join(got, "\n"), strings.Join(c.want, "\n"))
		}
	}

	// A new session of the leaver: READY does not list the group.
	again := testenv.DialGateway(t, s.gatewayURL())
	ready := again.Identify(f.memberToken) // waits for READY
	var r struct {
		PrivateChannels []struct {
			ID string `json:"id"`
		} `json:"private_channels"`
	}
	if err := json.Unmarshal(ready.D, &r); err != nil {
		t.Fatal(err)
	}
	for _, c := range r.PrivateChannels {
		if c.ID == group.ID {
			t.Errorf("the leaver's READY lists the group %s", group.ID)
		}
	}
	status, _ := s.rest.Do(t, "POST", "/channels/"+group.ID+"/messages", f.memberToken, map[string]string{"content": "let me back"}, nil)
	if status != http.StatusForbidden {
		t.Errorf("the leaver posts in the group = %d; want 403", status)
	}
}

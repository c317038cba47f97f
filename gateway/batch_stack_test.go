package gateway_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/gateway"
	"github.com/guildhall/guildhall/testenv"
)

// A gateway that is behind (its pump held while messages of two guilds arrive
// through the real stream) catches up with fewer writes than frames, and every
// session still gets every message of its guilds once, with s rising; a session
// in both guilds gets them interleaved in stream order.
func TestBatchedCatchUpExactAndInOrder(t *testing.T) {
	users := newSeedUsers(3_100_000, "bt", 4)
	st := startPresenceStack(t, stackOptions{gateways: 1, presence: fastPresence, seed: func(path string) {
		seedBolt(t, path,
			seedGuild{ID: smallGuild, ChannelID: smallChannel, Users: users},
			seedGuild{ID: otherGuild, ChannelID: otherChannel, Users: users[:2]})
	}})
	url := st.gws[0].url
	clients := make([]*testenv.GatewayClient, len(users))
	for i, u := range users {
		c, err := connect(t, url, u.Token, nil)
		if err != nil {
			t.Fatal(err)
		}
		clients[i] = c
	}
	// Presence of the sessions that just came online settles before the count.
	time.Sleep(500 * time.Millisecond)
	frames0 := counterValue(t, st, "guildhall_gateway_frames_written_total", "", "")
	writes0 := counterValue(t, st, "guildhall_gateway_socket_writes_total", "", "")

	waiting, release := gateway.PausePump(st.gws[0].g)
	// Runs of 8 messages in one guild and 4 in the other: the pump delivers each
	// run together and ends a batch where the guild changes.
	const posts = 24
	otherAt := func(i int) bool { return i%12 >= 8 }
	var inSmall, inOther []string
	for i := range posts {
		ch, list := smallChannel, &inSmall
		if otherAt(i) {
			ch, list = otherChannel, &inOther
		}
		*list = append(*list, postMessage(t, st, users[0].Token, ch, fmt.Sprintf("b%02d", i)))
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		if n := waiting(); n < posts {
			return fmt.Errorf("%d of %d messages waiting for the pump", n, posts)
		}
		return nil
	})
	release()

	for i, c := range clients {
		want := len(inSmall)
		if i < 2 {
			want += len(inOther)
		}
		testenv.Eventually(t, 30*time.Second, func() error {
			if n := len(c.Dispatches(guildhall.EventMessageCreate)); n < want {
				return fmt.Errorf("client %d has %d of %d messages", i, n, want)
			}
			return nil
		})
		var ids []string
		var last uint64
		for _, p := range c.Dispatches(guildhall.EventMessageCreate) {
			if p.Seq() <= last {
				t.Fatalf("client %d: s=%d after s=%d", i, p.Seq(), last)
			}
			last = p.Seq()
			var m struct{ ID string }
			_ = json.Unmarshal(p.D, &m)
			ids = append(ids, m.ID)
		}
		wantIDs := inSmall
		if i < 2 {
			wantIDs = nil
			for j, k := 0, 0; j+k < posts; {
				if otherAt(j + k) {
					wantIDs = append(wantIDs, inOther[k])
					k++
				} else {
					wantIDs = append(wantIDs, inSmall[j])
					j++
				}
			}
		}
		if fmt.Sprint(ids) != fmt.Sprint(wantIDs) {
			t.Fatalf("client %d got messages %v\nwant %v", i, ids, wantIDs)
		}
	}
	frames := counterValue(t, st, "guildhall_gateway_frames_written_total", "", "") - frames0
	writes := counterValue(t, st, "guildhall_gateway_socket_writes_total", "", "") - writes0
	t.Logf("catching up: %v frames in %v writes", frames, writes)
	if wantFrames := float64(2*posts + 2*len(inSmall)); frames < wantFrames || writes*4 > frames {
		t.Fatalf("catching up: %v frames in %v writes; want at least %d frames, 4 or more per write", frames, writes, 2*posts+2*len(inSmall))
	}
}

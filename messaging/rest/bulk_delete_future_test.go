package rest_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
)

// A bulk delete names ids; the store keeps a delete as a tombstone that no
// later write of the id undoes (deletes are final, whatever order the writer
// sees them in). So a bulk delete of ids that no message has yet would delete
// messages before they are posted: snowflakes are predictable (a millisecond,
// the api's node, and a count that starts at 0 each millisecond), and whoever
// may manage a channel's messages could make the coming posts of everyone
// vanish from history while their senders were told they were sent and the
// channel saw them live, with no MESSAGE_DELETE. Ids of messages that do not
// exist delete nothing (MESSAGE_DELETE_BULK names the ones that do).
func TestBulkDeleteCannotPredelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	f := e.fixture()
	old := e.post(f.member.token, f.channel, "an old message")
	oldID := sf(t, old.ID)
	node := uint64(oldID) >> 12 & 1023

	// Aim at the ids the api will give the first message of each millisecond
	// of a window a little ahead; a machine too slow to post in the window
	// tries again further ahead.
	var posted []messageJSON
	aimed := 0
	for attempt, lead := range []time.Duration{300 * time.Millisecond, time.Second, 3 * time.Second} {
		start := time.Now().Add(lead)
		var predicted []guildhall.Snowflake
		for i := range 99 {
			ms := uint64(start.Add(time.Duration(i)*time.Millisecond).UnixMilli() - guildhall.Epoch)
			predicted = append(predicted, guildhall.Snowflake(ms<<22|node<<12))
		}
		ids := append([]guildhall.Snowflake{oldID}, predicted...)
		e.api.Must(t, http.StatusNoContent, "POST", "/channels/"+f.channel+"/messages/bulk-delete", f.owner.token, map[string]any{"messages": ids}, nil)
		if attempt == 0 {
			ev := wantLastEvent(t, e, ghnats.GuildInSubject(mustID(t, f.guild)), guildhall.EventMessageDeleteBulk)
			var bulk guildhall.MessageDeleteBulk
			must(t, json.Unmarshal(ev.Data, &bulk))
			if !slices.Equal(bulk.IDs, []guildhall.Snowflake{oldID}) {
				t.Errorf("MESSAGE_DELETE_BULK names %d ids; want only the one message that exists, %v", len(bulk.IDs), oldID)
			}
		}
		// Posts through the window: those that got a predicted id must be in
		// history like the others.
		time.Sleep(time.Until(start.Add(-20 * time.Millisecond)))
		for time.Now().Before(start.Add(120 * time.Millisecond)) {
			m := e.post(f.member.token, f.channel, "posted after the bulk delete")
			posted = append(posted, m)
			if slices.Contains(predicted, sf(t, m.ID)) {
				aimed++
			}
		}
		if aimed > 0 {
			break
		}
	}
	if aimed == 0 {
		t.Fatalf("none of %d posts got a predicted id: the test missed its aim (node %d)", len(posted), node)
	}
	for _, m := range posted {
		st, raw := e.api.Do(t, "GET", "/channels/"+f.channel+"/messages/"+m.ID, f.member.token, nil, nil)
		if st != http.StatusOK {
			t.Errorf("message %s, posted (200) after a bulk delete named its id before it existed: GET = %d %s", m.ID, st, raw)
		}
	}
	t.Logf("%d posts, %d on a predicted id", len(posted), aimed)
}

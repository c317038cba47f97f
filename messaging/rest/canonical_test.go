package rest_test

import (
	"net/http"
	"testing"
	"time"
)

// A snowflake has one spelling: 000<id>, +<id> and the like are Unknown X, and
// they do not open a rate-limit bucket of their own (before, 000<id> gave a
// fresh 5-per-5 s bucket per spelling).
func TestNonCanonicalIDs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{rest: restLimits(2, time.Minute)})
	f := e.fixture()
	m := e.post(f.member.token, f.channel, "one")

	for _, c := range []struct {
		method, path string
		code         int
	}{
		{"GET", "/channels/000" + f.channel, 10003},
		{"GET", "/channels/+" + f.channel, 10003},
		{"GET", "/channels/%20" + f.channel, 10003},
		{"GET", "/guilds/0" + f.guild, 10004},
		{"GET", "/guilds/0" + f.guild + "/channels", 10004},
		{"GET", "/channels/" + f.channel + "/messages/0" + m.ID, 10008},
		{"PATCH", "/channels/" + f.channel + "/messages/+" + m.ID, 10008},
		{"DELETE", "/channels/" + f.channel + "/messages/00" + m.ID, 10008},
	} {
		st, raw := e.api.Do(t, c.method, c.path, f.member.token, map[string]string{"content": "x"}, nil)
		wantError(t, st, raw, 404, c.code)
	}
	if got := e.history(f.owner.token, f.channel, ""); len(got) != 1 || got[0].Content != "one" {
		t.Fatalf("history after the non-canonical requests = %v; want only the first message", got)
	}

	// The second post of 2 per minute uses the bucket up; the spellings that
	// named a fresh bucket before are refused, and nothing reaches the stream.
	e.post(f.member.token, f.channel, "two")
	before := e.streamMsgs()
	for _, p := range []string{"000" + f.channel, "0" + f.channel, "+" + f.channel} {
		st, raw := e.api.Do(t, "POST", "/channels/"+p+"/messages", f.member.token, map[string]string{"content": "fresh bucket?"}, nil)
		wantError(t, st, raw, 404, 10003)
	}
	if st, _ := e.api.Do(t, "POST", "/channels/"+f.channel+"/messages", f.member.token, map[string]string{"content": "three"}, nil); st != http.StatusTooManyRequests {
		t.Fatalf("third post = %d; want 429", st)
	}
	if after := e.streamMsgs(); after != before {
		t.Fatalf("stream went from %d to %d messages; want no change", before, after)
	}
}

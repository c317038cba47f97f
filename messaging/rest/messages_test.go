package rest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/nats-io/nats.go/jetstream"
)

// TestReadYourWrites posts and immediately reads history, many times, with the
// barrier watching the local writer and with the barrier polling the consumer.
func TestReadYourWrites(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		noLocal bool
	}{{"local writer", false}, {"polling", true}} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, envOptions{noLocal: c.noLocal})
			f := e.fixture()
			n := 150
			if testing.Short() {
				n = 30
			}
			for i := range n {
				m := e.post(f.member.token, f.channel, fmt.Sprintf("message %d", i))
				// Alternate readers: the author and someone else.
				reader := f.owner.token
				if i%2 == 0 {
					reader = f.member.token
				}
				page := e.history(reader, f.channel, "limit=1")
				if len(page) != 1 || page[0].ID != m.ID || page[0].Content != m.Content {
					t.Fatalf("iteration %d: newest message = %+v; want %s %q", i, page, m.ID, m.Content)
				}
				var got messageJSON
				e.api.Must(t, http.StatusOK, "GET", "/channels/"+f.channel+"/messages/"+m.ID, reader, nil, &got)
				if got.ID != m.ID {
					t.Fatalf("iteration %d: GET message = %s; want %s", i, got.ID, m.ID)
				}
			}
		})
	}
}

func TestPostMessageShape(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	f := e.fixture()
	var m messageJSON
	raw := e.api.Must(t, http.StatusOK, "POST", "/channels/"+f.channel+"/messages", f.member.token,
		map[string]any{"content": "hello", "nonce": "n-1"}, &m)
	if m.Content != "hello" || m.ChannelID != f.channel || m.Author.ID != f.member.id || m.Nonce != "n-1" || m.GuildID != "" || m.Member != nil {
		t.Fatalf("POST message = %s", raw)
	}
	for _, field := range []string{`"mentions":[]`, `"attachments":[]`, `"embeds":[]`, `"edited_timestamp":null`, `"timestamp":"`} {
		if !strings.Contains(string(raw), field) {
			t.Errorf("POST message = %s; want %s", raw, field)
		}
	}
	// MESSAGE_CREATE carries guild_id and the author's member, as Discord's does.
	ev := wantLastEvent(t, e, ghnats.GuildInSubject(mustID(t, f.guild)), guildhall.EventMessageCreate)
	var d messageJSON
	if err := json.Unmarshal(ev.Data, &d); err != nil || d.ID != m.ID || d.GuildID != f.guild || d.Member == nil || d.Nonce != "n-1" {
		t.Errorf("MESSAGE_CREATE d = %s (%v)", ev.Data, err)
	}
	if ev.ChannelID.String() != f.channel || ev.GuildID.String() != f.guild {
		t.Errorf("event routing = guild %s channel %s", ev.GuildID, ev.ChannelID)
	}
	// History shows neither the nonce nor the dispatch-only fields.
	page := e.history(f.owner.token, f.channel, "")
	if len(page) != 1 || page[0].Nonce != nil || page[0].GuildID != "" || page[0].Member != nil {
		t.Errorf("history = %+v", page)
	}
	// 2000 characters, multi-byte, is fine.
	e.post(f.member.token, f.channel, strings.Repeat("é", 2000))
}

// TestHistoryPaging compares before, after and around pages with what was sent,
// across several 10-day buckets: some messages are events with old snowflakes
// injected into the stream (as an api would have published them days ago), the
// rest posted now.
func TestHistoryPaging(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	f := e.fixture()
	guildID, channelID := guildhall.Snowflake(mustID(t, f.guild)), guildhall.Snowflake(mustID(t, f.channel))
	author := guildhall.User{ID: guildhall.Snowflake(mustID(t, f.member.id)), Username: "old", Discriminator: "0"}

	var sent []string // ascending ids
	now := time.Now()
	for _, daysAgo := range []int{45, 31, 30, 22, 12, 11, 3} {
		for k := range 3 {
			id := guildhall.SnowflakeAt(now.Add(-time.Duration(daysAgo)*24*time.Hour)) + guildhall.Snowflake(k)
			m := guildhall.Message{ID: id, ChannelID: channelID, GuildID: guildID, Author: author, Content: fmt.Sprintf("old %d/%d", daysAgo, k), Timestamp: id.Time()}
			data, _ := json.Marshal(m)
			ev := guildhall.Event{Type: guildhall.EventMessageCreate, GuildID: guildID, ChannelID: channelID, Data: data}
			if _, err := e.nats.JS.PublishMsg(context.Background(), ghnats.EventMsg(ev, id.String())); err != nil {
				t.Fatal(err)
			}
			sent = append(sent, id.String())
		}
	}
	for i := range 12 {
		sent = append(sent, e.post(f.member.token, f.channel, fmt.Sprintf("new %d", i)).ID)
	}
	buckets := map[int64]bool{}
	for _, s := range sent {
		buckets[guildhall.Snowflake(mustID(t, s)).Bucket()] = true
	}
	if len(buckets) < 3 {
		t.Fatalf("messages span %d buckets; want at least 3", len(buckets))
	}

	// newestFirst returns sent[lo:hi] newest first.
	newestFirst := func(lo, hi int) []string {
		lo, hi = max(lo, 0), min(hi, len(sent))
		if lo >= hi {
			return nil
		}
		out := slices.Clone(sent[lo:hi])
		slices.Reverse(out)
		return out
	}
	idx := func(s string) int { return slices.Index(sent, s) }
	type page struct {
		query string
		want  []string
	}
	n := len(sent)
	cases := []page{
		{"", newestFirst(n-50, n)},
		{"limit=5", newestFirst(n-5, n)},
		{"limit=100", newestFirst(0, n)},
		{"before=" + sent[10] + "&limit=4", newestFirst(6, 10)},
		{"before=" + sent[2] + "&limit=100", newestFirst(0, 2)},
		{"before=" + sent[0], nil},
		{"after=" + sent[5] + "&limit=4", newestFirst(6, 10)},
		{"after=" + sent[n-1], nil},
		{"after=0&limit=3", newestFirst(0, 3)},
		{"around=" + sent[12] + "&limit=5", newestFirst(10, 15)},
		{"around=" + sent[0] + "&limit=6", newestFirst(0, 3)},
		{"around=" + sent[n-1] + "&limit=4", newestFirst(n-3, n)},
	}
	// Walk the whole channel backwards with before, as a client scrolls.
	var walked []string
	before := ""
	for {
		q := "limit=7"
		if before != "" {
			q += "&before=" + before
		}
		pg := e.history(f.owner.token, f.channel, q)
		if len(pg) == 0 {
			break
		}
		for _, m := range pg {
			walked = append(walked, m.ID)
		}
		before = pg[len(pg)-1].ID
	}
	if want := newestFirst(0, n); !slices.Equal(walked, want) {
		t.Errorf("scrolling back = %v; want %v", walked, want)
	}
	for _, c := range cases {
		got := e.history(f.owner.token, f.channel, c.query)
		var gotIDs []string
		for _, m := range got {
			gotIDs = append(gotIDs, m.ID)
		}
		if !slices.Equal(gotIDs, c.want) {
			t.Errorf("GET messages?%s = %v; want %v (indexes %d..)", c.query, gotIDs, c.want, idx(firstOr(gotIDs)))
		}
	}
}

func firstOr(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func TestEditAndDelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	f := e.fixture()
	mine := e.post(f.member.token, f.channel, "draft")
	owners := e.post(f.owner.token, f.channel, "owner's")

	var edited messageJSON
	e.api.Must(t, http.StatusOK, "PATCH", "/channels/"+f.channel+"/messages/"+mine.ID, f.member.token, map[string]string{"content": "final"}, &edited)
	if edited.Content != "final" || edited.EditedTimestamp == nil || edited.ID != mine.ID {
		t.Fatalf("PATCH = %+v", edited)
	}
	ev := wantLastEvent(t, e, ghnats.GuildInSubject(mustID(t, f.guild)), guildhall.EventMessageUpdate)
	var upd messageJSON
	if err := json.Unmarshal(ev.Data, &upd); err != nil || upd.Content != "final" || upd.GuildID != f.guild || upd.Author.ID != f.member.id {
		t.Errorf("MESSAGE_UPDATE d = %s", ev.Data)
	}
	var got messageJSON
	e.api.Must(t, http.StatusOK, "GET", "/channels/"+f.channel+"/messages/"+mine.ID, f.owner.token, nil, &got)
	if got.Content != "final" || got.EditedTimestamp == nil {
		t.Errorf("after PATCH, GET = %+v", got)
	}

	// Nobody edits someone else's message, not even the owner.
	st, raw := e.api.Do(t, "PATCH", "/channels/"+f.channel+"/messages/"+mine.ID, f.owner.token, map[string]string{"content": "hijack"}, nil)
	wantError(t, st, raw, 403, 50005)
	st, raw = e.api.Do(t, "PATCH", "/channels/"+f.channel+"/messages/"+owners.ID, f.member.token, map[string]string{"content": "hijack"}, nil)
	wantError(t, st, raw, 403, 50005)
	// A member does not delete the owner's message.
	st, raw = e.api.Do(t, "DELETE", "/channels/"+f.channel+"/messages/"+owners.ID, f.member.token, nil, nil)
	wantError(t, st, raw, 403, 50013)
	// The outsider does nothing at all.
	st, raw = e.api.Do(t, "DELETE", "/channels/"+f.channel+"/messages/"+mine.ID, f.outsider.token, nil, nil)
	wantError(t, st, raw, 403, 50001)
	st, raw = e.api.Do(t, "PATCH", "/channels/"+f.channel+"/messages/"+mine.ID, f.outsider.token, map[string]string{"content": "x"}, nil)
	wantError(t, st, raw, 403, 50001)
	if page := e.history(f.owner.token, f.channel, ""); ids(page) != owners.ID+","+mine.ID || page[1].Content != "final" || page[0].Content != "owner's" {
		t.Fatalf("after refused edits and deletes, history = %+v", page)
	}

	// The owner deletes the member's message; the author deletes their own.
	e.api.Must(t, http.StatusNoContent, "DELETE", "/channels/"+f.channel+"/messages/"+mine.ID, f.owner.token, nil, nil)
	ev = wantLastEvent(t, e, ghnats.GuildInSubject(mustID(t, f.guild)), guildhall.EventMessageDelete)
	if string(ev.Data) != fmt.Sprintf(`{"id":"%s","channel_id":"%s","guild_id":"%s"}`, mine.ID, f.channel, f.guild) {
		t.Errorf("MESSAGE_DELETE d = %s", ev.Data)
	}
	st, raw = e.api.Do(t, "GET", "/channels/"+f.channel+"/messages/"+mine.ID, f.member.token, nil, nil)
	wantError(t, st, raw, 404, 10008)
	st, raw = e.api.Do(t, "DELETE", "/channels/"+f.channel+"/messages/"+mine.ID, f.member.token, nil, nil)
	wantError(t, st, raw, 404, 10008)
	st, raw = e.api.Do(t, "PATCH", "/channels/"+f.channel+"/messages/"+mine.ID, f.member.token, map[string]string{"content": "again"}, nil)
	wantError(t, st, raw, 404, 10008)
	own := e.post(f.member.token, f.channel, "mine to delete")
	e.api.Must(t, http.StatusNoContent, "DELETE", "/channels/"+f.channel+"/messages/"+own.ID, f.member.token, nil, nil)
	if page := e.history(f.member.token, f.channel, ""); ids(page) != owners.ID {
		t.Fatalf("after deletes, history = %s; want %s", ids(page), owners.ID)
	}
}

// snapshot is everything a bad request could have changed, as the owner sees it.
type snapshot struct {
	history, members, channels, guilds string
	stream                             uint64
}

func (e *env) snapshot(f guildFixture) snapshot {
	e.t.Helper()
	get := func(path string) string {
		return string(e.api.Must(e.t, http.StatusOK, "GET", path, f.owner.token, nil, nil))
	}
	return snapshot{
		history:  get("/channels/" + f.channel + "/messages?limit=100"),
		members:  get("/guilds/" + f.guild + "/members?limit=1000"),
		channels: get("/guilds/" + f.guild + "/channels"),
		guilds:   get("/users/@me/guilds"),
		stream:   e.streamMsgs(),
	}
}

// TestBadInputChangesNothing sends bad requests and checks the status, Discord's
// error code, and that history, members, channels, guilds and the stream are
// exactly as before.
func TestBadInputChangesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	f := e.fixture()
	msg := e.post(f.member.token, f.channel, "keep me")
	msgs := "/channels/" + f.channel + "/messages"
	one := msgs + "/" + msg.ID
	before := e.snapshot(f)

	cases := []struct {
		name         string
		method, path string
		token        string // defaults to the member's
		body         any
		status, code int
		field        string // an "errors" field to expect
	}{
		{name: "malformed JSON", method: "POST", path: msgs, body: []byte(`{"content":`), status: 400, code: 50109},
		{name: "not an object", method: "POST", path: msgs, body: []byte(`["content"]`), status: 400, code: 50109},
		{name: "trailing data", method: "POST", path: msgs, body: []byte(`{"content":"x"} {}`), status: 400, code: 50109},
		{name: "empty body", method: "POST", path: msgs, body: []byte(``), status: 400, code: 50109},
		{name: "content wrong type", method: "POST", path: msgs, body: []byte(`{"content":42}`), status: 400, code: 50035, field: "content"},
		{name: "empty content", method: "POST", path: msgs, body: map[string]string{"content": ""}, status: 400, code: 50006},
		{name: "blank content", method: "POST", path: msgs, body: map[string]string{"content": " \n\t "}, status: 400, code: 50006},
		{name: "no content", method: "POST", path: msgs, body: map[string]any{"tts": false}, status: 400, code: 50006},
		{name: "2001 characters", method: "POST", path: msgs, body: map[string]string{"content": strings.Repeat("é", 2001)}, status: 400, code: 50035, field: "content"},
		{name: "nonce too long", method: "POST", path: msgs, body: map[string]string{"content": "x", "nonce": strings.Repeat("n", 26)}, status: 400, code: 50035, field: "nonce"},
		{name: "body too large", method: "POST", path: msgs, body: map[string]string{"content": strings.Repeat("x", 70<<10)}, status: 413, code: 40005},
		{name: "unknown channel", method: "POST", path: "/channels/1234567890123/messages", body: map[string]string{"content": "x"}, status: 404, code: 10003},
		{name: "non-numeric channel", method: "POST", path: "/channels/general/messages", body: map[string]string{"content": "x"}, status: 404, code: 10003},
		{name: "negative channel", method: "GET", path: "/channels/-5/messages", status: 404, code: 10003},
		{name: "overflowing channel", method: "GET", path: "/channels/99999999999999999999999/messages", status: 404, code: 10003},
		{name: "unknown message edit", method: "PATCH", path: msgs + "/1234567890123", body: map[string]string{"content": "x"}, status: 404, code: 10008},
		{name: "non-numeric message", method: "DELETE", path: msgs + "/abc", status: 404, code: 10008},
		{name: "unknown message delete", method: "DELETE", path: msgs + "/1234567890123", status: 404, code: 10008},
		{name: "edit to empty", method: "PATCH", path: one, token: "member", body: map[string]string{"content": ""}, status: 400, code: 50006},
		{name: "edit to 2001", method: "PATCH", path: one, token: "member", body: map[string]string{"content": strings.Repeat("x", 2001)}, status: 400, code: 50035, field: "content"},
		{name: "edit malformed", method: "PATCH", path: one, body: []byte(`{"content"`), status: 400, code: 50109},
		{name: "edit by another", method: "PATCH", path: one, token: "owner", body: map[string]string{"content": "x"}, status: 403, code: 50005},
		{name: "delete by outsider", method: "DELETE", path: one, token: "outsider", status: 403, code: 50001},
		{name: "post by outsider", method: "POST", path: msgs, token: "outsider", body: map[string]string{"content": "x"}, status: 403, code: 50001},
		{name: "no token", method: "POST", path: msgs, token: "none", body: map[string]string{"content": "x"}, status: 401, code: 0},
		{name: "wrong token", method: "POST", path: msgs, token: "wrong", body: map[string]string{"content": "x"}, status: 401, code: 0},
		{name: "wrong token delete", method: "DELETE", path: one, token: "wrong", status: 401, code: 0},
		{name: "limit 0", method: "GET", path: msgs + "?limit=0", status: 400, code: 50035, field: "limit"},
		{name: "limit 101", method: "GET", path: msgs + "?limit=101", status: 400, code: 50035, field: "limit"},
		{name: "limit abc", method: "GET", path: msgs + "?limit=abc", status: 400, code: 50035, field: "limit"},
		{name: "before abc", method: "GET", path: msgs + "?before=abc", status: 400, code: 50035, field: "before"},
		{name: "before and after", method: "GET", path: msgs + "?before=5&after=3", status: 400, code: 50035},
		{name: "after and around", method: "GET", path: msgs + "?after=5&around=3", status: 400, code: 50035},
		{name: "members limit 1001", method: "GET", path: "/guilds/" + f.guild + "/members?limit=1001", status: 400, code: 50035, field: "limit"},
		{name: "unknown guild", method: "GET", path: "/guilds/1234567890123", status: 404, code: 10004},
		{name: "non-numeric guild", method: "GET", path: "/guilds/home/channels", status: 404, code: 10004},
		{name: "channel in unknown guild", method: "POST", path: "/guilds/1234567890123/channels", token: "owner", body: map[string]string{"name": "x"}, status: 404, code: 10004},
		{name: "channel by member", method: "POST", path: "/guilds/" + f.guild + "/channels", body: map[string]string{"name": "x"}, status: 403, code: 50013},
		{name: "channel without name", method: "POST", path: "/guilds/" + f.guild + "/channels", token: "owner", body: map[string]string{}, status: 400, code: 50035, field: "name"},
		{name: "channel bad type", method: "POST", path: "/guilds/" + f.guild + "/channels", token: "owner", body: map[string]any{"name": "v", "type": 2}, status: 400, code: 50035, field: "type"},
		{name: "channel unknown parent", method: "POST", path: "/guilds/" + f.guild + "/channels", token: "owner", body: map[string]any{"name": "v", "parent_id": "1234567890123"}, status: 400, code: 50035, field: "parent_id"},
		{name: "channel unknown role overwrite", method: "POST", path: "/guilds/" + f.guild + "/channels", token: "owner", body: map[string]any{"name": "v", "permission_overwrites": []map[string]any{{"id": "1234567890123", "type": 0, "allow": "0", "deny": "1024"}}}, status: 400, code: 50035, field: "permission_overwrites"},
		{name: "channel bad snowflake", method: "POST", path: "/guilds/" + f.guild + "/channels", token: "owner", body: []byte(`{"name":"v","parent_id":"x1"}`), status: 400, code: 50035},
		{name: "guild without name", method: "POST", path: "/guilds", body: map[string]string{"name": ""}, status: 400, code: 50035, field: "name"},
		{name: "guild name too long", method: "POST", path: "/guilds", body: map[string]string{"name": strings.Repeat("g", 101)}, status: 400, code: 50035, field: "name"},
		{name: "unknown invite", method: "POST", path: "/invites/nope", token: "outsider", status: 404, code: 10006},
		{name: "invite max_age", method: "POST", path: "/channels/" + f.channel + "/invites", body: map[string]int{"max_age": 604801}, status: 400, code: 50035, field: "max_age"},
		{name: "invite max_uses", method: "POST", path: "/channels/" + f.channel + "/invites", body: map[string]int{"max_uses": -1}, status: 400, code: 50035, field: "max_uses"},
		{name: "typing by outsider", method: "POST", path: "/channels/" + f.channel + "/typing", token: "outsider", status: 403, code: 50001},
		{name: "unknown route", method: "GET", path: "/channels/" + f.channel + "/webhooks", status: 404, code: 0},
		{name: "wrong method", method: "PUT", path: msgs, body: map[string]string{"content": "x"}, status: 405, code: 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok := f.member.token
			switch c.token {
			case "owner":
				tok = f.owner.token
			case "outsider":
				tok = f.outsider.token
			case "none":
				tok = ""
			case "wrong":
				tok = f.member.token[:len(f.member.token)-2] + "xx"
			}
			st, raw := e.api.Do(t, c.method, c.path, tok, c.body, nil)
			d := wantError(t, st, raw, c.status, c.code)
			if c.field != "" {
				if _, ok := d.Errors[c.field]; !ok {
					t.Errorf("errors = %v; want field %q", d.Errors, c.field)
				}
			}
			if after := e.snapshot(f); after != before {
				t.Fatalf("state changed:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{rest: restLimits(2, time.Minute)})
	f := e.fixture()
	path := "/channels/" + f.channel + "/messages"
	for i := range 2 {
		resp := e.raw(t, "POST", path, f.member.token, `{"content":"ok"}`)
		if resp.StatusCode != 200 {
			t.Fatalf("post %d = %d", i, resp.StatusCode)
		}
		h := resp.Header
		if h.Get("X-RateLimit-Limit") != "2" || h.Get("X-RateLimit-Remaining") != fmt.Sprint(1-i) ||
			h.Get("X-RateLimit-Bucket") == "" || h.Get("X-RateLimit-Reset") == "" || h.Get("X-RateLimit-Reset-After") == "" {
			t.Fatalf("post %d headers = %v", i, h)
		}
	}
	streamBefore := e.streamMsgs()
	resp := e.raw(t, "POST", path, f.member.token, `{"content":"too many"}`)
	if resp.StatusCode != 429 {
		t.Fatalf("third post = %d; want 429", resp.StatusCode)
	}
	var body struct {
		Message    string  `json:"message"`
		RetryAfter float64 `json:"retry_after"`
		Global     *bool   `json:"global"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Message == "" || body.RetryAfter <= 0 || body.Global == nil || *body.Global {
		t.Fatalf("429 body = %+v (%v)", body, err)
	}
	if resp.Header.Get("X-RateLimit-Remaining") != "0" || resp.Header.Get("Retry-After") == "" || resp.Header.Get("X-RateLimit-Scope") != "user" {
		t.Errorf("429 headers = %v", resp.Header)
	}
	if e.streamMsgs() != streamBefore {
		t.Error("a rate-limited post reached the stream")
	}
	// Per user and per channel: the owner still posts, and the member still
	// posts in another channel.
	if resp := e.raw(t, "POST", path, f.owner.token, `{"content":"owner"}`); resp.StatusCode != 200 {
		t.Errorf("owner's post = %d; want 200", resp.StatusCode)
	}
	var other channelJSON
	e.api.Must(t, http.StatusCreated, "POST", "/guilds/"+f.guild+"/channels", f.owner.token, map[string]string{"name": "other"}, &other)
	if resp := e.raw(t, "POST", "/channels/"+other.ID+"/messages", f.member.token, `{"content":"elsewhere"}`); resp.StatusCode != 200 {
		t.Errorf("post in another channel = %d; want 200", resp.StatusCode)
	}
	if page := e.history(f.owner.token, f.channel, ""); len(page) != 3 {
		t.Errorf("history has %d messages; want 3", len(page))
	}
}

func TestGlobalAndAuthRateLimits(t *testing.T) {
	t.Parallel()
	cfg := restLimits(-1, 0)
	cfg.GlobalLimit.Requests, cfg.GlobalLimit.Per = 3, time.Minute
	cfg.AuthLimit.Requests, cfg.AuthLimit.Per = 4, time.Minute
	e := newEnv(t, envOptions{rest: cfg})
	u := e.register("limited") // 1 of 4 auth requests
	for range 3 {
		if r := e.raw(t, "GET", "/users/@me", u.token, ""); r.StatusCode != 200 {
			t.Fatalf("GET /users/@me = %d", r.StatusCode)
		}
	}
	r := e.raw(t, "GET", "/gateway/bot", u.token, "")
	if r.StatusCode != 429 || r.Header.Get("X-RateLimit-Global") != "true" {
		t.Fatalf("fourth request = %d %v; want a global 429", r.StatusCode, r.Header)
	}
	for range 3 {
		e.raw(t, "POST", "/auth/login", "", `{"username":"x","password":"yyyyyyyy"}`)
	}
	if r := e.raw(t, "POST", "/auth/login", "", `{"username":"x","password":"yyyyyyyy"}`); r.StatusCode != 429 {
		t.Fatalf("fifth auth request = %d; want 429", r.StatusCode)
	}
}

func restLimits(messages int, per time.Duration) (c restConfig) {
	c.MessageLimit.Requests, c.MessageLimit.Per = messages, per
	return c
}

func (e *env) raw(t *testing.T, method, path, token, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, e.api.Base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	resp, err := e.api.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// TestWriterDownThenReplaced: with the writer stopped, posts still succeed (they
// are in the stream), but history answers 503 rather than a page without them;
// a recent message can still be deleted (the api's projection of the stream
// knows it). A new writer on the same durable consumer then persists every one
// exactly once, and the delete.
func TestWriterDownThenReplaced(t *testing.T) {
	for _, c := range []struct {
		name    string
		noLocal bool
	}{{"local writer", false}, {"polling", true}} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, envOptions{noLocal: c.noLocal, barrier: 300 * time.Millisecond})
			f := e.fixture()
			first := e.post(f.member.token, f.channel, "before the outage")
			e.historyRetried(f.member.token, f.channel, "")

			e.StopWriter()
			var posted []string
			for i := range 5 {
				posted = append(posted, e.post(f.member.token, f.channel, fmt.Sprintf("during %d", i)).ID)
			}
			st, raw := e.api.Do(t, "GET", "/channels/"+f.channel+"/messages", f.owner.token, nil, nil)
			wantError(t, st, raw, 503, 0)
			st, raw = e.api.Do(t, "GET", "/channels/"+f.channel+"/messages/"+posted[0], f.owner.token, nil, nil)
			wantError(t, st, raw, 503, 0)
			if st, raw = e.api.Do(t, "DELETE", "/channels/"+f.channel+"/messages/"+posted[0], f.member.token, nil, nil); st != http.StatusNoContent {
				t.Fatalf("delete of a recent message while the writer is down = %d %s; want 204", st, raw)
			}
			posted = posted[1:]

			e.StartWriter(nil)
			page := e.historyRetried(f.owner.token, f.channel, "limit=100")
			slices.Reverse(posted)
			if want := strings.Join(append(posted, first.ID), ","); ids(page) != want {
				t.Fatalf("history after a new writer = %s; want %s", ids(page), want)
			}
		})
	}
}

// TestTypingIsEphemeral: typing goes to the guild's ephemeral subject on core
// NATS, never to the stream, and is not re-published within the interval.
func TestTypingIsEphemeral(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	f := e.fixture()
	sub, err := e.nats.Conn.SubscribeSync(ghnats.EphemeralGuildSubject(mustID(t, f.guild)))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.nats.Conn.Flush(); err != nil {
		t.Fatal(err)
	}
	before := e.streamMsgs()
	e.api.Must(t, http.StatusNoContent, "POST", "/channels/"+f.channel+"/typing", f.member.token, nil, nil)
	m, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("no TYPING_START: %v", err)
	}
	ev := ghnats.DecodeEvent(m.Header, m.Data)
	var d guildhall.TypingStart
	if err := json.Unmarshal(ev.Data, &d); err != nil || ev.Type != guildhall.EventTypingStart ||
		d.ChannelID.String() != f.channel || d.GuildID.String() != f.guild || d.UserID.String() != f.member.id || d.Member == nil || d.Timestamp == 0 {
		t.Fatalf("typing event = %s %s (%v)", ev.Type, ev.Data, err)
	}
	if ev.ChannelID.String() != f.channel {
		t.Errorf("typing event channel header = %s", ev.ChannelID)
	}

	// Again at once: accepted, not re-published. Flushing the service's
	// connection, then the subscriber's, guarantees that anything it published is
	// delivered before we look.
	e.api.Must(t, http.StatusNoContent, "POST", "/channels/"+f.channel+"/typing", f.member.token, nil, nil)
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := e.nats.Conn.Flush(); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := sub.Pending(); n != 0 {
		t.Errorf("repeated typing published %d more events; want 0", n)
	}
	// Another user typing is published.
	e.api.Must(t, http.StatusNoContent, "POST", "/channels/"+f.channel+"/typing", f.owner.token, nil, nil)
	if _, err := sub.NextMsg(10 * time.Second); err != nil {
		t.Fatalf("no TYPING_START for the owner: %v", err)
	}
	if after := e.streamMsgs(); after != before {
		t.Errorf("stream messages %d → %d; typing must not be stored", before, after)
	}
	// Nothing on the stream's subjects either.
	s, _ := e.nats.JS.Stream(context.Background(), ghnats.StreamEvents)
	last, err := s.GetLastMsgForSubject(context.Background(), ghnats.GuildInSubject(mustID(t, f.guild)))
	if err != nil && err != jetstream.ErrMsgNotFound {
		t.Fatal(err)
	}
	if err == nil && ghnats.DecodeEvent(last.Header, last.Data).Type == guildhall.EventTypingStart {
		t.Error("typing reached the stream")
	}
}

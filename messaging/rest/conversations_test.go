package rest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/nats-io/nats.go/jetstream"
)

// richMessageJSON is a message with what conversations add.
type richMessageJSON struct {
	messageJSON
	Type            int  `json:"type"`
	MentionEveryone bool `json:"mention_everyone"`
	Mentions        []struct {
		ID string `json:"id"`
	} `json:"mentions"`
	MentionRoles     []string `json:"mention_roles"`
	MessageReference *struct {
		MessageID string `json:"message_id"`
		ChannelID string `json:"channel_id"`
		GuildID   string `json:"guild_id"`
	} `json:"message_reference"`
	ReferencedMessage *messageJSON `json:"referenced_message"`
	Embeds            []struct {
		Title string `json:"title"`
		Type  string `json:"type"`
		Image *struct {
			URL string `json:"url"`
		} `json:"image"`
	} `json:"embeds"`
	Reactions []struct {
		Count int  `json:"count"`
		Me    bool `json:"me"`
		Emoji struct {
			ID   *string `json:"id"`
			Name string  `json:"name"`
		} `json:"emoji"`
	} `json:"reactions"`
	Attachments []attachmentJSON `json:"attachments"`
}

type attachmentJSON struct {
	ID          string `json:"id"`
	Filename    string `json:"filename"`
	Description string `json:"description"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	URL         string `json:"url"`
	ProxyURL    string `json:"proxy_url"`
	Width       *int   `json:"width"`
	Height      *int   `json:"height"`
}

func (m richMessageJSON) mentionIDs() string {
	var ids []string
	for _, u := range m.Mentions {
		ids = append(ids, u.ID)
	}
	return strings.Join(ids, ",")
}

func (e *env) postBody(token, channel string, body any) (int, []byte, richMessageJSON) {
	e.t.Helper()
	var m richMessageJSON
	status, raw := e.api.Do(e.t, "POST", "/channels/"+channel+"/messages", token, body, &m)
	return status, raw, m
}

func (e *env) getMessage(token, channel, id string) richMessageJSON {
	e.t.Helper()
	var m richMessageJSON
	e.api.Must(e.t, http.StatusOK, "GET", "/channels/"+channel+"/messages/"+id, token, nil, &m)
	return m
}

// errorAt digs a Discord error body's nested errors for the code at path.
func errorAt(t *testing.T, raw []byte, path ...string) string {
	t.Helper()
	var body struct {
		Errors map[string]any `json:"errors"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("error body %s: %v", raw, err)
	}
	var cur any = body.Errors
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = m[p]
	}
	m, _ := cur.(map[string]any)
	errs, _ := m["_errors"].([]any)
	if len(errs) == 0 {
		return ""
	}
	first, _ := errs[0].(map[string]any)
	code, _ := first["code"].(string)
	return code
}

func TestReplies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	f := e.fixture()
	q := e.post(f.owner.token, f.channel, "question?")
	status, raw, r := e.postBody(f.member.token, f.channel, map[string]any{
		"content": "answer", "message_reference": map[string]any{"message_id": q.ID},
	})
	if status != http.StatusOK {
		t.Fatalf("reply = %d %s", status, raw)
	}
	if r.Type != guildhall.MessageTypeReply || r.MessageReference == nil || r.MessageReference.MessageID != q.ID ||
		r.MessageReference.ChannelID != f.channel || r.MessageReference.GuildID != f.guild ||
		r.ReferencedMessage == nil || r.ReferencedMessage.Content != "question?" {
		t.Fatalf("reply = %s", raw)
	}
	// The replied-to author is pinged by default.
	if r.mentionIDs() != f.owner.id {
		t.Errorf("reply mentions = %q; want the replied-to author %s", r.mentionIDs(), f.owner.id)
	}
	// MESSAGE_CREATE carries the referenced message too.
	ev := wantLastEvent(t, e, ghnats.GuildInSubject(mustID(t, f.guild)), guildhall.EventMessageCreate)
	if !bytes.Contains(ev.Data, []byte(`"referenced_message":{`)) || !bytes.Contains(ev.Data, []byte(`"type":19`)) {
		t.Errorf("MESSAGE_CREATE of a reply = %s", ev.Data)
	}
	// replied_user false: no ping.
	_, _, quiet := e.postBody(f.member.token, f.channel, map[string]any{
		"content": "answer", "message_reference": map[string]any{"message_id": q.ID},
		"allowed_mentions": map[string]any{"parse": []string{}, "replied_user": false},
	})
	if quiet.mentionIDs() != "" || quiet.Type != guildhall.MessageTypeReply {
		t.Errorf("reply with replied_user false: mentions %q type %d", quiet.mentionIDs(), quiet.Type)
	}

	// History shows the referenced message as it is now: edited, then deleted.
	e.api.Must(t, http.StatusOK, "PATCH", "/channels/"+f.channel+"/messages/"+q.ID, f.owner.token, map[string]string{"content": "question, edited?"}, nil)
	if got := e.getMessage(f.member.token, f.channel, r.ID); got.ReferencedMessage == nil || got.ReferencedMessage.Content != "question, edited?" {
		t.Errorf("reply's referenced message after the edit = %+v", got.ReferencedMessage)
	}
	e.api.Must(t, http.StatusNoContent, "DELETE", "/channels/"+f.channel+"/messages/"+q.ID, f.owner.token, nil, nil)
	if got := e.getMessage(f.member.token, f.channel, r.ID); got.ReferencedMessage != nil || got.Type != guildhall.MessageTypeReply {
		t.Errorf("reply after the referenced message's delete = type %d, referenced %+v; want 19 and none", got.Type, got.ReferencedMessage)
	}
	// null, not left out: Discord's sign that it was deleted.
	if raw := e.api.Must(t, http.StatusOK, "GET", "/channels/"+f.channel+"/messages/"+r.ID, f.member.token, nil, nil); !bytes.Contains(raw, []byte(`"referenced_message":null`)) {
		t.Errorf("reply after the delete = %s; want referenced_message null", raw)
	}
	if raw := e.api.Must(t, http.StatusOK, "GET", "/channels/"+f.channel+"/messages/"+plainID(e, f), f.member.token, nil, nil); bytes.Contains(raw, []byte(`referenced_message`)) {
		t.Errorf("a plain message = %s; want no referenced_message", raw)
	}

	// A reply to a message that does not exist fails, unless fail_if_not_exists is false.
	status, raw, _ = e.postBody(f.member.token, f.channel, map[string]any{"content": "x", "message_reference": map[string]any{"message_id": q.ID}})
	wantError(t, status, raw, http.StatusBadRequest, 50035)
	if code := errorAt(t, raw, "message_reference"); code != "REPLIES_UNKNOWN_MESSAGE" {
		t.Errorf("reply to a deleted message: error %q in %s", code, raw)
	}
	status, raw, plain := e.postBody(f.member.token, f.channel, map[string]any{
		"content": "x", "message_reference": map[string]any{"message_id": q.ID, "fail_if_not_exists": false},
	})
	if status != http.StatusOK || plain.Type != 0 || plain.MessageReference != nil {
		t.Errorf("reply with fail_if_not_exists false = %d %s; want a plain message", status, raw)
	}
	// A reference to another channel is refused.
	other := e.createChannel(f.owner.token, f.guild, "other", nil)
	status, raw, _ = e.postBody(f.member.token, f.channel, map[string]any{
		"content": "x", "message_reference": map[string]any{"message_id": r.ID, "channel_id": other},
	})
	wantError(t, status, raw, http.StatusBadRequest, 50035)
}

func plainID(e *env, f guildFixture) string { return e.post(f.owner.token, f.channel, "plain").ID }

func (e *env) createChannel(token, guild, name string, overwrites []map[string]any) string {
	e.t.Helper()
	var ch channelJSON
	body := map[string]any{"name": name}
	if overwrites != nil {
		body["permission_overwrites"] = overwrites
	}
	e.api.Must(e.t, http.StatusCreated, "POST", "/guilds/"+guild+"/channels", token, body, &ch)
	return ch.ID
}

func TestMentions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	f := e.fixture()
	ctx := context.Background()
	// A mentionable role and one that is not, made as a client makes them (the
	// api authorizes from its projection of the events: a role written only to
	// the store would be unknown to it until the guild's refresh).
	g, _ := guildhall.ParseSnowflake(f.guild)
	var loud, shy guildhall.Role
	e.api.Must(t, http.StatusOK, "POST", "/guilds/"+f.guild+"/roles", f.owner.token, map[string]any{"name": "loud", "mentionable": true}, &loud)
	e.api.Must(t, http.StatusOK, "POST", "/guilds/"+f.guild+"/roles", f.owner.token, map[string]any{"name": "shy"}, &shy)
	content := fmt.Sprintf("hi <@%s> <@!%s> <@%s> <@&%s> <@&%s> @everyone <@99999>", f.member.id, f.owner.id, f.outsider.id, loud.ID, shy.ID)
	// A member without MENTION_EVERYONE: users who are members, the mentionable role.
	_, raw, m := e.postBody(f.member.token, f.channel, map[string]any{"content": content})
	if m.mentionIDs() != f.member.id+","+f.owner.id || strings.Join(m.MentionRoles, ",") != loud.ID.String() || m.MentionEveryone {
		t.Errorf("member's mentions = %s", raw)
	}
	ev := wantLastEvent(t, e, ghnats.GuildInSubject(uint64(g)), guildhall.EventMessageCreate)
	_ = ev
	// The owner (every permission): every role and @everyone.
	_, raw, m = e.postBody(f.owner.token, f.channel, map[string]any{"content": content})
	if strings.Join(m.MentionRoles, ",") != loud.ID.String()+","+shy.ID.String() || !m.MentionEveryone {
		t.Errorf("owner's mentions = %s", raw)
	}
	// The stream event lists the mentioned users for gateways.
	s, err := e.nats.JS.Stream(ctx, ghnats.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	last, err := s.GetLastMsgForSubject(ctx, ghnats.GuildInSubject(uint64(g)))
	if err != nil {
		t.Fatal(err)
	}
	if got := last.Header.Get(ghnats.HeaderMentions); got != f.member.id+","+f.owner.id {
		t.Errorf("%s header = %q; want %s,%s", ghnats.HeaderMentions, got, f.member.id, f.owner.id)
	}
	// allowed_mentions: none; only one user; parse and users together is refused.
	_, raw, m = e.postBody(f.owner.token, f.channel, map[string]any{"content": content, "allowed_mentions": map[string]any{"parse": []string{}}})
	if len(m.Mentions) != 0 || len(m.MentionRoles) != 0 || m.MentionEveryone {
		t.Errorf("parse [] mentions = %s", raw)
	}
	_, raw, m = e.postBody(f.owner.token, f.channel, map[string]any{"content": content, "allowed_mentions": map[string]any{"users": []string{f.owner.id}}})
	if m.mentionIDs() != f.owner.id || len(m.MentionRoles) != 0 || m.MentionEveryone {
		t.Errorf("users [owner] mentions = %s", raw)
	}
	status, raw, _ := e.postBody(f.owner.token, f.channel, map[string]any{"content": content,
		"allowed_mentions": map[string]any{"parse": []string{"users"}, "users": []string{f.owner.id}}})
	wantError(t, status, raw, http.StatusBadRequest, 50035)
	if code := errorAt(t, raw, "allowed_mentions"); code != "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE" {
		t.Errorf("parse and users: %s", raw)
	}
	// Edits re-read the mentions of the new content.
	var edited richMessageJSON
	e.api.Must(t, http.StatusOK, "PATCH", "/channels/"+f.channel+"/messages/"+m.ID, f.owner.token, map[string]string{"content": "now <@" + f.member.id + ">"}, &edited)
	if edited.mentionIDs() != f.member.id || len(edited.MentionRoles) != 0 || edited.MentionEveryone {
		t.Errorf("edited mentions = %+v", edited.Mentions)
	}
}

func TestEmbeds(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	f := e.fixture()
	embed := map[string]any{
		"title": "  Title  ", "description": "d", "url": "https://example.com/x", "color": 0x336699,
		"timestamp": "2024-05-01T08:00:00.000Z", "footer": map[string]any{"text": "f"},
		"image": map[string]any{"url": "https://example.com/i.png", "width": 9999}, "thumbnail": map[string]any{"url": "http://example.com/t.png"},
		"author": map[string]any{"name": "a", "url": "https://example.com"}, "fields": []map[string]any{{"name": "n", "value": "v", "inline": true}},
		"type": "article", "provider": map[string]any{"name": "p"},
	}
	status, raw, m := e.postBody(f.member.token, f.channel, map[string]any{"embeds": []any{embed}})
	if status != http.StatusOK || len(m.Embeds) != 1 || m.Embeds[0].Title != "Title" || m.Embeds[0].Type != "rich" {
		t.Fatalf("embed post = %d %s", status, raw)
	}
	// The image's width is the server's to set (ids may contain 9999: look for the key).
	if bytes.Contains(raw, []byte(`"provider"`)) || bytes.Contains(raw, []byte(`"width"`)) {
		t.Errorf("embed keeps what a sender cannot set: %s", raw)
	}
	got := e.getMessage(f.owner.token, f.channel, m.ID)
	if len(got.Embeds) != 1 || got.Embeds[0].Title != "Title" || got.Embeds[0].Image == nil {
		t.Errorf("stored embed = %+v", got.Embeds)
	}

	long := func(n int) string { return strings.Repeat("é", n) } // characters, not bytes
	for _, c := range []struct {
		name string
		body any
		path []string
		code string
	}{
		{"title 257", map[string]any{"embeds": []any{map[string]any{"title": long(257)}}}, []string{"embeds", "0", "title"}, "BASE_TYPE_MAX_LENGTH"},
		{"description 4097", map[string]any{"embeds": []any{map[string]any{"description": long(4097)}}}, []string{"embeds", "0", "description"}, "BASE_TYPE_MAX_LENGTH"},
		{"field value 1025", map[string]any{"embeds": []any{map[string]any{"fields": []any{map[string]any{"name": "n", "value": long(1025)}}}}}, []string{"embeds", "0", "fields", "0", "value"}, "BASE_TYPE_MAX_LENGTH"},
		{"field without name", map[string]any{"embeds": []any{map[string]any{"fields": []any{map[string]any{"name": " ", "value": "v"}}}}}, []string{"embeds", "0", "fields", "0", "name"}, "BASE_TYPE_REQUIRED"},
		{"26 fields", map[string]any{"embeds": []any{map[string]any{"fields": manyFields(26)}}}, []string{"embeds", "0", "fields"}, "BASE_TYPE_MAX_LENGTH"},
		{"footer 2049", map[string]any{"embeds": []any{map[string]any{"footer": map[string]any{"text": long(2049)}}}}, []string{"embeds", "0", "footer", "text"}, "BASE_TYPE_MAX_LENGTH"},
		{"author 257", map[string]any{"embeds": []any{map[string]any{"author": map[string]any{"name": long(257)}}}}, []string{"embeds", "0", "author", "name"}, "BASE_TYPE_MAX_LENGTH"},
		{"11 embeds", map[string]any{"embeds": manyEmbeds(11)}, []string{"embeds"}, "BASE_TYPE_MAX_LENGTH"},
		{"6001 in total", map[string]any{"embeds": []any{map[string]any{"description": long(4000)}, map[string]any{"description": long(2001)}}}, []string{"embeds"}, "MAX_EMBED_SIZE_EXCEEDED"},
		{"bad url", map[string]any{"embeds": []any{map[string]any{"title": "t", "url": "javascript:alert(1)"}}}, []string{"embeds", "0", "url"}, "URL_TYPE_INVALID_URL"},
		{"color", map[string]any{"embeds": []any{map[string]any{"title": "t", "color": 0x1000000}}}, []string{"embeds", "0", "color"}, "NUMBER_TYPE_MAX"},
	} {
		status, raw, _ := e.postBody(f.member.token, f.channel, c.body)
		wantError(t, status, raw, http.StatusBadRequest, 50035)
		if code := errorAt(t, raw, c.path...); code != c.code {
			t.Errorf("%s: error at %v = %q; want %s (body %.300s)", c.name, c.path, code, c.code, raw)
		}
	}
	// Exactly at the limits is fine.
	status, raw, _ = e.postBody(f.member.token, f.channel, map[string]any{"embeds": []any{
		map[string]any{"title": long(256), "description": long(4096)}, map[string]any{"description": long(6000 - 256 - 4096)},
	}})
	if status != http.StatusOK {
		t.Errorf("embeds of 6000 characters = %d %.300s", status, raw)
	}
}

func manyFields(n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = map[string]any{"name": "n", "value": "v"}
	}
	return out
}

func manyEmbeds(n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = map[string]any{"title": "t"}
	}
	return out
}

func reactionPath(channel, message, emoji string) string {
	return "/channels/" + channel + "/messages/" + message + "/reactions/" + url.PathEscape(emoji)
}

func TestReactions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	f := e.fixture()
	m := e.post(f.owner.token, f.channel, "react to me")
	fire, thumbs := "🔥", "👍🏽"
	e.api.Must(t, http.StatusNoContent, "PUT", reactionPath(f.channel, m.ID, fire)+"/@me", f.member.token, nil, nil)
	e.api.Must(t, http.StatusNoContent, "PUT", reactionPath(f.channel, m.ID, fire)+"/@me", f.member.token, nil, nil) // again: nothing new
	e.api.Must(t, http.StatusNoContent, "PUT", reactionPath(f.channel, m.ID, fire)+"/@me", f.owner.token, nil, nil)
	e.api.Must(t, http.StatusNoContent, "PUT", reactionPath(f.channel, m.ID, thumbs)+"/@me", f.owner.token, nil, nil)
	ev := wantLastEvent(t, e, ghnats.GuildInSubject(mustID(t, f.guild)), guildhall.EventMessageReactionAdd)
	var add guildhall.MessageReactionAdd
	if err := json.Unmarshal(ev.Data, &add); err != nil || add.Emoji.Name != thumbs || add.UserID.String() != f.owner.id ||
		add.MessageID.String() != m.ID || add.GuildID.String() != f.guild || add.Member == nil || add.MessageAuthorID.String() != f.owner.id {
		t.Errorf("MESSAGE_REACTION_ADD = %s", ev.Data)
	}
	counts := func(token string) string {
		t.Helper()
		got := e.getMessage(token, f.channel, m.ID)
		var parts []string
		for _, r := range got.Reactions {
			parts = append(parts, fmt.Sprintf("%s:%d:%v", r.Emoji.Name, r.Count, r.Me))
		}
		return strings.Join(parts, " ")
	}
	if got, want := counts(f.member.token), fire+":2:true "+thumbs+":1:false"; got != want {
		t.Errorf("reactions seen by the member = %q; want %q", got, want)
	}
	if got, want := counts(f.owner.token), fire+":2:true "+thumbs+":1:true"; got != want {
		t.Errorf("reactions seen by the owner = %q; want %q", got, want)
	}
	// History carries them too.
	var page []richMessageJSON
	e.api.Must(t, http.StatusOK, "GET", "/channels/"+f.channel+"/messages?limit=1", f.member.token, nil, &page)
	if len(page) != 1 || len(page[0].Reactions) != 2 || page[0].Reactions[0].Count != 2 || !page[0].Reactions[0].Me {
		t.Errorf("history reactions = %+v", page)
	}
	// The users of a reaction, paged.
	type userID struct {
		ID string `json:"id"`
	}
	var first, second, rest []userID
	e.api.Must(t, http.StatusOK, "GET", reactionPath(f.channel, m.ID, fire)+"?limit=1", f.member.token, nil, &first)
	e.api.Must(t, http.StatusOK, "GET", reactionPath(f.channel, m.ID, fire)+"?limit=1&after="+first[0].ID, f.member.token, nil, &second)
	e.api.Must(t, http.StatusOK, "GET", reactionPath(f.channel, m.ID, fire)+"?after="+second[0].ID, f.member.token, nil, &rest)
	got := []string{first[0].ID, second[0].ID}
	if len(first) != 1 || len(second) != 1 || len(rest) != 0 || !slices.Contains(got, f.owner.id) || !slices.Contains(got, f.member.id) {
		t.Errorf("reaction users paged = %v then %v then %v; want the owner and the member, one per page", first, second, rest)
	}

	// Removing another's reaction takes MANAGE_MESSAGES.
	status, raw := e.api.Do(t, "DELETE", reactionPath(f.channel, m.ID, thumbs)+"/"+f.owner.id, f.member.token, nil, nil)
	wantError(t, status, raw, http.StatusForbidden, 50013)
	status, raw = e.api.Do(t, "DELETE", reactionPath(f.channel, m.ID, fire), f.member.token, nil, nil)
	wantError(t, status, raw, http.StatusForbidden, 50013)
	status, raw = e.api.Do(t, "DELETE", "/channels/"+f.channel+"/messages/"+m.ID+"/reactions", f.member.token, nil, nil)
	wantError(t, status, raw, http.StatusForbidden, 50013)
	// One's own, and the owner removing the member's.
	e.api.Must(t, http.StatusNoContent, "DELETE", reactionPath(f.channel, m.ID, thumbs)+"/@me", f.owner.token, nil, nil)
	wantLastEvent(t, e, ghnats.GuildInSubject(mustID(t, f.guild)), guildhall.EventMessageReactionRemove)
	e.api.Must(t, http.StatusNoContent, "DELETE", reactionPath(f.channel, m.ID, fire)+"/"+f.member.id, f.owner.token, nil, nil)
	if got, want := counts(f.member.token), fire+":1:false"; got != want {
		t.Errorf("after removals = %q; want %q", got, want)
	}
	e.api.Must(t, http.StatusNoContent, "PUT", reactionPath(f.channel, m.ID, thumbs)+"/@me", f.member.token, nil, nil)
	e.api.Must(t, http.StatusNoContent, "DELETE", reactionPath(f.channel, m.ID, fire), f.owner.token, nil, nil)
	wantLastEvent(t, e, ghnats.GuildInSubject(mustID(t, f.guild)), guildhall.EventMessageReactionRemoveEmoji)
	if got, want := counts(f.member.token), thumbs+":1:true"; got != want {
		t.Errorf("after removing %s = %q; want %q", fire, got, want)
	}
	e.api.Must(t, http.StatusNoContent, "DELETE", "/channels/"+f.channel+"/messages/"+m.ID+"/reactions", f.owner.token, nil, nil)
	wantLastEvent(t, e, ghnats.GuildInSubject(mustID(t, f.guild)), guildhall.EventMessageReactionRemoveAll)
	if got := counts(f.member.token); got != "" {
		t.Errorf("after removing all = %q", got)
	}

	// Refusals: unknown emoji, custom emoji, unknown message, outsider.
	for _, bad := range []string{"a", "thumbsup", "name:123", "🔥x"} {
		status, raw = e.api.Do(t, "PUT", reactionPath(f.channel, m.ID, bad)+"/@me", f.member.token, nil, nil)
		wantError(t, status, raw, http.StatusBadRequest, 10014)
	}
	status, raw = e.api.Do(t, "PUT", reactionPath(f.channel, "1234", fire)+"/@me", f.member.token, nil, nil)
	wantError(t, status, raw, http.StatusNotFound, 10008)
	status, raw = e.api.Do(t, "PUT", reactionPath(f.channel, m.ID, fire)+"/@me", f.outsider.token, nil, nil)
	wantError(t, status, raw, http.StatusForbidden, 50001)
	status, raw = e.api.Do(t, "PUT", reactionPath(f.channel, m.ID, fire)+"/"+f.owner.id, f.member.token, nil, nil)
	wantError(t, status, raw, http.StatusNotFound, 0)

	// 20 emojis at most.
	m2 := e.post(f.owner.token, f.channel, "many")
	for i := range 20 {
		e.api.Must(t, http.StatusNoContent, "PUT", reactionPath(f.channel, m2.ID, string(rune(0x1F600+i)))+"/@me", f.owner.token, nil, nil)
	}
	status, raw = e.api.Do(t, "PUT", reactionPath(f.channel, m2.ID, "🎉")+"/@me", f.owner.token, nil, nil)
	wantError(t, status, raw, http.StatusBadRequest, 30010)
	// A 21st user on an existing emoji is fine.
	e.api.Must(t, http.StatusNoContent, "PUT", reactionPath(f.channel, m2.ID, string(rune(0x1F600)))+"/@me", f.member.token, nil, nil)
}

// TestReactionPermissions: in a channel where @everyone may not add reactions,
// a member cannot be the first with an emoji but can join one; without
// READ_MESSAGE_HISTORY nobody reacts.
func TestReactionPermissions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	f := e.fixture()
	noAdd := e.createChannel(f.owner.token, f.guild, "no-add", []map[string]any{{"id": f.guild, "type": 0, "allow": "0", "deny": fmt.Sprint(guildhall.PermAddReactions)}})
	m := e.post(f.owner.token, noAdd, "x")
	status, raw := e.api.Do(t, "PUT", reactionPath(noAdd, m.ID, "🔥")+"/@me", f.member.token, nil, nil)
	wantError(t, status, raw, http.StatusForbidden, 50013)
	e.api.Must(t, http.StatusNoContent, "PUT", reactionPath(noAdd, m.ID, "🔥")+"/@me", f.owner.token, nil, nil)
	e.api.Must(t, http.StatusNoContent, "PUT", reactionPath(noAdd, m.ID, "🔥")+"/@me", f.member.token, nil, nil)

	noHistory := e.createChannel(f.owner.token, f.guild, "no-history", []map[string]any{{"id": f.guild, "type": 0, "allow": "0", "deny": fmt.Sprint(guildhall.PermReadMessageHistory)}})
	m = e.post(f.owner.token, noHistory, "x")
	status, raw = e.api.Do(t, "PUT", reactionPath(noHistory, m.ID, "🔥")+"/@me", f.member.token, nil, nil)
	wantError(t, status, raw, http.StatusForbidden, 50013)
}

// multipartBody builds a message post with files (payload_json last, as
// discord.js sends it).
func multipartBody(t *testing.T, payload any, files ...namedFile) (string, io.Reader) {
	t.Helper()
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		for i, f := range files {
			w, err := mw.CreateFormFile(fmt.Sprintf("files[%d]", i), f.name)
			if err == nil {
				_, err = io.Copy(w, f.body)
			}
			if err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		if payload != nil {
			j, _ := json.Marshal(payload)
			if err := mw.WriteField("payload_json", string(j)); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(mw.Close())
	}()
	return mw.FormDataContentType(), pr
}

type namedFile struct {
	name string
	body io.Reader
}

func (e *env) upload(t *testing.T, token, channel string, payload any, files ...namedFile) (int, []byte, richMessageJSON) {
	t.Helper()
	ct, body := multipartBody(t, payload, files...)
	req, err := http.NewRequest("POST", e.api.Base+"/channels/"+channel+"/messages", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Authorization", token)
	resp, err := e.api.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m richMessageJSON
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode, raw, m
}

func pngImage(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = byte(i * 7)
	}
	img.Set(0, 0, color.White)
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// randomBytes is n deterministic pseudo-random bytes (incompressible, so no
// layer can shortcut them).
func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func download(t *testing.T, rawURL string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: body: %v", rawURL, err)
	}
	return resp, body
}

func TestAttachments(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	f := e.fixture()
	pic := pngImage(t, 37, 21)
	data := randomBytes(3<<20+12345, 1) // several chunks and a partial one
	status, raw, m := e.upload(t, f.member.token, f.channel, map[string]any{
		"content": "files", "attachments": []map[string]any{{"id": 0, "description": "a picture"}},
		"embeds": []any{map[string]any{"title": "pic", "image": map[string]any{"url": "attachment://pic.png"}}},
	}, namedFile{"pic.png", bytes.NewReader(pic)}, namedFile{"data file.bin", bytes.NewReader(data)})
	if status != http.StatusOK || len(m.Attachments) != 2 {
		t.Fatalf("upload = %d %s", status, raw)
	}
	a, b := m.Attachments[0], m.Attachments[1]
	if a.Filename != "pic.png" || a.ContentType != "image/png" || a.Size != int64(len(pic)) || a.Width == nil || *a.Width != 37 || *a.Height != 21 || a.Description != "a picture" {
		t.Errorf("picture attachment = %+v", a)
	}
	if b.Filename != "data_file.bin" || b.Size != int64(len(data)) || b.Width != nil || b.URL != b.ProxyURL {
		t.Errorf("data attachment = %+v", b)
	}
	if len(m.Embeds) != 1 || m.Embeds[0].Image == nil || m.Embeds[0].Image.URL != a.URL {
		t.Errorf("attachment:// embed image = %+v; want %s", m.Embeds, a.URL)
	}
	wantPath := "/attachments/" + f.channel + "/" + b.ID + "/data_file.bin?hm="
	if !strings.HasPrefix(b.URL, e.srv.URL+wantPath) {
		t.Errorf("attachment URL %s; want %s%s…", b.URL, e.srv.URL, wantPath)
	}

	// Download: whole, checksum, headers.
	resp, body := download(t, b.URL, nil)
	if resp.StatusCode != http.StatusOK || sha256.Sum256(body) != sha256.Sum256(data) {
		t.Fatalf("download = %d, %d bytes; want 200, %d bytes with the same SHA-256", resp.StatusCode, len(body), len(data))
	}
	if resp.Header.Get("Content-Length") != fmt.Sprint(len(data)) || resp.Header.Get("ETag") == "" ||
		!strings.Contains(resp.Header.Get("Cache-Control"), "max-age") || resp.Header.Get("Content-Disposition") == "" {
		t.Errorf("download headers = %v", resp.Header)
	}
	resp, body = download(t, a.URL, nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, pic) || resp.Header.Get("Content-Type") != "image/png" || resp.Header.Get("Content-Disposition") != "" {
		t.Errorf("picture download = %d %v", resp.StatusCode, resp.Header)
	}
	// Ranges across chunk boundaries, the tail, and out of range.
	for _, c := range []struct {
		rng      string
		from, to int
	}{{"bytes=0-9", 0, 9}, {"bytes=131000-262200", 131000, 262200}, {"bytes=3145000-", 3145000, len(data) - 1}, {"bytes=-100", len(data) - 100, len(data) - 1}} {
		resp, body := download(t, b.URL, map[string]string{"Range": c.rng})
		if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[c.from:c.to+1]) ||
			resp.Header.Get("Content-Range") != fmt.Sprintf("bytes %d-%d/%d", c.from, c.to, len(data)) {
			t.Errorf("Range %s = %d %s, %d bytes", c.rng, resp.StatusCode, resp.Header.Get("Content-Range"), len(body))
		}
	}
	resp, _ = download(t, b.URL, map[string]string{"Range": fmt.Sprintf("bytes=%d-", len(data))})
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("Range past the end = %d; want 416", resp.StatusCode)
	}
	resp, body = download(t, b.URL, map[string]string{"If-None-Match": resp.Header.Get("ETag")})
	etag := resp.Header.Get("ETag")
	resp, _ = download(t, b.URL, map[string]string{"If-None-Match": etag})
	if etag == "" || resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match %s = %d; want 304", etag, resp.StatusCode)
	}
	// The URL is the capability: a wrong secret, channel or name is 404.
	u, _ := url.Parse(b.URL)
	for _, bad := range []string{
		strings.Replace(b.URL, "hm="+u.Query().Get("hm"), "hm="+strings.Repeat("0", 32), 1),
		strings.Split(b.URL, "?")[0],
		strings.Replace(b.URL, "data_file.bin", "other.bin", 1),
		strings.Replace(b.URL, "/"+f.channel+"/", "/1234/", 1),
	} {
		if resp, _ := download(t, bad, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d; want 404", bad, resp.StatusCode)
		}
	}
	// History shows the attachments.
	if got := e.getMessage(f.owner.token, f.channel, m.ID); len(got.Attachments) != 2 || got.Attachments[1].URL != b.URL {
		t.Errorf("stored attachments = %+v", got.Attachments)
	}
	// Deleting the message deletes the files.
	e.api.Must(t, http.StatusNoContent, "DELETE", "/channels/"+f.channel+"/messages/"+m.ID, f.member.token, nil, nil)
	deadline := time.Now().Add(10 * time.Second)
	for {
		// HEAD: a GET could be cut short by the delete it is waiting for.
		ra, err1 := http.Head(a.URL)
		rb, err2 := http.Head(b.URL)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		ra.Body.Close()
		rb.Body.Close()
		if ra.StatusCode == http.StatusNotFound && rb.StatusCode == http.StatusNotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("files of a deleted message still served: %d %d", ra.StatusCode, rb.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestUploadRefusals: too large (413, 40005), too many files, a channel where
// files are not allowed, an outsider, a content type that is neither JSON nor
// multipart; none leaves a file behind.
func TestUploadRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{rest: restConfig{MaxUploadBytes: 1 << 20}})
	f := e.fixture()
	liveFiles := func() int {
		obs, err := e.nats.JS.ObjectStore(context.Background(), ghnats.BucketAttachments)
		if err != nil {
			t.Fatal(err)
		}
		list, err := obs.List(context.Background())
		if errors.Is(err, jetstream.ErrNoObjectsFound) {
			return 0
		}
		if err != nil {
			t.Fatal(err)
		}
		return len(list)
	}
	// A first file that fits and a second that crosses the limit.
	status, raw, _ := e.upload(t, f.member.token, f.channel, map[string]any{"content": "x"},
		namedFile{"small.bin", bytes.NewReader(randomBytes(300<<10, 2))}, namedFile{"big.bin", bytes.NewReader(randomBytes(2<<20, 3))})
	wantError(t, status, raw, http.StatusRequestEntityTooLarge, 40005)

	var many []namedFile
	for i := range 11 {
		many = append(many, namedFile{fmt.Sprintf("f%d.txt", i), strings.NewReader("x")})
	}
	status, raw, _ = e.upload(t, f.member.token, f.channel, map[string]any{"content": "x"}, many...)
	wantError(t, status, raw, http.StatusBadRequest, 50035)

	noFiles := e.createChannel(f.owner.token, f.guild, "no-files", []map[string]any{{"id": f.guild, "type": 0, "allow": "0", "deny": fmt.Sprint(guildhall.PermAttachFiles)}})
	status, raw, _ = e.upload(t, f.member.token, noFiles, map[string]any{"content": "x"}, namedFile{"a.txt", strings.NewReader("hello")})
	wantError(t, status, raw, http.StatusForbidden, 50013)
	status, raw, _ = e.upload(t, f.outsider.token, f.channel, map[string]any{"content": "x"}, namedFile{"a.txt", strings.NewReader("hello")})
	wantError(t, status, raw, http.StatusForbidden, 50001)
	var category channelJSON
	e.api.Must(t, http.StatusCreated, "POST", "/guilds/"+f.guild+"/channels", f.owner.token, map[string]any{"name": "cat", "type": 4}, &category)
	status, raw, _ = e.upload(t, f.owner.token, category.ID, map[string]any{"content": "x"}, namedFile{"a.txt", strings.NewReader("hello")})
	wantError(t, status, raw, http.StatusBadRequest, 50008)
	// A post that fails after its files were stored (bad payload) deletes them.
	status, raw, _ = e.upload(t, f.member.token, f.channel, map[string]any{"content": strings.Repeat("x", 2001)}, namedFile{"a.txt", strings.NewReader("hello")})
	wantError(t, status, raw, http.StatusBadRequest, 50035)

	req, _ := http.NewRequest("POST", e.api.Base+"/channels/"+f.channel+"/messages", strings.NewReader("content=hi"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", f.member.token)
	resp, err := e.api.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	wantError(t, resp.StatusCode, raw, http.StatusUnsupportedMediaType, 0)

	// The refused posts left no file behind.
	if n := liveFiles(); n != 0 {
		t.Errorf("%d files in the object store after refused posts; want none", n)
	}
	if got := e.history(f.member.token, f.channel, "limit=5"); len(got) != 0 {
		t.Errorf("refused posts created messages: %v", got)
	}
}

type dmJSON struct {
	ID            string  `json:"id"`
	Type          int     `json:"type"`
	LastMessageID *string `json:"last_message_id"`
	OwnerID       string  `json:"owner_id"`
	Recipients    []struct {
		ID string `json:"id"`
	} `json:"recipients"`
}

func (d dmJSON) recipientIDs() string {
	var ids []string
	for _, r := range d.Recipients {
		ids = append(ids, r.ID)
	}
	return strings.Join(ids, ",")
}

func TestDirectMessages(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	f := e.fixture()
	var dm, again dmJSON
	e.api.Must(t, http.StatusOK, "POST", "/users/@me/channels", f.member.token, map[string]string{"recipient_id": f.owner.id}, &dm)
	if dm.Type != guildhall.ChannelTypeDM || dm.recipientIDs() != f.owner.id || dm.LastMessageID != nil {
		t.Fatalf("DM = %+v", dm)
	}
	e.api.Must(t, http.StatusOK, "POST", "/users/@me/channels", f.owner.token, map[string]string{"recipient_id": f.member.id}, &again)
	if again.ID != dm.ID || again.recipientIDs() != f.member.id {
		t.Errorf("the same pair opened again = %+v; want %s, seen from the owner", again, dm.ID)
	}
	// CHANNEL_CREATE went to both participants' own subjects, each seeing the other.
	for _, c := range []struct{ user, other string }{{f.member.id, f.owner.id}, {f.owner.id, f.member.id}} {
		ev := wantLastEvent(t, e, ghnats.UserInSubject(mustID(t, c.user)), guildhall.EventChannelCreate)
		var got dmJSON
		if err := json.Unmarshal(ev.Data, &got); err != nil || got.ID != dm.ID || got.recipientIDs() != c.other || ev.GuildID != 0 {
			t.Errorf("CHANNEL_CREATE to %s = %s", c.user, ev.Data)
		}
	}
	// Only with someone who shares a guild; not with oneself; not with nobody.
	status, raw := e.api.Do(t, "POST", "/users/@me/channels", f.outsider.token, map[string]string{"recipient_id": f.owner.id}, nil)
	wantError(t, status, raw, http.StatusForbidden, 50007)
	status, raw = e.api.Do(t, "POST", "/users/@me/channels", f.owner.token, map[string]string{"recipient_id": f.owner.id}, nil)
	wantError(t, status, raw, http.StatusForbidden, 50007)
	status, raw = e.api.Do(t, "POST", "/users/@me/channels", f.owner.token, map[string]string{"recipient_id": "12345"}, nil)
	wantError(t, status, raw, http.StatusNotFound, 10013)

	// Messages: both read them; the log copy is persisted, each participant gets one.
	m := e.post(f.member.token, dm.ID, "hello <@"+f.owner.id+">")
	for _, u := range []string{f.member.id, f.owner.id} {
		ev := wantLastEvent(t, e, ghnats.UserInSubject(mustID(t, u)), guildhall.EventMessageCreate)
		if ev.ChannelID.String() != dm.ID || !bytes.Contains(ev.Data, []byte(m.ID)) || bytes.Contains(ev.Data, []byte(`"member"`)) || bytes.Contains(ev.Data, []byte(`"guild_id"`)) {
			t.Errorf("MESSAGE_CREATE to %s = %s", u, ev.Data)
		}
	}
	wantLastEvent(t, e, ghnats.DMInSubject(mustID(t, dm.ID)), guildhall.EventMessageCreate)
	for _, tok := range []string{f.owner.token, f.member.token} {
		if h := e.history(tok, dm.ID, ""); len(h) != 1 || h[0].ID != m.ID {
			t.Errorf("DM history = %v; want [%s]", h, m.ID)
		}
	}
	var mine []dmJSON
	e.api.Must(t, http.StatusOK, "GET", "/users/@me/channels", f.owner.token, nil, &mine)
	if len(mine) != 1 || mine[0].ID != dm.ID || mine[0].LastMessageID == nil || *mine[0].LastMessageID != m.ID {
		t.Errorf("GET /users/@me/channels = %+v", mine)
	}
	var got dmJSON
	e.api.Must(t, http.StatusOK, "GET", "/channels/"+dm.ID, f.owner.token, nil, &got)
	if got.ID != dm.ID || got.recipientIDs() != f.member.id {
		t.Errorf("GET /channels/{dm} = %+v", got)
	}
	// A non-participant can do nothing with it.
	for _, c := range []struct{ method, path string }{
		{"GET", "/channels/" + dm.ID}, {"GET", "/channels/" + dm.ID + "/messages"}, {"GET", "/channels/" + dm.ID + "/messages/" + m.ID},
		{"POST", "/channels/" + dm.ID + "/messages"}, {"PUT", reactionPath(dm.ID, m.ID, "🔥") + "/@me"},
	} {
		status, raw := e.api.Do(t, c.method, c.path, f.outsider.token, map[string]string{"content": "x"}, nil)
		wantError(t, status, raw, http.StatusForbidden, 50001)
	}
	// Reactions in a DM: no member, no guild.
	e.api.Must(t, http.StatusNoContent, "PUT", reactionPath(dm.ID, m.ID, "🔥")+"/@me", f.owner.token, nil, nil)
	ev := wantLastEvent(t, e, ghnats.UserInSubject(mustID(t, f.member.id)), guildhall.EventMessageReactionAdd)
	if bytes.Contains(ev.Data, []byte(`"member"`)) || bytes.Contains(ev.Data, []byte(`"guild_id"`)) {
		t.Errorf("DM MESSAGE_REACTION_ADD = %s", ev.Data)
	}
	if r := e.getMessage(f.member.token, dm.ID, m.ID); len(r.Reactions) != 1 || r.Reactions[0].Count != 1 || r.Reactions[0].Me {
		t.Errorf("DM message reactions = %+v", r.Reactions)
	}
	// In a DM nobody manages others' messages.
	status, raw = e.api.Do(t, "DELETE", "/channels/"+dm.ID+"/messages/"+m.ID, f.owner.token, nil, nil)
	wantError(t, status, raw, http.StatusForbidden, 50013)
	// Files in a DM.
	status, raw, withFile := e.upload(t, f.owner.token, dm.ID, map[string]any{"content": "file"}, namedFile{"note.txt", strings.NewReader("a note")})
	if status != http.StatusOK || len(withFile.Attachments) != 1 {
		t.Fatalf("DM upload = %d %s", status, raw)
	}
	if resp, body := download(t, withFile.Attachments[0].URL, nil); resp.StatusCode != http.StatusOK || string(body) != "a note" {
		t.Errorf("DM file download = %d %q", resp.StatusCode, body)
	}

	// A group DM: the creator owns it; 10 people at most.
	third := e.register("third")
	var inv inviteJSON
	e.api.Must(t, http.StatusOK, "POST", "/channels/"+f.channel+"/invites", f.owner.token, map[string]any{}, &inv)
	e.api.Must(t, http.StatusOK, "POST", "/invites/"+inv.Code, third.token, nil, nil)
	var group dmJSON
	e.api.Must(t, http.StatusOK, "POST", "/users/@me/channels", f.member.token, map[string]any{"recipients": []string{f.owner.id, third.id}}, &group)
	if group.Type != guildhall.ChannelTypeGroupDM || group.OwnerID != f.member.id || len(group.Recipients) != 2 || group.ID == dm.ID {
		t.Errorf("group DM = %+v", group)
	}
	gm := e.post(third.token, group.ID, "hi all")
	if h := e.history(f.member.token, group.ID, ""); len(h) != 1 || h[0].ID != gm.ID {
		t.Errorf("group DM history = %v", h)
	}
	// One other person named twice, with oneself: the DM, not a group.
	var same dmJSON
	e.api.Must(t, http.StatusOK, "POST", "/users/@me/channels", f.member.token, map[string]any{"recipients": []string{f.owner.id, f.owner.id, f.member.id}}, &same)
	if same.ID != dm.ID || same.Type != guildhall.ChannelTypeDM {
		t.Errorf("recipients [owner owner self] = %+v; want the DM %s", same, dm.ID)
	}
	ten := make([]string, 10)
	for i := range ten {
		ten[i] = fmt.Sprint(1000 + i)
	}
	status, raw = e.api.Do(t, "POST", "/users/@me/channels", f.member.token, map[string]any{"recipients": ten}, nil)
	wantError(t, status, raw, http.StatusBadRequest, 50035)
}

func TestReadStates(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	f := e.fixture()
	first := e.post(f.owner.token, f.channel, "first")
	e.post(f.owner.token, f.channel, "hey <@"+f.member.id+">")
	e.post(f.owner.token, f.channel, "nothing for you")
	last := e.post(f.owner.token, f.channel, "@everyone listen")
	var ch struct {
		LastMessageID *string `json:"last_message_id"`
	}
	e.api.Must(t, http.StatusOK, "GET", "/channels/"+f.channel, f.member.token, nil, &ch)
	if ch.LastMessageID == nil || *ch.LastMessageID != last.ID {
		t.Errorf("channel last_message_id = %v; want %s", ch.LastMessageID, last.ID)
	}

	var ack map[string]any
	e.api.Must(t, http.StatusOK, "POST", "/channels/"+f.channel+"/messages/"+first.ID+"/ack", f.member.token, map[string]any{"token": nil}, &ack)
	if v, ok := ack["token"]; !ok || v != nil {
		t.Errorf("ack answer = %v; want {token: null}", ack)
	}
	ev := wantLastEvent(t, e, ghnats.UserInSubject(mustID(t, f.member.id)), guildhall.EventMessageAck)
	var ma guildhall.MessageAck
	if err := json.Unmarshal(ev.Data, &ma); err != nil || ma.ChannelID.String() != f.channel || ma.MessageID.String() != first.ID || ma.Version == 0 {
		t.Errorf("MESSAGE_ACK = %s", ev.Data)
	}
	member := guildhall.User{ID: guildhall.Snowflake(mustID(t, f.member.id))}
	// Read states read the store without the read barrier: wait for the writer.
	check := func(want guildhall.ReadState, what string) {
		t.Helper()
		var rs []guildhall.ReadState
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			var err error
			if rs, err = e.svc.ReadStates(context.Background(), member, nil); err != nil {
				t.Fatal(err)
			}
			if len(rs) == 1 && rs[0].ChannelID == want.ChannelID && rs[0].LastMessageID == want.LastMessageID && rs[0].MentionCount == want.MentionCount {
				return
			}
			if time.Now().After(deadline) {
				break
			}
		}
		t.Errorf("%s: read states = %+v; want %+v", what, rs, want)
	}
	chID := guildhall.Snowflake(mustID(t, f.channel))
	check(guildhall.ReadState{ChannelID: chID, LastMessageID: guildhall.Snowflake(mustID(t, first.ID)), MentionCount: 2}, "acked the first of four")
	e.api.Must(t, http.StatusOK, "POST", "/channels/"+f.channel+"/messages/"+last.ID+"/ack", f.member.token, nil, nil)
	check(guildhall.ReadState{ChannelID: chID, LastMessageID: guildhall.Snowflake(mustID(t, last.ID))}, "acked the last")
	// Marking unread (an ack back in time) is an ack like any other.
	e.api.Must(t, http.StatusOK, "POST", "/channels/"+f.channel+"/messages/"+first.ID+"/ack", f.member.token, nil, nil)
	check(guildhall.ReadState{ChannelID: chID, LastMessageID: guildhall.Snowflake(mustID(t, first.ID)), MentionCount: 2}, "acked back to the first")

	// Refusals: an outsider, an unknown channel, a message id from the future.
	status, raw := e.api.Do(t, "POST", "/channels/"+f.channel+"/messages/"+first.ID+"/ack", f.outsider.token, nil, nil)
	wantError(t, status, raw, http.StatusForbidden, 50001)
	status, raw = e.api.Do(t, "POST", "/channels/12345/messages/"+first.ID+"/ack", f.member.token, nil, nil)
	wantError(t, status, raw, http.StatusNotFound, 10003)
	future := guildhall.SnowflakeAt(time.Now().Add(time.Hour))
	status, raw = e.api.Do(t, "POST", "/channels/"+f.channel+"/messages/"+future.String()+"/ack", f.member.token, nil, nil)
	wantError(t, status, raw, http.StatusNotFound, 10008)

	// A DM never acked counts every message of the other participant.
	var dm dmJSON
	e.api.Must(t, http.StatusOK, "POST", "/users/@me/channels", f.owner.token, map[string]string{"recipient_id": f.member.id}, &dm)
	e.post(f.owner.token, dm.ID, "psst")
	e.post(f.owner.token, dm.ID, "psst again")
	e.history(f.member.token, dm.ID, "") // the read barrier: both are stored
	rs, err := e.svc.ReadStates(context.Background(), member, nil)
	if err != nil {
		t.Fatal(err)
	}
	var dmState *guildhall.ReadState
	for i := range rs {
		if rs[i].ChannelID.String() == dm.ID {
			dmState = &rs[i]
		}
	}
	if dmState == nil || dmState.MentionCount != 2 || dmState.LastMessageID != 0 {
		t.Errorf("DM read state = %+v; want 2 mentions, nothing acked", dmState)
	}
}

// Files a browser would run as a page from the api's origin are served as
// downloads; media and plain text show in place; nothing is sniffed.
func TestAttachmentDisposition(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	f := e.fixture()
	for _, c := range []struct {
		name, body string
		inline     bool
	}{
		{"page.html", "<html><script>alert(1)</script></html>", false},
		{"pic.svg", `<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`, false},
		{"doc.pdf", "%PDF-1.4\n", false},
		{"notes.txt", "just text", true},
		{"pic.png", string(pngImage(t, 2, 2)), true},
	} {
		status, raw, m := e.upload(t, f.member.token, f.channel, map[string]any{"content": c.name}, namedFile{c.name, strings.NewReader(c.body)})
		if status != http.StatusOK || len(m.Attachments) != 1 {
			t.Fatalf("upload %s = %d %s", c.name, status, raw)
		}
		resp, _ := download(t, m.Attachments[0].URL, nil)
		disp := resp.Header.Get("Content-Disposition")
		if (disp == "") != c.inline || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s (%s): Content-Disposition %q, nosniff %q; want inline %v", c.name, resp.Header.Get("Content-Type"), disp, resp.Header.Get("X-Content-Type-Options"), c.inline)
		}
	}
}

// waitFilesGone waits until none of urls is served (HEAD 404).
func waitFilesGone(t *testing.T, what string, urls ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		served := 0
		for _, u := range urls {
			r, err := http.Head(u)
			if err != nil {
				t.Fatal(err)
			}
			r.Body.Close()
			if r.StatusCode != http.StatusNotFound {
				served++
			}
		}
		if served == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d files still served", what, served, len(urls))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestModerationDeletesFiles: messages deleted by a moderator in bulk, or by a
// ban's delete_message_seconds, lose their files as a single delete does.
func TestModerationDeletesFiles(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	f := e.fixture()
	withFile := func(name string) (id, url string) {
		t.Helper()
		status, raw, m := e.upload(t, f.member.token, f.channel, map[string]any{"content": name},
			namedFile{name, bytes.NewReader(randomBytes(1000, uint64(len(name))))})
		if status != http.StatusOK || len(m.Attachments) != 1 {
			t.Fatalf("upload %s = %d %s", name, status, raw)
		}
		resp, _ := download(t, m.Attachments[0].URL, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("download %s = %d", name, resp.StatusCode)
		}
		return m.ID, m.Attachments[0].URL
	}
	id1, url1 := withFile("one.bin")
	id2, url2 := withFile("two.bin")
	_, keptURL := withFile("kept.bin")
	e.api.Must(t, http.StatusNoContent, "POST", "/channels/"+f.channel+"/messages/bulk-delete", f.owner.token,
		map[string]any{"messages": []string{id1, id2}}, nil)
	waitFilesGone(t, "bulk delete", url1, url2)
	if resp, _ := download(t, keptURL, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("a message not bulk-deleted lost its file: %d", resp.StatusCode)
	}

	e.api.Must(t, http.StatusNoContent, "PUT", "/guilds/"+f.guild+"/bans/"+f.member.id, f.owner.token,
		map[string]any{"delete_message_seconds": 3600}, nil)
	waitFilesGone(t, "ban with delete_message_seconds", keptURL)
}

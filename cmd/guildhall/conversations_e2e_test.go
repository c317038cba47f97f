package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/testenv"
	"github.com/nats-io/nats.go/jetstream"
)

// End-to-end tests of conversations with live gateway sessions: every event
// reaches the sessions that should have it, exactly once, and a resumed session
// is replayed reactions and DMs exactly once.

type dmChannel struct {
	ID         string `json:"id"`
	Type       int    `json:"type"`
	Recipients []struct {
		ID string `json:"id"`
	} `json:"recipients"`
}

func openDM(t *testing.T, s *stack, token, recipient string) dmChannel {
	t.Helper()
	var dm dmChannel
	s.rest.Must(t, http.StatusOK, "POST", "/users/@me/channels", token, map[string]string{"recipient_id": recipient}, &dm)
	return dm
}

func react(t *testing.T, s *stack, method, token, channel, message, emoji, who string) {
	t.Helper()
	path := "/channels/" + channel + "/messages/" + message + "/reactions"
	if emoji != "" {
		path += "/" + url.PathEscape(emoji) + who
	}
	s.rest.Must(t, http.StatusNoContent, method, path, token, nil, nil)
}

// eventsOf lists the dispatches of the given types a session received, as
// "TYPE message/channel" strings, in order.
func eventsOf(t *testing.T, c *testenv.GatewayClient, types ...string) []string {
	t.Helper()
	var out []string
	for _, p := range c.All() {
		if p.Op != 0 || !slices.Contains(types, p.T) {
			continue
		}
		var d struct {
			ID        string `json:"id"`
			MessageID string `json:"message_id"`
			ChannelID string `json:"channel_id"`
			Emoji     struct {
				Name string `json:"name"`
			} `json:"emoji"`
		}
		if err := json.Unmarshal(p.D, &d); err != nil {
			t.Fatalf("%s d %s: %v", p.T, p.D, err)
		}
		id := cmpOr(d.MessageID, d.ID)
		out = append(out, strings.TrimSpace(p.T+" "+id+" "+d.Emoji.Name))
	}
	return out
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// waitEvents waits until a session has received n dispatches of the types.
func waitEvents(t *testing.T, c *testenv.GatewayClient, n int, types ...string) []string {
	t.Helper()
	var got []string
	testenv.Eventually(t, 10*time.Second, func() error {
		if got = eventsOf(t, c, types...); len(got) < n {
			return fmt.Errorf("%d of %d events: %v", len(got), n, got)
		}
		return nil
	})
	return got
}

var conversationEvents = []string{
	"MESSAGE_CREATE", "MESSAGE_DELETE", "CHANNEL_CREATE", "MESSAGE_REACTION_ADD", "MESSAGE_REACTION_REMOVE",
	"MESSAGE_REACTION_REMOVE_EMOJI", "MESSAGE_REACTION_REMOVE_ALL", "MESSAGE_ACK",
}

// TestConversationEventsLive: replies, reactions, DMs and acks reach the live
// sessions that should have them, exactly once, and nobody else.
func TestConversationEventsLive(t *testing.T) {
	s := startStack(t, t.TempDir())
	f := newGuildFixture(t, s)
	member := testenv.DialGateway(t, s.gatewayURL())
	member.Identify(f.memberToken)
	member2 := testenv.DialGateway(t, s.gatewayURL()) // the member's second session
	member2.Identify(f.memberToken)
	owner := testenv.DialGateway(t, s.gatewayURL())
	owner.Identify(f.ownerToken)
	outsider := testenv.DialGateway(t, s.gatewayURL())
	outsider.Identify(f.outsiderToken)
	// A member session without the reaction intents.
	noReactions := testenv.DialGateway(t, s.gatewayURL())
	noReactions.IdentifyWithIntents(f.memberToken, int64(guildhall.IntentsAll&^(guildhall.IntentGuildMessageReactions|guildhall.IntentDirectMessageReactions)))
	for _, c := range []*testenv.GatewayClient{member, member2, owner, noReactions} {
		c.WaitFor(t, "GUILD_CREATE", 5*time.Second)
	}

	q := s.post(t, f.ownerToken, f.channelID, "question?")
	var reply struct {
		message
		ReferencedMessage *message `json:"referenced_message"`
	}
	s.rest.Must(t, http.StatusOK, "POST", "/channels/"+f.channelID+"/messages", f.memberToken,
		map[string]any{"content": "answer", "message_reference": map[string]string{"message_id": q.ID}}, &reply)
	react(t, s, "PUT", f.ownerToken, f.channelID, reply.ID, "🔥", "/@me")
	react(t, s, "PUT", f.memberToken, f.channelID, reply.ID, "🔥", "/@me")
	react(t, s, "PUT", f.memberToken, f.channelID, reply.ID, "👍", "/@me")
	react(t, s, "DELETE", f.memberToken, f.channelID, reply.ID, "🔥", "/@me")
	react(t, s, "DELETE", f.ownerToken, f.channelID, reply.ID, "🔥", "")
	react(t, s, "DELETE", f.ownerToken, f.channelID, reply.ID, "", "")
	guild := []string{
		"MESSAGE_CREATE " + q.ID, "MESSAGE_CREATE " + reply.ID,
		"MESSAGE_REACTION_ADD " + reply.ID + " 🔥", "MESSAGE_REACTION_ADD " + reply.ID + " 🔥", "MESSAGE_REACTION_ADD " + reply.ID + " 👍",
		"MESSAGE_REACTION_REMOVE " + reply.ID + " 🔥", "MESSAGE_REACTION_REMOVE_EMOJI " + reply.ID + " 🔥", "MESSAGE_REACTION_REMOVE_ALL " + reply.ID,
	}

	dm := openDM(t, s, f.memberToken, f.ownerID)
	psst := s.post(t, f.ownerToken, dm.ID, "psst")
	react(t, s, "PUT", f.memberToken, dm.ID, psst.ID, "👀", "/@me")
	s.rest.Must(t, http.StatusOK, "POST", "/channels/"+dm.ID+"/messages/"+psst.ID+"/ack", f.memberToken, map[string]any{}, nil)
	direct := []string{"CHANNEL_CREATE " + dm.ID, "MESSAGE_CREATE " + psst.ID, "MESSAGE_REACTION_ADD " + psst.ID + " 👀"}

	for _, c := range []struct {
		name    string
		session *testenv.GatewayClient
		want    []string
	}{
		{"member", member, slices.Concat(guild, direct, []string{"MESSAGE_ACK " + psst.ID})},
		{"member's second session", member2, slices.Concat(guild, direct, []string{"MESSAGE_ACK " + psst.ID})},
		{"owner", owner, slices.Concat(guild, direct)},
		{"member without reaction intents", noReactions, []string{"MESSAGE_CREATE " + q.ID, "MESSAGE_CREATE " + reply.ID, "CHANNEL_CREATE " + dm.ID, "MESSAGE_CREATE " + psst.ID, "MESSAGE_ACK " + psst.ID}},
	} {
		got := waitEvents(t, c.session, len(c.want), conversationEvents...)
		time.Sleep(100 * time.Millisecond) // anything extra would have come by now
		if got = eventsOf(t, c.session, conversationEvents...); !slices.Equal(got, c.want) {
			t.Errorf("%s received\n%s\nwant\n%s", c.name, strings.Join(got, "\n"), strings.Join(c.want, "\n"))
		}
	}
	if got := eventsOf(t, outsider, conversationEvents...); len(got) != 0 {
		t.Errorf("the outsider received %v", got)
	}
	// The reply's MESSAGE_CREATE embeds the message it answers.
	for _, p := range member.Dispatches("MESSAGE_CREATE") {
		if bytes.Contains(p.D, []byte(`"id":"`+reply.ID+`"`)) && !bytes.Contains(p.D, []byte(`"referenced_message":{`)) {
			t.Errorf("reply's MESSAGE_CREATE = %s", p.D)
		}
	}
}

// TestResumeReplaysReactionsAndDMs: a session that drops misses reactions, a DM
// being opened, DM messages and reactions; on RESUME it is replayed each exactly
// once, in order, then RESUMED, then live events.
func TestResumeReplaysReactionsAndDMs(t *testing.T) {
	s := startStack(t, t.TempDir())
	f := newGuildFixture(t, s)
	c := testenv.DialGateway(t, s.gatewayURL())
	ready := c.Identify(f.memberToken)
	sessionID := decode[struct {
		SessionID string `json:"session_id"`
	}](t, ready.D).SessionID
	c.WaitFor(t, "GUILD_CREATE", 5*time.Second)
	m := s.post(t, f.ownerToken, f.channelID, "react to me")
	c.WaitFor(t, "MESSAGE_CREATE", 5*time.Second)
	seq := c.LastSeq()
	c.Drop()

	react(t, s, "PUT", f.ownerToken, f.channelID, m.ID, "🔥", "/@me")
	dm := openDM(t, s, f.ownerToken, f.memberID)
	var missed []string
	missed = append(missed, "MESSAGE_REACTION_ADD "+m.ID+" 🔥", "CHANNEL_CREATE "+dm.ID)
	for i := range 5 {
		d := s.post(t, f.ownerToken, dm.ID, fmt.Sprintf("dm %d", i))
		missed = append(missed, "MESSAGE_CREATE "+d.ID)
		if i == 2 {
			react(t, s, "PUT", f.ownerToken, dm.ID, d.ID, "👀", "/@me")
			react(t, s, "DELETE", f.ownerToken, dm.ID, d.ID, "👀", "/@me")
			missed = append(missed, "MESSAGE_REACTION_ADD "+d.ID+" 👀", "MESSAGE_REACTION_REMOVE "+d.ID+" 👀")
		}
	}
	react(t, s, "DELETE", f.ownerToken, f.channelID, m.ID, "🔥", "/@me")
	missed = append(missed, "MESSAGE_REACTION_REMOVE "+m.ID+" 🔥")

	c2 := testenv.DialGateway(t, s.gatewayURL())
	c2.WaitFor(t, "op:10", 5*time.Second)
	if err := c2.Resume(f.memberToken, sessionID, seq); err != nil {
		t.Fatal(err)
	}
	c2.WaitFor(t, "RESUMED", 10*time.Second)
	live := s.post(t, f.ownerToken, dm.ID, "live")
	want := append(missed, "MESSAGE_CREATE "+live.ID)
	waitEvents(t, c2, len(want), conversationEvents...)
	time.Sleep(100 * time.Millisecond)
	var got []string
	resumedAt, liveAt := -1, -1
	for i, p := range c2.All() {
		if p.T == "RESUMED" {
			resumedAt = i
		}
		if p.T == "MESSAGE_CREATE" && bytes.Contains(p.D, []byte(live.ID)) {
			liveAt = i
		}
	}
	got = eventsOf(t, c2, conversationEvents...)
	if !slices.Equal(got, want) {
		t.Fatalf("after resume got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if liveAt < resumedAt {
		t.Errorf("the live DM (payload %d) came before RESUMED (payload %d)", liveAt, resumedAt)
	}
}

// TestAttachmentsUnderRolePermissions: with every role on its own NATS identity,
// the api stores files and serves them, the writer deletes them with their
// message, and a post that fails leaves none behind.
func TestAttachmentsUnderRolePermissions(t *testing.T) {
	s := startStack(t, t.TempDir())
	f := newGuildFixture(t, s)
	post := func(content string) (int, []byte) {
		body := &bytes.Buffer{}
		mw := multipart.NewWriter(body)
		w, _ := mw.CreateFormFile("files[0]", "note.txt")
		_, _ = w.Write([]byte("a note for " + content))
		_ = mw.WriteField("payload_json", `{"content":"`+content+`"}`)
		_ = mw.Close()
		req, _ := http.NewRequest("POST", s.rest.Base+"/channels/"+f.channelID+"/messages", body)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.Header.Set("Authorization", f.memberToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, raw
	}
	status, raw := post("kept")
	var m struct {
		ID          string `json:"id"`
		Attachments []struct {
			URL string `json:"url"`
		} `json:"attachments"`
	}
	if err := json.Unmarshal(raw, &m); status != http.StatusOK || err != nil || len(m.Attachments) != 1 {
		t.Fatalf("upload = %d %s", status, raw)
	}
	resp, err := http.Get(m.Attachments[0].URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "a note for kept" {
		t.Fatalf("download = %d %q", resp.StatusCode, body)
	}
	s.rest.Must(t, http.StatusNoContent, "DELETE", "/channels/"+f.channelID+"/messages/"+m.ID, f.memberToken, nil, nil)
	testenv.Eventually(t, 10*time.Second, func() error {
		resp, err := http.Head(m.Attachments[0].URL)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			return fmt.Errorf("file of the deleted message: %d", resp.StatusCode)
		}
		return nil
	})
	// A post refused after its file was stored (content too long): the api
	// deletes the file itself.
	status, raw = post(strings.Repeat("x", 2001))
	if status != http.StatusBadRequest {
		t.Fatalf("long post = %d %s", status, raw)
	}
	url, err := os.ReadFile(filepath.Join(s.data, "nats.url"))
	if err != nil {
		t.Fatal(err)
	}
	nc, js := testenv.NATSConnectAs(t, strings.TrimSpace(string(url)), filepath.Join(s.data, "creds"), ghnats.RoleOperator)
	defer nc.Close()
	obs, err := js.ObjectStore(context.Background(), ghnats.BucketAttachments)
	if err != nil {
		t.Fatal(err)
	}
	if list, err := obs.List(context.Background()); !errors.Is(err, jetstream.ErrNoObjectsFound) {
		t.Errorf("files left: %d (%v); want none", len(list), err)
	}
	// Not just marked deleted: their chunks are gone from the stream.
	st, err := js.Stream(context.Background(), ghnats.StreamAttachments)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(ghnats.ObjectChunkSubject(ghnats.BucketAttachments, ">")))
	if err != nil {
		t.Fatal(err)
	}
	if len(info.State.Subjects) != 0 {
		t.Errorf("chunks left in the stream: %v", info.State.Subjects)
	}
}

// TestReadyCarriesConversations: READY lists the user's DMs and read states
// (mention counts included), and GUILD_CREATE each channel's last message.
func TestReadyCarriesConversations(t *testing.T) {
	s := startStack(t, t.TempDir())
	f := newGuildFixture(t, s)
	keep := testenv.DialGateway(t, s.gatewayURL()) // keeps the guild's room alive on the gateway
	keep.Identify(f.ownerToken)
	first := s.post(t, f.ownerToken, f.channelID, "first")
	s.rest.Must(t, http.StatusOK, "POST", "/channels/"+f.channelID+"/messages/"+first.ID+"/ack", f.memberToken, map[string]any{}, nil)
	s.post(t, f.ownerToken, f.channelID, "hey <@"+f.memberID+">")
	last := s.post(t, f.ownerToken, f.channelID, "@everyone")
	dm := openDM(t, s, f.ownerToken, f.memberID)
	psst := s.post(t, f.ownerToken, dm.ID, "psst")
	// READY reads the store without the read barrier: let the writer store them.
	s.rest.Must(t, http.StatusOK, "GET", "/channels/"+f.channelID+"/messages", f.memberToken, nil, nil)
	s.rest.Must(t, http.StatusOK, "GET", "/channels/"+dm.ID+"/messages", f.memberToken, nil, nil)

	c := testenv.DialGateway(t, s.gatewayURL())
	ready := decode[struct {
		PrivateChannels []struct {
			ID            string  `json:"id"`
			Type          int     `json:"type"`
			LastMessageID *string `json:"last_message_id"`
			Recipients    []struct {
				ID string `json:"id"`
			} `json:"recipients"`
		} `json:"private_channels"`
		ReadState struct {
			Entries []struct {
				ID            string `json:"id"`
				LastMessageID string `json:"last_message_id"`
				MentionCount  int    `json:"mention_count"`
			} `json:"entries"`
		} `json:"read_state"`
	}](t, c.Identify(f.memberToken).D)
	if len(ready.PrivateChannels) != 1 || ready.PrivateChannels[0].ID != dm.ID || ready.PrivateChannels[0].Type != 1 ||
		ready.PrivateChannels[0].LastMessageID == nil || *ready.PrivateChannels[0].LastMessageID != psst.ID ||
		len(ready.PrivateChannels[0].Recipients) != 1 || ready.PrivateChannels[0].Recipients[0].ID != f.ownerID {
		t.Errorf("READY private_channels = %+v", ready.PrivateChannels)
	}
	states := map[string]string{}
	for _, e := range ready.ReadState.Entries {
		states[e.ID] = fmt.Sprintf("%s/%d", e.LastMessageID, e.MentionCount)
	}
	want := map[string]string{f.channelID: first.ID + "/2", dm.ID: "0/1"}
	if fmt.Sprint(states) != fmt.Sprint(want) {
		t.Errorf("READY read_state = %v; want %v", states, want)
	}
	gc := decode[struct {
		Channels []struct {
			ID            string  `json:"id"`
			LastMessageID *string `json:"last_message_id"`
		} `json:"channels"`
	}](t, c.WaitFor(t, "GUILD_CREATE", 5*time.Second).D)
	if len(gc.Channels) != 1 || gc.Channels[0].LastMessageID == nil || *gc.Channels[0].LastMessageID != last.ID {
		t.Errorf("GUILD_CREATE channels = %+v; want last_message_id %s", gc.Channels, last.ID)
	}
}

// TestMentionAndDMContentWithoutIntent: a session without MESSAGE_CONTENT gets
// the content of guild messages that mention its user and of its DMs, and not
// of other guild messages; typing in a DM reaches the other participant's
// sessions that ask for DIRECT_MESSAGE_TYPING.
func TestMentionAndDMContentWithoutIntent(t *testing.T) {
	s := startStack(t, t.TempDir())
	f := newGuildFixture(t, s)
	noContent := int64(guildhall.IntentsAll &^ guildhall.IntentMessageContent)
	c := testenv.DialGateway(t, s.gatewayURL())
	c.IdentifyWithIntents(f.memberToken, noContent)
	noTyping := testenv.DialGateway(t, s.gatewayURL())
	noTyping.IdentifyWithIntents(f.memberToken, int64(guildhall.IntentsAll&^guildhall.IntentDirectMessageTyping))
	owner := testenv.DialGateway(t, s.gatewayURL())
	owner.Identify(f.ownerToken)
	c.WaitFor(t, "GUILD_CREATE", 5*time.Second)

	plain := s.post(t, f.ownerToken, f.channelID, "not for you")
	ping := s.post(t, f.ownerToken, f.channelID, "for you <@"+f.memberID+">")
	dm := openDM(t, s, f.ownerToken, f.memberID)
	direct := s.post(t, f.ownerToken, dm.ID, "just us")
	s.rest.Must(t, http.StatusNoContent, "POST", "/channels/"+dm.ID+"/typing", f.ownerToken, nil, nil)
	typing := c.WaitFor(t, "TYPING_START", 10*time.Second)
	if d := decode[struct {
		ChannelID string `json:"channel_id"`
		UserID    string `json:"user_id"`
		GuildID   string `json:"guild_id"`
	}](t, typing.D); d.ChannelID != dm.ID || d.UserID != f.ownerID || d.GuildID != "" {
		t.Errorf("DM TYPING_START = %s", typing.D)
	}
	content := map[string]string{}
	waitEvents(t, c, 3, "MESSAGE_CREATE")
	for _, p := range c.Dispatches("MESSAGE_CREATE") {
		m := decode[message](t, p.D)
		content[m.ID] = m.Content
	}
	want := map[string]string{plain.ID: "", ping.ID: "for you <@" + f.memberID + ">", direct.ID: "just us"}
	if fmt.Sprint(content) != fmt.Sprint(want) {
		t.Errorf("contents without MESSAGE_CONTENT = %v; want %v", content, want)
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(noTyping.Dispatches("TYPING_START")); n != 0 {
		t.Errorf("a session without DIRECT_MESSAGE_TYPING got %d TYPING_START", n)
	}
	if n := len(owner.Dispatches("TYPING_START")); n != 0 {
		t.Errorf("the typist's own session got %d TYPING_START", n)
	}
}

// TestConversationsSurviveRestart: read states, reactions, DMs and files are
// all still there after the server restarts on its data.
func TestConversationsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	s := startStack(t, dir)
	f := newGuildFixture(t, s)
	first := s.post(t, f.ownerToken, f.channelID, "first")
	s.rest.Must(t, http.StatusOK, "POST", "/channels/"+f.channelID+"/messages/"+first.ID+"/ack", f.memberToken, map[string]any{}, nil)
	ping := s.post(t, f.ownerToken, f.channelID, "<@"+f.memberID+"> look")
	react(t, s, "PUT", f.memberToken, f.channelID, ping.ID, "👀", "/@me")
	dm := openDM(t, s, f.ownerToken, f.memberID)
	psst := s.post(t, f.ownerToken, dm.ID, "psst")
	s.rest.Must(t, http.StatusOK, "GET", "/channels/"+dm.ID+"/messages", f.memberToken, nil, nil)
	s.stop(t)

	s2 := startStack(t, dir)
	c := testenv.DialGateway(t, s2.gatewayURL())
	ready := decode[struct {
		PrivateChannels []struct {
			ID string `json:"id"`
		} `json:"private_channels"`
		ReadState struct {
			Entries []struct {
				ID            string `json:"id"`
				LastMessageID string `json:"last_message_id"`
				MentionCount  int    `json:"mention_count"`
			} `json:"entries"`
		} `json:"read_state"`
	}](t, c.Identify(f.memberToken).D)
	states := map[string]string{}
	for _, e := range ready.ReadState.Entries {
		states[e.ID] = fmt.Sprintf("%s/%d", e.LastMessageID, e.MentionCount)
	}
	if want := map[string]string{f.channelID: first.ID + "/1", dm.ID: "0/1"}; fmt.Sprint(states) != fmt.Sprint(want) {
		t.Errorf("read states after restart = %v; want %v", states, want)
	}
	if len(ready.PrivateChannels) != 1 || ready.PrivateChannels[0].ID != dm.ID {
		t.Errorf("DMs after restart = %+v", ready.PrivateChannels)
	}
	var m struct {
		Reactions []struct {
			Count int  `json:"count"`
			Me    bool `json:"me"`
		} `json:"reactions"`
	}
	s2.rest.Must(t, http.StatusOK, "GET", "/channels/"+f.channelID+"/messages/"+ping.ID, f.memberToken, nil, &m)
	if len(m.Reactions) != 1 || m.Reactions[0].Count != 1 || !m.Reactions[0].Me {
		t.Errorf("reactions after restart = %+v", m.Reactions)
	}
	var hist []message
	s2.rest.Must(t, http.StatusOK, "GET", "/channels/"+dm.ID+"/messages", f.memberToken, nil, &hist)
	if len(hist) != 1 || hist[0].ID != psst.ID {
		t.Errorf("DM history after restart = %+v", hist)
	}
}

package gateway

import (
	"encoding/json"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/testenv"
)

// IDENTIFY with bits Discord does not define, or negative intents, is closed with
// 4013 before anything else happens (this test runs no api: a valid IDENTIFY
// would reach it and close with 4000).
func TestIdentifyInvalidIntents(t *testing.T) {
	_, url := startGatewayNoAPI(t, Config{HeartbeatInterval: time.Hour, APITimeout: time.Second})

	for _, tc := range []struct {
		intents int64
		want    int
	}{{1 << 40, CloseInvalidIntents}, {-1, CloseInvalidIntents}, {1 << 17, CloseInvalidIntents}, {int64(guildhall.IntentsAll), CloseUnknownError}} {
		c := testenv.DialGateway(t, url)
		c.WaitFor(t, "op:10", 5*time.Second)
		if err := c.SendIdentify("Bot x", tc.intents); err != nil {
			t.Fatal(err)
		}
		if code, _ := c.WaitClose(10 * time.Second); code != tc.want {
			t.Errorf("IDENTIFY with intents %d closed with %d; want %d", tc.intents, code, tc.want)
		}
	}
}

func TestIdentifyIntentsDefault(t *testing.T) {
	if i, ok := identifyIntents(nil); !ok || i != guildhall.IntentsAll {
		t.Fatalf("IDENTIFY without intents gets %b, %v; want every intent", i, ok)
	}
}

// sharedDispatch is a frame every session receives whatever its intents.
func sharedDispatch(f *frame) *dispatch { return &dispatch{full: f} }

// Each session gets the frame its intents allow: none, the full one, or the
// content-less one, built once and shared.
func TestDispatchFrameFor(t *testing.T) {
	const author = guildhall.Snowflake(7)
	msg := []byte(`{"id":"1","channel_id":"2","guild_id":"3","author":{"id":"7"},"content":"secret","embeds":[{}],"attachments":[{}],"components":[{}],"type":0}`)
	d := newDispatch(guildhall.Event{Type: guildhall.EventMessageCreate, GuildID: 3, ChannelID: 2, UserID: author, Data: msg}, 42)
	session := func(id guildhall.Snowflake, i guildhall.Intents) *Session {
		return &Session{user: guildhall.User{ID: id}, intents: i}
	}
	guildsOnly := session(8, guildhall.IntentGuilds)
	noContent := session(8, guildhall.IntentGuilds|guildhall.IntentGuildMessages)
	noContent2 := session(9, guildhall.IntentGuildMessages)
	own := session(author, guildhall.IntentGuildMessages)
	full := session(8, guildhall.IntentGuildMessages|guildhall.IntentMessageContent)

	if f := d.frameFor(guildsOnly); f != nil {
		t.Errorf("GUILDS only got %s", f.payload)
	}
	if d.frameFor(full) != d.full || d.frameFor(own) != d.full {
		t.Error("a session with MESSAGE_CONTENT, or the author's, did not get the full frame")
	}
	blank := d.frameFor(noContent)
	if blank == nil || blank == d.full || d.frameFor(noContent2) != blank {
		t.Fatal("sessions without MESSAGE_CONTENT did not share one content-less frame")
	}
	var p struct {
		S uint64
		D map[string]json.RawMessage
	}
	if err := json.Unmarshal(blank.payload, &p); err != nil {
		t.Fatal(err)
	}
	if p.S != 42 || string(p.D["content"]) != `""` || string(p.D["embeds"]) != `[]` || string(p.D["attachments"]) != `[]` ||
		string(p.D["components"]) != `[]` || string(p.D["id"]) != `"1"` {
		t.Errorf("content-less frame = %s", blank.payload)
	}
	if allocs := testing.AllocsPerRun(100, func() { _ = d.frameFor(noContent) }); allocs != 0 {
		t.Errorf("frameFor allocates %v times per recipient", allocs)
	}

	// Events that carry no content are never rewritten; READY-like ones need no intent.
	typing := newDispatch(guildhall.Event{Type: guildhall.EventTypingStart, GuildID: 3, ChannelID: 2, UserID: 8, Data: []byte(`{}`)}, 1)
	if typing.frameFor(noContent) != nil || typing.frameFor(session(8, guildhall.IntentGuildMessageTyping)) != typing.full {
		t.Error("TYPING_START not filtered by GUILD_MESSAGE_TYPING")
	}
	if sharedDispatch(d.full).frameFor(session(8, 0)) != d.full {
		t.Error("a shared dispatch was filtered")
	}
}

// The users a guild message mentions get its content without MESSAGE_CONTENT;
// a DM's participants always do; reactions follow their own intents.
func TestDispatchConversationExemptions(t *testing.T) {
	msg := []byte(`{"id":"1","channel_id":"2","guild_id":"3","author":{"id":"7"},"content":"hi <@8>","type":0}`)
	session := func(id guildhall.Snowflake, i guildhall.Intents) *Session {
		return &Session{user: guildhall.User{ID: id}, intents: i}
	}
	mentioned := session(8, guildhall.IntentGuildMessages)
	other := session(9, guildhall.IntentGuildMessages)
	d := newDispatch(guildhall.Event{Type: guildhall.EventMessageCreate, GuildID: 3, ChannelID: 2, UserID: 7, Data: msg, Mentions: []guildhall.Snowflake{5, 8}}, 1)
	if d.frameFor(mentioned) != d.full {
		t.Error("a mentioned user without MESSAGE_CONTENT did not get the content")
	}
	if f := d.frameFor(other); f == nil || f == d.full {
		t.Error("a user not mentioned, without MESSAGE_CONTENT, got the content")
	}
	if allocs := testing.AllocsPerRun(100, func() { _ = d.frameFor(mentioned); _ = d.frameFor(other) }); allocs != 0 {
		t.Errorf("frameFor allocates %v times per recipient", allocs)
	}

	dm := newDispatch(guildhall.Event{Type: guildhall.EventMessageCreate, ChannelID: 2, UserID: 9, Data: msg}, 1)
	dmOnly := session(9, guildhall.IntentDirectMessages)
	if dm.frameFor(dmOnly) != dm.full {
		t.Error("a DM participant without MESSAGE_CONTENT did not get the content")
	}
	if dm.frameFor(other) != nil {
		t.Error("a session without DIRECT_MESSAGES got a DM")
	}

	react := []byte(`{"user_id":"7","channel_id":"2","message_id":"1","guild_id":"3","emoji":{"id":null,"name":"🔥"}}`)
	gr := newDispatch(guildhall.Event{Type: guildhall.EventMessageReactionAdd, GuildID: 3, ChannelID: 2, UserID: 7, Data: react}, 1)
	if gr.frameFor(other) != nil || gr.frameFor(session(9, guildhall.IntentGuildMessageReactions)) != gr.full {
		t.Error("MESSAGE_REACTION_ADD not filtered by GUILD_MESSAGE_REACTIONS")
	}
	dr := newDispatch(guildhall.Event{Type: guildhall.EventMessageReactionAdd, ChannelID: 2, UserID: 9, Data: react}, 1)
	if dr.frameFor(session(9, guildhall.IntentGuildMessageReactions)) != nil || dr.frameFor(session(9, guildhall.IntentDirectMessageReactions)) != dr.full {
		t.Error("a DM's MESSAGE_REACTION_ADD not filtered by DIRECT_MESSAGE_REACTIONS")
	}
	typing := newDispatch(guildhall.Event{Type: guildhall.EventTypingStart, ChannelID: 2, UserID: 7, Data: []byte(`{}`)}, 1)
	if typing.frameFor(session(9, guildhall.IntentGuildMessageTyping)) != nil || typing.frameFor(session(9, guildhall.IntentDirectMessageTyping)) != typing.full {
		t.Error("a DM's TYPING_START not filtered by DIRECT_MESSAGE_TYPING")
	}
}

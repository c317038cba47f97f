package gateway

import (
	"encoding/json"
	"sync"
	"sync/atomic"

	guildhall "github.com/guildhall/guildhall"
)

// dispatch is one event framed for its recipients, with what decides which frame
// each session gets: nothing (its intents lack need), the full frame, or, for a
// session without MESSAGE_CONTENT, the event with its content blanked. Both frames
// are built once per event and shared; the blanked one only when some recipient
// needs it. Choosing costs a bit test per recipient with MESSAGE_CONTENT, and for
// one without it a comparison and a look through the message's mentions (most
// have none), no allocation.
type dispatch struct {
	full *frame
	need guildhall.Intents // 0: every session receives it
	// author is the message's author when the event carries message content of
	// a guild channel (0 otherwise, DMs included): the author's own sessions
	// always see it, and so do the users it mentions.
	author   guildhall.Snowflake
	mentions []guildhall.Snowflake

	t    string
	seq  uint64
	data []byte

	mu        sync.Mutex
	contentOK atomic.Pointer[frame] // the blanked frame, once built
}

// noFrame stands for a blanked frame that could not be built: such recipients get
// nothing rather than the content.
var noFrame = &frame{}

// newDispatch frames ev with sequence seq.
func newDispatch(ev guildhall.Event, seq uint64) *dispatch {
	d := &dispatch{
		full: dispatchFrame(ev.Type, seq, ev.Data),
		need: guildhall.EventIntent(ev.Type, ev.GuildID != 0),
		t:    ev.Type, seq: seq, data: ev.Data,
	}
	// A DM's content goes to its participants whatever their intents, as on
	// Discord: only guild messages are blanked.
	if guildhall.CarriesContent(ev.Type) && ev.GuildID != 0 {
		d.author, d.mentions = ev.UserID, ev.Mentions
		if d.author == 0 {
			d.author = ^guildhall.Snowflake(0) // unknown author: nobody's own
		}
	}
	return d
}

// frameFor is the frame s receives, nil for none. Safe from any goroutine.
//
// Of Discord's exemptions from MESSAGE_CONTENT: the author's own messages,
// messages that mention the session's user, and DMs.
func (d *dispatch) frameFor(s *Session) *frame {
	if s.intents&d.need != d.need {
		return nil
	}
	if d.author == 0 || s.intents&guildhall.IntentMessageContent != 0 || s.user.ID == d.author || d.mentioned(s.user.ID) {
		return d.full
	}
	f := d.contentOK.Load()
	if f == nil {
		f = d.blank()
	}
	if f == noFrame {
		return nil
	}
	return f
}

// mentioned reports whether the message mentions user u.
func (d *dispatch) mentioned(u guildhall.Snowflake) bool {
	for _, id := range d.mentions {
		if id == u {
			return true
		}
	}
	return false
}

func (d *dispatch) blank() *frame {
	d.mu.Lock()
	defer d.mu.Unlock()
	if f := d.contentOK.Load(); f != nil {
		return f
	}
	f := noFrame
	if b, ok := withoutContent(d.data); ok {
		f = dispatchFrame(d.t, d.seq, b)
	}
	d.contentOK.Store(f)
	return f
}

// withoutContent is a message payload as Discord sends it to a session without
// MESSAGE_CONTENT: content, embeds, attachments and components emptied.
func withoutContent(data []byte) ([]byte, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil || m == nil {
		return nil, false
	}
	m["content"] = json.RawMessage(`""`)
	for _, k := range []string{"embeds", "attachments", "components"} {
		m[k] = json.RawMessage(`[]`)
	}
	b, err := json.Marshal(m)
	return b, err == nil
}

// identifyIntents is the session's intents from IDENTIFY; false when they are
// invalid (close 4013). A client of an older version sends none and gets every
// intent, as it got every event before intents existed. Privileged intents are
// granted: Guildhall has no application settings that could withhold them.
func identifyIntents(v *int64) (guildhall.Intents, bool) {
	if v == nil {
		return guildhall.IntentsAll, true
	}
	i := guildhall.Intents(*v)
	return i, i.Valid()
}

package nats

import (
	"encoding/json"
	"strconv"
	"strings"

	guildhall "github.com/guildhall/guildhall"
	natsgo "github.com/nats-io/nats.go"
)

// Headers of an event message. The body is the dispatch payload (Event.Data), so a
// gateway frames a message without decoding JSON.
const (
	HeaderType    = "Gh-Type"
	HeaderChannel = "Gh-Channel"
	HeaderUser    = "Gh-User"
	HeaderGuild   = "Gh-Guild"
	// HeaderRequires carries Event.Requires (decimal), HeaderPin Event.Pin (JSON).
	HeaderRequires = "Gh-Requires"
	HeaderPin      = "Gh-Pin"
)

// EventMsg turns an event into the message to publish, with Nats-Msg-Id set to id so
// that a retried publish is stored once.
func EventMsg(ev guildhall.Event, id string) *natsgo.Msg {
	subject := GuildInSubject(uint64(ev.GuildID))
	if ev.GuildID == 0 {
		subject = UserInSubject(uint64(ev.UserID))
	}
	m := natsgo.NewMsg(subject)
	m.Data = ev.Data
	m.Header.Set(HeaderType, ev.Type)
	if ev.GuildID != 0 {
		m.Header.Set(HeaderGuild, ev.GuildID.String())
	}
	if ev.ChannelID != 0 {
		m.Header.Set(HeaderChannel, ev.ChannelID.String())
	}
	if ev.UserID != 0 {
		m.Header.Set(HeaderUser, ev.UserID.String())
	}
	if ev.Requires != 0 {
		m.Header.Set(HeaderRequires, itoa(uint64(ev.Requires)))
	}
	if ev.Pin != nil {
		if b, err := json.Marshal(ev.Pin); err == nil {
			m.Header.Set(HeaderPin, string(b))
		}
	}
	if id != "" {
		m.Header.Set(natsgo.MsgIdHdr, id)
	}
	SetHeaderIDs(m.Header, HeaderMentions, ev.Mentions)
	SetHeaderIDs(m.Header, HeaderAttachments, ev.Attachments)
	return m
}

// DecodeEvent reads an event back from a message's headers and body.
func DecodeEvent(h natsgo.Header, data []byte) guildhall.Event {
	ev := guildhall.Event{
		Type:      h.Get(HeaderType),
		GuildID:   headerID(h, HeaderGuild),
		ChannelID: headerID(h, HeaderChannel),
		UserID:    headerID(h, HeaderUser),
		Requires:  guildhall.Permissions(headerID(h, HeaderRequires)),
		Data:      data,
		Mentions:  HeaderIDs(h, HeaderMentions),
	}
	ev.Attachments = HeaderIDs(h, HeaderAttachments)
	if v := h.Get(HeaderPin); v != "" {
		var p guildhall.MessagePin
		if json.Unmarshal([]byte(v), &p) == nil {
			ev.Pin = &p
		}
	}
	return ev
}

func headerID(h natsgo.Header, key string) guildhall.Snowflake {
	v := h.Get(key)
	if v == "" {
		return 0
	}
	n, _ := strconv.ParseUint(v, 10, 64)
	return guildhall.Snowflake(n)
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }

// EphemeralMsg turns a guild event that must never be stored (typing, presence) into
// a core NATS message on the guild's ephemeral subject, same headers as EventMsg.
func EphemeralMsg(ev guildhall.Event) *natsgo.Msg {
	m := EventMsg(ev, "")
	m.Subject = EphemeralGuildSubject(uint64(ev.GuildID))
	return m
}

// Headers that tell a message event's consumers what the payload would make them
// decode: the users it mentions (Event.Mentions: gateways give them the content
// whatever their intents) and the attachments a delete frees (the writer deletes
// their files). Values are comma-separated decimal ids.
const (
	HeaderMentions    = "Gh-Mentions"
	HeaderAttachments = "Gh-Attachments"
)

// SetHeaderIDs sets key to ids, comma-separated; nothing when ids is empty.
func SetHeaderIDs(h natsgo.Header, key string, ids []guildhall.Snowflake) {
	if len(ids) == 0 {
		return
	}
	b := make([]byte, 0, 20*len(ids))
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, uint64(id), 10)
	}
	h.Set(key, string(b))
}

// HeaderIDs reads the ids SetHeaderIDs wrote; ids that do not parse are skipped.
func HeaderIDs(h natsgo.Header, key string) []guildhall.Snowflake {
	v := h.Get(key)
	if v == "" {
		return nil
	}
	var out []guildhall.Snowflake
	for len(v) > 0 {
		part := v
		if i := strings.IndexByte(v, ','); i >= 0 {
			part, v = v[:i], v[i+1:]
		} else {
			v = ""
		}
		if n, err := strconv.ParseUint(part, 10, 64); err == nil && n != 0 {
			out = append(out, guildhall.Snowflake(n))
		}
	}
	return out
}

// EphemeralUserMsg is EphemeralMsg for one user (typing in a DM): on the user's
// ephemeral subject, same headers as EventMsg.
func EphemeralUserMsg(ev guildhall.Event, user uint64) *natsgo.Msg {
	m := EventMsg(ev, "")
	m.Subject = EphemeralUserSubject(user)
	return m
}

package presence

import (
	"encoding/json"
	"net/url"
	"time"
	"unicode/utf8"

	guildhall "github.com/guildhall/guildhall"
)

// Activity is an activity object in Discord's shape, as others receive it in
// PRESENCE_UPDATE and GUILD_MEMBERS_CHUNK. A client sends what it likes; the
// gateway keeps what Discord lets a bot set (name, type, url, state) and what a
// rich presence adds that fits Discord's types (details, timestamps, emoji),
// drops the rest, and stamps created_at itself, as Discord does: libraries
// decode these fields with fixed types (discordgo's Activity reads created_at as
// an integer of milliseconds), so one field in another shape would lose the
// whole dispatch for them.
type Activity struct {
	Name      string              `json:"name"`
	Type      ActivityType        `json:"type"`
	URL       *string             `json:"url,omitempty"`
	CreatedAt int64               `json:"created_at"` // Unix milliseconds
	State     *string             `json:"state,omitempty"`
	Details   *string             `json:"details,omitempty"`
	Timestamp *ActivityTimestamps `json:"timestamps,omitempty"`
	Emoji     *ActivityEmoji      `json:"emoji,omitempty"`
}

// ActivityType is Discord's activity type.
type ActivityType int

// Activity types (Discord's).
const (
	ActivityPlaying   ActivityType = 0
	ActivityStreaming ActivityType = 1
	ActivityListening ActivityType = 2
	ActivityWatching  ActivityType = 3
	ActivityCustom    ActivityType = 4
	ActivityCompeting ActivityType = 5
)

// ActivityTimestamps are an activity's start and end, Unix milliseconds.
type ActivityTimestamps struct {
	Start int64 `json:"start,omitempty"`
	End   int64 `json:"end,omitempty"`
}

// ActivityEmoji is a custom status's emoji.
type ActivityEmoji struct {
	Name     string               `json:"name"`
	ID       *guildhall.Snowflake `json:"id,omitempty"`
	Animated bool                 `json:"animated,omitempty"`
}

// Bounds of one activity's text (Discord's: 128 characters for names and
// states, 512 for a stream URL).
const (
	maxActivityText = 128
	maxActivityURL  = 512
)

// clientActivity is what a client may send; every field is checked before it
// is kept.
type clientActivity struct {
	Name       json.RawMessage `json:"name"`
	Type       json.RawMessage `json:"type"`
	URL        json.RawMessage `json:"url"`
	State      json.RawMessage `json:"state"`
	Details    json.RawMessage `json:"details"`
	Timestamps json.RawMessage `json:"timestamps"`
	Emoji      json.RawMessage `json:"emoji"`
}

// normalizeActivities reads a client's activities (a JSON array, or null) and
// returns them in Discord's shape: each invalid activity is dropped (not an
// object, no name, an unknown type, a field of the wrong type or too long), at
// most MaxActivities are kept, and created_at is now. Anything but an array or
// null is an error.
func normalizeActivities(raw json.RawMessage, now time.Time) ([]Activity, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, ErrInvalidUpdate
	}
	var out []Activity
	for _, item := range list {
		if len(out) == MaxActivities {
			break
		}
		if a, ok := parseActivity(item, now); ok {
			out = append(out, a)
		}
	}
	return out, nil
}

func parseActivity(raw json.RawMessage, now time.Time) (Activity, bool) {
	var c clientActivity
	if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &c) != nil {
		return Activity{}, false
	}
	a := Activity{CreatedAt: now.UnixMilli()}
	var typ int64
	if !optionalInt(c.Type, &typ) || typ < int64(ActivityPlaying) || typ > int64(ActivityCompeting) {
		return Activity{}, false
	}
	a.Type = ActivityType(typ)
	name, ok := optionalText(c.Name, maxActivityText)
	if !ok {
		return Activity{}, false
	}
	if name == nil || *name == "" {
		if a.Type != ActivityCustom {
			return Activity{}, false
		}
		name = new(string)
		*name = "Custom Status" // Discord's name for every custom status
	}
	a.Name = *name
	if a.State, ok = optionalText(c.State, maxActivityText); !ok {
		return Activity{}, false
	}
	if a.Details, ok = optionalText(c.Details, maxActivityText); !ok {
		return Activity{}, false
	}
	if a.URL, ok = optionalText(c.URL, maxActivityURL); !ok {
		return Activity{}, false
	}
	if a.URL != nil && (a.Type != ActivityStreaming || !httpURL(*a.URL)) {
		a.URL = nil // Discord shows a URL only on a stream, and only http(s)
	}
	// What decorates an activity is dropped alone when it is not what Discord
	// defines (discordgo sends an empty emoji object and zero timestamps with
	// every activity).
	var ts struct {
		Start json.RawMessage `json:"start"`
		End   json.RawMessage `json:"end"`
	}
	var t ActivityTimestamps
	if len(c.Timestamps) > 0 && json.Unmarshal(c.Timestamps, &ts) == nil && optionalInt(ts.Start, &t.Start) && optionalInt(ts.End, &t.End) &&
		t.Start >= 0 && t.End >= 0 && t != (ActivityTimestamps{}) {
		a.Timestamp = &t
	}
	var e struct {
		Name     json.RawMessage `json:"name"`
		ID       json.RawMessage `json:"id"`
		Animated bool            `json:"animated"`
	}
	if len(c.Emoji) > 0 && json.Unmarshal(c.Emoji, &e) == nil {
		if name, ok := optionalText(e.Name, 32); ok && name != nil && *name != "" {
			a.Emoji = &ActivityEmoji{Name: *name, Animated: e.Animated}
			var id guildhall.Snowflake
			if len(e.ID) > 0 && json.Unmarshal(e.ID, &id) == nil && id != 0 {
				a.Emoji.ID = &id
			}
		}
	}
	return a, true
}

// optionalText reads a JSON string of at most max characters, or null/absent
// (nil); false for anything else.
func optionalText(raw json.RawMessage, max int) (*string, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil || utf8.RuneCountInString(s) > max {
		return nil, false
	}
	return &s, true
}

// optionalInt reads a JSON integer, or null/absent (left as it is); false for
// anything else (a string, a fraction).
func optionalInt(raw json.RawMessage, v *int64) bool {
	if len(raw) == 0 || string(raw) == "null" {
		return true
	}
	return json.Unmarshal(raw, v) == nil
}

func httpURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}

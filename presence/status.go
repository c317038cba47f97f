package presence

import (
	"encoding/json"
	"errors"
	"strconv"
	"time"

	guildhall "github.com/guildhall/guildhall"
)

// Status is a user's presence status, as Discord names it.
type Status string

// Statuses. Invisible is what a user sets; everyone else sees Offline.
const (
	Online    Status = "online"
	Idle      Status = "idle"
	DND       Status = "dnd"
	Invisible Status = "invisible"
	Offline   Status = "offline"
)

// MaxActivities bounds the activities one presence carries; a client's extra
// ones are dropped.
const MaxActivities = 8

// ErrInvalidUpdate is the answer to a presence payload that is not one.
var ErrInvalidUpdate = errors.New("presence: invalid presence update")

// Update is what a client sends: IDENTIFY's presence field and the d of op 3
// PRESENCE_UPDATE, {since, activities, status, afk}.
type Update struct {
	Since      *int64          `json:"since"`
	Activities json.RawMessage `json:"activities"`
	Status     Status          `json:"status"`
	AFK        bool            `json:"afk"`
}

// ParseUpdate decodes and checks a client's presence. Status must be one of
// online, idle, dnd, invisible or offline (a client that sends offline is
// invisible, as on Discord); activities must be an array (or null), whose
// entries are kept in Discord's shape, invalid ones dropped (see Activity). A
// missing status means online.
func ParseUpdate(raw []byte) (Update, error) {
	return parseUpdate(raw, time.Now())
}

func parseUpdate(raw []byte, now time.Time) (Update, error) {
	var u Update
	if err := json.Unmarshal(raw, &u); err != nil {
		return Update{}, ErrInvalidUpdate
	}
	switch u.Status {
	case "":
		u.Status = Online
	case Online, Idle, DND, Invisible:
	case Offline:
		u.Status = Invisible
	default:
		return Update{}, ErrInvalidUpdate
	}
	acts, err := normalizeActivities(u.Activities, now)
	if err != nil {
		return Update{}, err
	}
	u.Activities = nil
	if len(acts) > 0 {
		if u.Activities, err = json.Marshal(acts); err != nil {
			return Update{}, ErrInvalidUpdate
		}
	}
	return u, nil
}

// Entry is the value of a user's key in the presence bucket. Gateways holds, per
// gateway node with sessions of the user, how many and the node's incarnation; a
// part counts only while its node's heartbeat (NodeKey) holds that incarnation.
type Entry struct {
	Status     Status          `json:"status"`
	Activities json.RawMessage `json:"activities,omitempty"`
	Since      *int64          `json:"since,omitempty"`
	AFK        bool            `json:"afk,omitempty"`
	// Guilds are the user's guilds small enough for per-member presence
	// (gateway.PresenceConfig.SmallGuildThreshold): where a change of this user is announced.
	Guilds   []guildhall.Snowflake `json:"guilds,omitempty"`
	Gateways map[string]Node       `json:"gateways"`
}

// Node is one gateway's part of an Entry.
type Node struct {
	Sessions int `json:"n"`
	// Inc is the incarnation of the node that wrote the part: a restarted node,
	// or one whose heartbeat expired, has a new one, so old parts stop counting.
	Inc string `json:"i"`
}

// Nodes are the live gateway nodes: node name to incarnation, as their
// heartbeat keys hold them.
type Nodes map[string]string

// clone copies what a read-modify-write changes.
func (e Entry) clone() Entry {
	gws := make(map[string]Node, len(e.Gateways)+1)
	for k, v := range e.Gateways {
		gws[k] = v
	}
	e.Gateways = gws
	return e
}

// Live reports whether a live node holds a session of the user.
func (e *Entry) Live(nodes Nodes) bool {
	for name, n := range e.Gateways {
		if n.Sessions > 0 && n.Inc != "" && nodes[name] == n.Inc {
			return true
		}
	}
	return false
}

// Visible is the status others see: Offline when no session lives or the user is
// invisible.
func (e *Entry) Visible(nodes Nodes) Status {
	if !e.Live(nodes) || e.Status == Invisible || e.Status == Offline {
		return Offline
	}
	if e.Status == "" {
		return Online
	}
	return e.Status
}

// Key is a user's key in the presence bucket.
func Key(userID guildhall.Snowflake) string { return "u." + userID.String() }

// NodeKey is a gateway node's heartbeat key in the presence bucket; its value is
// the node's incarnation.
func NodeKey(node string) string { return "n." + node }

// nodeOfKey parses NodeKey.
func nodeOfKey(key string) (string, bool) {
	if len(key) < 3 || key[:2] != "n." {
		return "", false
	}
	return key[2:], true
}

// userOfKey parses Key.
func userOfKey(key string) (guildhall.Snowflake, bool) {
	if len(key) < 3 || key[:2] != "u." {
		return 0, false
	}
	n, err := strconv.ParseUint(key[2:], 10, 64)
	return guildhall.Snowflake(n), err == nil
}

// Presence is a presence object in Discord's shape: the d of a PRESENCE_UPDATE
// dispatch (with GuildID) and an entry of GUILD_MEMBERS_CHUNK's presences.
type Presence struct {
	User         PresenceUser        `json:"user"`
	GuildID      guildhall.Snowflake `json:"guild_id,omitempty"`
	Status       Status              `json:"status"`
	Activities   json.RawMessage     `json:"activities"`
	ClientStatus map[string]Status   `json:"client_status"`
}

// PresenceUser is the partial user of a presence: its id.
type PresenceUser struct {
	ID guildhall.Snowflake `json:"id"`
}

// NewPresence builds the presence others see of a user with visible status and
// activities. Guildhall does not tell platforms apart: a user who is not offline
// is shown on "desktop".
func NewPresence(userID, guildID guildhall.Snowflake, status Status, activities json.RawMessage) Presence {
	p := Presence{User: PresenceUser{ID: userID}, GuildID: guildID, Status: status, Activities: activities, ClientStatus: map[string]Status{}}
	if status == Offline || len(activities) == 0 {
		p.Activities = json.RawMessage("[]")
	}
	if status != Offline {
		p.ClientStatus["desktop"] = status
	}
	return p
}

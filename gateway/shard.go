package gateway

import (
	"encoding/json"
	"strings"

	guildhall "github.com/guildhall/guildhall"
)

// Sharding as Discord's: IDENTIFY's shard [id, count] routes each guild to one
// session, the one whose id is (guild_id >> 22) % count; events without a guild
// (a user's own, and DMs) go to shard 0 only. A session without shard, or
// with count 1, receives every guild.

// maxShards bounds the shard count a client may ask for. Discord's limit is
// what /gateway/bot recommends for the largest bots; this bound only keeps the
// arithmetic and the registry entry small.
const maxShards = 1 << 16

// shardSpec is a session's [id, count]; the zero value receives every guild.
type shardSpec struct {
	id, count int
}

// parseShard reads IDENTIFY's shard field; false for an invalid array (close
// 4010): not two numbers, a count below 1 or above maxShards, or an id outside
// [0, count).
func parseShard(v []int) (shardSpec, bool) {
	switch {
	case v == nil:
		return shardSpec{}, true
	case len(v) != 2:
		return shardSpec{}, false
	}
	id, count := v[0], v[1]
	if count < 1 || count > maxShards || id < 0 || id >= count {
		return shardSpec{}, false
	}
	return shardSpec{id: id, count: count}, true
}

// sharded reports whether the session receives only some guilds.
func (sh shardSpec) sharded() bool { return sh.count > 1 }

// ownsGuild reports whether the session's shard receives guild's events.
func (sh shardSpec) ownsGuild(guild guildhall.Snowflake) bool {
	return !sh.sharded() || int((uint64(guild)>>22)%uint64(sh.count)) == sh.id
}

// ownsGuildless reports whether the session receives events that belong to no
// guild: a user's own events and everything of direct messages (their events,
// DM typing, READY's private_channels). Discord sends those to shard 0 alone.
func (sh shardSpec) ownsGuildless() bool { return sh.id == 0 }

// ownsEvent reports whether an event of guild (0: none) goes to this shard.
func (sh shardSpec) ownsEvent(guild guildhall.Snowflake) bool {
	if guild == 0 {
		return sh.ownsGuildless()
	}
	return sh.ownsGuild(guild)
}

// array is the shard as READY echoes it; nil when the client sent none.
func (sh shardSpec) array() []int {
	if sh.count == 0 {
		return nil
	}
	return []int{sh.id, sh.count}
}

// filterGuilds keeps the guilds (and the matching members) this shard owns.
func (sh shardSpec) filterGuilds(guilds []guildhall.GuildState, members []guildhall.Member) ([]guildhall.GuildState, []guildhall.Member) {
	if !sh.sharded() {
		return guilds, members
	}
	var gs []guildhall.GuildState
	var ms []guildhall.Member
	for i := range guilds {
		if sh.ownsGuild(guilds[i].Guild.ID) {
			gs = append(gs, guilds[i])
			ms = append(ms, members[i])
		}
	}
	return gs, ms
}

// bareToken is the token of IDENTIFY or RESUME without the "Bot " (or
// "Bearer ") prefix that Discord's libraries send (discordgo.New("Bot " +
// token) puts it there), as REST's Authorization header accepts it.
func bareToken(t string) string {
	t = strings.TrimSpace(t)
	for _, p := range []string{"Bot ", "Bearer "} {
		if len(t) > len(p) && strings.EqualFold(t[:len(p)], p) {
			return strings.TrimSpace(t[len(p):])
		}
	}
	return t
}

// eventGuild is the guild an event concerns, for routing it to a shard: its
// GuildID, or for an event on a user's own subject (a GUILD_CREATE when the user
// joined, a GUILD_DELETE when they left) the guild the payload names. 0: none.
func eventGuild(ev guildhall.Event) guildhall.Snowflake {
	if ev.GuildID != 0 {
		return ev.GuildID
	}
	var d struct {
		ID      guildhall.Snowflake `json:"id"`
		GuildID guildhall.Snowflake `json:"guild_id"`
	}
	if strings.HasPrefix(ev.Type, "GUILD_") && json.Unmarshal(ev.Data, &d) == nil {
		if d.GuildID != 0 {
			return d.GuildID
		}
		if ev.Type == guildhall.EventGuildCreate || ev.Type == guildhall.EventGuildUpdate || ev.Type == guildhall.EventGuildDelete {
			return d.ID
		}
	}
	return 0
}

package natsapi

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	guildhall "github.com/guildhall/guildhall"
)

// A guild's snapshot is split into parts of at most max bytes of JSON (a single
// channel larger than that goes alone), numbered from 0, every part but the last
// saying more follow, the guild, roles and member in the first; the parts'
// channels in order are the guild's.
func TestGuildParts(t *testing.T) {
	topic := strings.Repeat("t", 1024)
	st := guildhall.GuildState{Guild: guildhall.Guild{ID: 1, Name: "big"}, Roles: []guildhall.Role{{ID: 1, Name: "@everyone"}}}
	for i := range 300 {
		ch := guildhall.Channel{ID: guildhall.Snowflake(100 + i), GuildID: 1, Name: "c", Topic: &topic, PermissionOverwrites: []guildhall.PermissionOverwrite{}}
		if i == 7 {
			for k := range 2000 { // larger than a part by itself
				ch.PermissionOverwrites = append(ch.PermissionOverwrites, guildhall.PermissionOverwrite{ID: guildhall.Snowflake(10_000 + k), Type: guildhall.OverwriteMember})
			}
		}
		st.Channels = append(st.Channels, ch)
	}
	member := &guildhall.Member{User: guildhall.User{ID: 5}}
	const max = 32 << 10
	ps, err := guildParts(guildhall.GuildReply{State: st, Member: member}, max)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) < 10 {
		t.Fatalf("%d parts of a guild of 300 KB at %d bytes each", len(ps), max)
	}
	var channels []guildhall.Channel
	for i, p := range ps {
		b := p.(json.RawMessage)
		var rep guildhall.GuildReply
		if err := json.Unmarshal(b, &rep); err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		if len(b) > max && len(rep.State.Channels) > 1 {
			t.Errorf("part %d is %d bytes with %d channels; at most %d unless one channel alone", i, len(b), len(rep.State.Channels), max)
		}
		if rep.Part != i || rep.More != (i < len(ps)-1) {
			t.Errorf("part %d says part %d, more %v", i, rep.Part, rep.More)
		}
		if (i == 0) != (rep.Member != nil && rep.State.Guild.ID == 1 && len(rep.State.Roles) == 1) {
			t.Errorf("part %d: guild %d, %d roles, member %v; want them in part 0 only", i, rep.State.Guild.ID, len(rep.State.Roles), rep.Member)
		}
		channels = append(channels, rep.State.Channels...)
	}
	if !slices.EqualFunc(channels, st.Channels, func(a, b guildhall.Channel) bool { return a.ID == b.ID }) {
		t.Fatal("the parts' channels are not the guild's, in order")
	}
}

// A guild without channels (or a member-only answer, which has no state) is one
// part.
func TestGuildPartsWithoutChannels(t *testing.T) {
	ps, err := guildParts(guildhall.GuildReply{Member: &guildhall.Member{User: guildhall.User{ID: 5}}}, 1024)
	if err != nil || len(ps) != 1 {
		t.Fatalf("guildParts without channels = %d parts, %v; want 1", len(ps), err)
	}
	var rep guildhall.GuildReply
	if err := json.Unmarshal(ps[0].(json.RawMessage), &rep); err != nil || rep.More || rep.Member == nil {
		t.Fatalf("the one part = %+v (%v)", rep, err)
	}
}

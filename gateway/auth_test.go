package gateway_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
)

// A gateway's identity may read the stream, and JetStream answers on whatever
// reply subject a request names: a direct get of another guild's last event,
// aimed at a member's guild, user or ephemeral subject, arrives there with a
// real Nats-Sequence. The pump believes only what the stream re-published for
// that subject, so the member sees none of it, and what follows arrives as
// usual.
func TestStreamAnswersAimedAtRePublishedSubjectsAreDropped(t *testing.T) {
	bobAlone := seedGuild{ID: largeGuild, ChannelID: largeChannel, Users: newSeedUsers(3_000_000, "rp", 1)}
	f := startReplayFixture(t, 0, bobAlone)
	secret := "not for alice " + f.session
	postMessage(t, f.st, f.bob.Token, largeChannel, secret)
	foreign := counterValue(t, f.st, "guildhall_gateway_foreign_messages_total", "", "")

	attacker, _ := f.st.nats.ConnectAs(t, ghnats.RoleGateway)
	get := "$JS.API.DIRECT.GET." + ghnats.StreamEvents + "." + ghnats.GuildInSubject(uint64(largeGuild))
	aims := []string{
		ghnats.GuildEventSubject(uint64(smallGuild)),
		ghnats.UserEventSubject(uint64(f.alice.ID)),
		ghnats.EphemeralGuildSubject(uint64(smallGuild)),
	}
	for _, reply := range aims {
		if err := attacker.PublishRequest(get, reply, nil); err != nil {
			t.Fatal(err)
		}
	}
	// A batch direct get too, and a stream info answer.
	batch, _ := json.Marshal(map[string]any{"seq": 1, "batch": 50, "next_by_subj": ghnats.SubjectInAll})
	if err := attacker.PublishRequest("$JS.API.DIRECT.GET."+ghnats.StreamEvents, ghnats.UserEventSubject(uint64(f.alice.ID)), batch); err != nil {
		t.Fatal(err)
	}
	if err := attacker.PublishRequest("$JS.API.STREAM.INFO."+ghnats.StreamEvents, ghnats.GuildEventSubject(uint64(smallGuild)), nil); err != nil {
		t.Fatal(err)
	}
	if err := attacker.Flush(); err != nil {
		t.Fatal(err)
	}

	marker := postMessage(t, f.st, f.bob.Token, smallChannel, "after")
	deadline := time.Now().Add(10 * time.Second)
	for {
		var seen bool
		for _, p := range f.a.Dispatches(guildhall.EventMessageCreate) {
			seen = seen || strings.Contains(string(p.D), marker)
		}
		if seen {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the message after the attempts did not arrive")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, p := range f.a.All() {
		if strings.Contains(string(p.D), secret) || (p.Op == 0 && p.T == "") {
			t.Fatalf("alice received %s %s", p.T, p.D)
		}
	}
	if n := counterValue(t, f.st, "guildhall_gateway_foreign_messages_total", "", "") - foreign; n < 4 {
		t.Fatalf("foreign messages dropped: %v; want at least the 4 aimed at re-published subjects", n)
	}
}

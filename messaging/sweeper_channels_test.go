package messaging_test

import (
	"strings"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
)

// A deleted channel's messages stay in the store, unreachable, and so did
// their files: never swept, and served for ever to whoever kept a URL (a
// member kicked long ago, say), though nobody can reach the messages. The
// sweeper deletes the files of channels that no longer exist (a channel's
// delete, or its guild's), and keeps those of live channels and of DMs.
func TestSweeperDeletesFilesOfDeletedChannels(t *testing.T) {
	r := newSweeperRig(t)
	home, err := r.store.Channel(r.ctx, r.channel)
	if err != nil {
		t.Fatal(err)
	}
	doomed, err := r.svc.CreateChannel(r.ctx, r.user, home.GuildID, messaging.NewChannel{Name: "doomed"})
	if err != nil {
		t.Fatal(err)
	}
	postIn := func(channel guildhall.Snowflake, name string) (guildhall.Attachment, guildhall.Message) {
		t.Helper()
		a, err := r.svc.UploadAttachment(r.ctx, r.user, channel, "http://files.test", messaging.Upload{Filename: name, Body: strings.NewReader("contents of " + name)})
		if err != nil {
			t.Fatalf("UploadAttachment(%s): %v", name, err)
		}
		m, err := r.svc.PostMessage(r.ctx, r.user, channel, messaging.NewMessage{Content: "with a file", Attachments: []guildhall.Attachment{a}})
		if err != nil {
			t.Fatalf("PostMessage: %v", err)
		}
		return a, m
	}
	live, liveMsg := postIn(r.channel, "live.txt")
	gone, goneMsg := postIn(doomed.ID, "gone.txt")

	// A DM with another member of the guild.
	friend := registerUser(t, r.svc, "sweeper_friend")
	inv, err := r.svc.CreateInvite(r.ctx, r.user, r.channel, messaging.NewInvite{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.svc.AcceptInvite(r.ctx, friend, inv.Invite.Code); err != nil {
		t.Fatal(err)
	}
	dm, err := r.svc.OpenDM(r.ctx, r.user, []guildhall.Snowflake{friend.ID})
	if err != nil {
		t.Fatal(err)
	}
	inDM, dmMsg := postIn(dm.ID, "dm.txt")

	for _, c := range []struct{ channel, id guildhall.Snowflake }{{r.channel, liveMsg.ID}, {doomed.ID, goneMsg.ID}, {dm.ID, dmMsg.ID}} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := r.store.Message(r.ctx, c.channel, c.id); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("message %v of channel %v not stored after 10 s", c.id, c.channel)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if _, err := r.svc.DeleteChannel(r.ctx, r.user, doomed.ID, ""); err != nil {
		t.Fatal(err)
	}
	if !r.exists(gone) {
		t.Fatal("the file is gone before any pass: this test no longer shows what the sweeper does")
	}

	s := r.sweeper(func() time.Time { return time.Now().Add(2 * time.Hour) }, messaging.SweeperConfig{})
	if _, err := s.Sweep(r.ctx); err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	for _, c := range []struct {
		name string
		a    guildhall.Attachment
		kept bool
	}{
		{"file of a live channel's message", live, true},
		{"file of a deleted channel's message", gone, false},
		{"file of a DM's message", inDM, true},
	} {
		if got := r.exists(c.a); got != c.kept {
			t.Errorf("after a pass, %s exists = %v; want %v", c.name, got, c.kept)
		}
	}
}

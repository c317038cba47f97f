package messaging_test

import (
	"context"
	"slices"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
)

// The classes of events that change what the api authorizes, each made on one
// api process and seen by another from its projection (not from the store):
// roles and members' roles and timeouts, bans and unbans, and DM channels.
// TestProjectionFreshnessAcrossProcesses covers kicks and channel overwrites.

// projPair is two api processes whose second holds a guild with members.
func projPair(t *testing.T, fresh time.Duration) *projRig {
	t.Helper()
	// Wait is long so that a slow machine does not make the other process
	// fall back to the store: the tests assert it did not.
	return newProjRig(t, 2, messaging.Config{Projection: messaging.ProjectionConfig{Freshness: fresh, Wait: 10 * time.Second}})
}

// TestProjectionRolesAcrossProcesses: a member's role taken away, a role's
// permission taken away, a role deleted and a timeout, each made on api a, make
// api b refuse the member's post once the freshness bound has passed; a role
// made and given on a lets a member post on b. b answers from its projection.
func TestProjectionRolesAcrossProcesses(t *testing.T) {
	t.Parallel()
	const fresh = 500 * time.Millisecond
	r := projPair(t, fresh)
	a, b := r.apis[0], r.apis[1]
	ctx := context.Background()
	owner := registerUser(t, a, "owner")
	alice, bob, carol, dave, erin := registerUser(t, a, "alice"), registerUser(t, a, "bob"), registerUser(t, a, "carol"), registerUser(t, a, "dave"), registerUser(t, a, "erin")
	st := r.guildWith(owner, alice, bob, carol, dave, erin)
	g, general := st.Guild.ID, st.Channels[0].ID

	// @everyone may no longer send; Speaker and Other may.
	quiet := guildhall.DefaultEveryonePermissions &^ guildhall.PermSendMessages
	if _, err := a.ModifyRole(ctx, owner, g, g, messaging.RoleParams{Permissions: &quiet}, ""); err != nil {
		t.Fatal(err)
	}
	send := guildhall.PermSendMessages
	speaker, err := a.CreateRole(ctx, owner, g, messaging.RoleParams{Name: ptr("Speaker"), Permissions: &send}, "")
	if err != nil {
		t.Fatal(err)
	}
	other, err := a.CreateRole(ctx, owner, g, messaging.RoleParams{Name: ptr("Other"), Permissions: &send}, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct {
		u    guildhall.User
		role guildhall.Role
	}{{alice, speaker}, {bob, speaker}, {carol, speaker}, {erin, other}} {
		if err := a.AddMemberRole(ctx, owner, g, x.u.ID, x.role.ID, ""); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(fresh)
	for _, u := range []guildhall.User{alice, bob, carol, erin} {
		mustPost(t, b, u, general, "hello from "+u.Username) // b holds the guild and them
	}
	_, err = post(b, dave, general, "no role yet")
	wantCode(t, "dave without a role posts on b", err, 403, 50013)
	before := r.storeReads(1)

	if err := a.RemoveMemberRole(ctx, owner, g, alice.ID, speaker.ID, ""); err != nil { // GUILD_MEMBER_UPDATE
		t.Fatal(err)
	}
	if _, err := a.ModifyRole(ctx, owner, g, speaker.ID, messaging.RoleParams{Permissions: ptr(guildhall.Permissions(0))}, ""); err != nil { // GUILD_ROLE_UPDATE
		t.Fatal(err)
	}
	if err := a.DeleteRole(ctx, owner, g, other.ID, ""); err != nil { // GUILD_ROLE_DELETE
		t.Fatal(err)
	}
	until := time.Now().Add(time.Hour)
	// carol is given Herald below, which may send: her timeout alone must keep
	// her quiet.
	if _, err := a.ModifyMember(ctx, owner, g, carol.ID, messaging.MemberParams{SetTimeout: true, Timeout: &until}, ""); err != nil {
		t.Fatal(err)
	}
	herald, err := a.CreateRole(ctx, owner, g, messaging.RoleParams{Name: ptr("Herald"), Permissions: &send}, "") // GUILD_ROLE_CREATE
	if err != nil {
		t.Fatal(err)
	}
	if err := a.AddMemberRole(ctx, owner, g, dave.ID, herald.ID, ""); err != nil {
		t.Fatal(err)
	}
	if err := a.AddMemberRole(ctx, owner, g, carol.ID, herald.ID, ""); err != nil {
		t.Fatal(err)
	}
	changed := time.Now()
	_, err = post(a, alice, general, "role taken")
	wantCode(t, "alice without Speaker posts on a", err, 403, 50013)

	time.Sleep(fresh - time.Since(changed))
	_, err = post(b, alice, general, "role taken")
	wantCode(t, "alice without Speaker posts on b", err, 403, 50013)
	_, err = post(b, bob, general, "role emptied")
	wantCode(t, "bob, whose Speaker no longer sends, posts on b", err, 403, 50013)
	_, err = post(b, erin, general, "role deleted")
	wantCode(t, "erin, whose role was deleted, posts on b", err, 403, 50013)
	if _, err = post(b, carol, general, "timed out"); err == nil {
		t.Error("carol, timed out on a, posts on b: allowed")
	}
	mustPost(t, b, dave, general, "dave, a Herald on a, posts on b")
	if n := r.storeReads(1) - before; n != 0 {
		t.Errorf("b asked the store %v times; want its projection to answer", n)
	}
}

// TestProjectionBansAcrossProcesses: a ban made on api a makes api b refuse the
// member's posts, typing and reactions once the freshness bound has passed,
// from b's projection; after an unban on a, the user joins again through b
// and posts there.
func TestProjectionBansAcrossProcesses(t *testing.T) {
	t.Parallel()
	const fresh = 500 * time.Millisecond
	r := projPair(t, fresh)
	a, b := r.apis[0], r.apis[1]
	ctx := context.Background()
	owner, alice := registerUser(t, a, "owner"), registerUser(t, a, "alice")
	st := r.guildWith(owner)
	g, general := st.Guild.ID, st.Channels[0].ID
	inv, err := a.CreateInvite(ctx, owner, general, messaging.NewInvite{})
	if err != nil {
		t.Fatal(err)
	}
	// Joining through b, which holds the guild, alice is known to b as not
	// banned: only the ban's event can change that before the entry's Refresh.
	mustPost(t, b, owner, general, "welcome")
	if _, _, err := b.AcceptInvite(ctx, alice, inv.Invite.Code); err != nil {
		t.Fatal(err)
	}
	m := mustPost(t, b, alice, general, "hello")
	before := r.storeReads(1)

	if err := a.BanMember(ctx, owner, g, alice.ID, 0, ""); err != nil {
		t.Fatal(err)
	}
	changed := time.Now()
	time.Sleep(fresh - time.Since(changed))
	_, err = post(b, alice, general, "banned")
	wantCode(t, "banned alice posts on b", err, 403, 50001)
	if err := b.Typing(ctx, alice, general); err == nil {
		t.Error("banned alice types on b: allowed")
	}
	err = b.AddReaction(ctx, alice, general, m.ID, "👍")
	wantCode(t, "banned alice reacts on b", err, 403, 50001)
	_, _, err = b.AcceptInvite(ctx, alice, inv.Invite.Code)
	wantCode(t, "banned alice joins again through b", err, 403, 40007)
	if n := r.storeReads(1) - before; n != 0 {
		t.Errorf("b asked the store %v times; want its projection to answer", n)
	}

	if err := a.UnbanMember(ctx, owner, g, alice.ID, ""); err != nil {
		t.Fatal(err)
	}
	time.Sleep(fresh)
	if _, _, err := b.AcceptInvite(ctx, alice, inv.Invite.Code); err != nil {
		t.Fatalf("unbanned alice joins again through b: %v", err)
	}
	mustPost(t, b, alice, general, "back")
}

// TestProjectionDMAcrossProcesses: a DM opened on api a takes posts from its
// participants through api b, which read it from the store once; b then keeps
// taking them while the store is down, and still refuses someone else.
func TestProjectionDMAcrossProcesses(t *testing.T) {
	t.Parallel()
	r := projPair(t, 500*time.Millisecond)
	a, b := r.apis[0], r.apis[1]
	ctx := context.Background()
	owner, alice, bob := registerUser(t, a, "owner"), registerUser(t, a, "alice"), registerUser(t, a, "bob")
	r.guildWith(owner, alice, bob)
	dm, err := a.OpenDM(ctx, alice, []guildhall.Snowflake{bob.ID})
	if err != nil {
		t.Fatal(err)
	}
	mustPost(t, b, bob, dm.ID, "hi alice, through b")
	mustPost(t, b, alice, dm.ID, "hi bob, through b")
	_, err = post(b, owner, dm.ID, "not mine")
	wantCode(t, "the owner, no participant, posts in the DM through b", err, 403, 50001)

	r.store.down(true)
	during := mustPost(t, b, bob, dm.ID, "while the store is down")
	if err := b.Typing(ctx, alice, dm.ID); err != nil {
		t.Errorf("alice types in the DM through b while the store is down: %v", err)
	}
	_, err = post(b, owner, dm.ID, "not mine")
	wantCode(t, "the owner posts in the DM through b while the store is down", err, 403, 50001)
	_, err = post(a, owner, 1234567, "nowhere")
	wantCode(t, "a post to a channel not known, while the store is down", err, 503, 0)
	r.store.down(false)

	waitFor(t, func() bool {
		page, err := a.History(ctx, alice, dm.ID, messaging.HistoryQuery{Limit: 10})
		return err == nil && len(page) == 3 && page[0].ID == during.ID
	})
}

// TestProjectionReactionsDuringOutage: while the store is down, reactions to a
// recent message are authorized from the projection's reaction events, made on
// one api process and seen by the other: a reaction with an emoji already there
// needs no ADD_REACTIONS, a new emoji does, a repeated one changes nothing, and
// one's own can be removed. After the outage the store has what was answered.
func TestProjectionReactionsDuringOutage(t *testing.T) {
	t.Parallel()
	r := projPair(t, 500*time.Millisecond)
	a, b := r.apis[0], r.apis[1]
	ctx := context.Background()
	owner, alice, bob, carol := registerUser(t, a, "owner"), registerUser(t, a, "alice"), registerUser(t, a, "bob"), registerUser(t, a, "carol")
	st := r.guildWith(owner, alice, bob, carol)
	general := st.Channels[0].ID
	if err := a.EditOverwrite(ctx, owner, general, guildhall.PermissionOverwrite{ID: carol.ID, Type: guildhall.OverwriteMember, Deny: guildhall.PermAddReactions}, ""); err != nil {
		t.Fatal(err)
	}
	for _, u := range []guildhall.User{alice, bob, carol} {
		// b holds the guild and knows them as members: a membership not yet
		// known needs the store.
		if err := b.Typing(ctx, u, general); err != nil {
			t.Fatal(err)
		}
	}
	old := mustPost(t, a, alice, general, "posted before the outage")

	r.store.down(true)
	m := mustPost(t, a, alice, general, "react to me")
	if err := a.AddReaction(ctx, alice, general, m.ID, "👍"); err != nil {
		t.Fatalf("alice reacts on a while the store is down: %v", err)
	}
	err := b.AddReaction(ctx, carol, general, m.ID, "🎉")
	wantCode(t, "carol, without ADD_REACTIONS, reacts with a new emoji on b", err, 403, 50013)
	if err := b.AddReaction(ctx, carol, general, m.ID, "👍"); err != nil {
		t.Errorf("carol, without ADD_REACTIONS, reacts on b with the emoji alice put there on a: %v", err)
	}
	if err := b.AddReaction(ctx, bob, general, m.ID, "👍"); err != nil {
		t.Errorf("bob reacts on b: %v", err)
	}
	if err := b.AddReaction(ctx, alice, general, m.ID, "👍"); err != nil {
		t.Errorf("alice reacts again on b: %v", err)
	}
	if err := b.RemoveReaction(ctx, alice, general, m.ID, "👍", alice.ID); err != nil {
		t.Errorf("alice takes her reaction back on b: %v", err)
	}
	if err := a.AddReaction(ctx, bob, general, old.ID, "👀"); err != nil {
		t.Errorf("bob reacts on a to a message a saw posted: %v", err)
	}
	r.store.down(false)

	waitFor(t, func() bool {
		page, err := a.History(ctx, alice, general, messaging.HistoryQuery{Limit: 1})
		if err != nil || len(page) != 1 || page[0].ID != m.ID {
			return false
		}
		rs := page[0].Reactions
		return len(rs) == 1 && rs[0].Emoji.Name == "👍" && rs[0].Count == 2 && !rs[0].Me
	})
}

func ptr[T any](v T) *T { return &v }

// waitFor polls ok for up to 10 s.
func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("not within 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestGroupDMLeaveAcrossProcesses: a group DM read by api b (which then has
// every reason to keep it) is left through api a; from then on b refuses the
// leaver's posts, reads and typing, and posts through b reach only those who
// stayed. A DM between two people cannot be left.
func TestGroupDMLeaveAcrossProcesses(t *testing.T) {
	t.Parallel()
	r := projPair(t, 500*time.Millisecond)
	a, b := r.apis[0], r.apis[1]
	ctx := context.Background()
	owner, alice, bob, carol := registerUser(t, a, "owner"), registerUser(t, a, "alice"), registerUser(t, a, "bob"), registerUser(t, a, "carol")
	r.guildWith(owner, alice, bob, carol)
	group, err := a.OpenDM(ctx, alice, []guildhall.Snowflake{bob.ID, carol.ID})
	if err != nil {
		t.Fatal(err)
	}
	mustPost(t, b, bob, group.ID, "hi both, through b")
	mustPost(t, b, alice, group.ID, "hi, through b")

	left, err := a.LeaveGroupDM(ctx, alice, group.ID)
	if err != nil {
		t.Fatalf("alice leaves the group through a: %v", err)
	}
	if left.ID != group.ID || left.Has(alice.ID) || len(left.Recipients) != 2 {
		t.Errorf("LeaveGroupDM = %+v; want the group as alice saw it (bob and carol)", left)
	}
	_, err = post(b, alice, group.ID, "still here?")
	wantCode(t, "alice posts in the group she left, through b", err, 403, 50001)
	_, err = b.History(ctx, alice, group.ID, messaging.HistoryQuery{Limit: 10})
	wantCode(t, "alice reads the group she left, through b", err, 403, 50001)
	err = b.Typing(ctx, alice, group.ID)
	wantCode(t, "alice types in the group she left, through b", err, 403, 50001)
	_, err = b.LeaveGroupDM(ctx, alice, group.ID)
	wantCode(t, "alice leaves again through b", err, 403, 50001)
	_, err = b.LeaveGroupDM(ctx, owner, group.ID)
	wantCode(t, "the owner, never in the group, leaves it", err, 403, 50001)

	after := mustPost(t, b, bob, group.ID, "just us now")
	g, err := b.PrivateChannel(ctx, carol, group.ID)
	if err != nil {
		t.Fatal(err)
	}
	if g.Has(alice.ID) || !g.Has(bob.ID) || g.OwnerID != bob.ID {
		t.Errorf("the group as carol sees it through b = %+v; want bob, no alice, owned by bob (the first who stayed)", g)
	}
	for _, u := range []guildhall.User{alice, bob, carol} {
		dms, err := a.PrivateChannels(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		listed := slices.ContainsFunc(dms, func(c guildhall.PrivateChannel) bool { return c.ID == group.ID })
		if listed != (u.ID != alice.ID) {
			t.Errorf("%s's DM list has the group: %v; want %v", u.Username, listed, u.ID != alice.ID)
		}
	}
	waitFor(t, func() bool {
		page, err := a.History(ctx, carol, group.ID, messaging.HistoryQuery{Limit: 10})
		return err == nil && len(page) == 3 && page[0].ID == after.ID
	})

	dm, err := a.OpenDM(ctx, alice, []guildhall.Snowflake{bob.ID})
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.LeaveGroupDM(ctx, alice, dm.ID)
	wantCode(t, "alice leaves a DM between two", err, 403, 50003)
	mustPost(t, b, bob, dm.ID, "the DM goes on")
}

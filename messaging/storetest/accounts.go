package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
)

// testRevokeTokens: one token, all of a user's but one, all of them; other
// users' tokens stay.
func testRevokeTokens(t *testing.T, e *env) {
	u, other := e.id(), e.id()
	h := func(u guildhall.Snowflake, s string) string { return fmt.Sprintf("sha256-%d-%s", u, s) }
	for _, x := range []string{"a", "b", "c", "d"} {
		check(t, e.s.PutToken(e.ctx, h(u, x), u), "PutToken(%s)", x)
	}
	check(t, e.s.PutToken(e.ctx, h(other, "a"), other), "PutToken(other)")
	valid := func(hash string) bool {
		t.Helper()
		_, err := e.s.UserByToken(e.ctx, hash)
		if err != nil && !isNotFound(err) {
			t.Fatalf("UserByToken(%s): %v", hash, err)
		}
		return err == nil
	}

	check(t, e.s.DeleteToken(e.ctx, h(u, "a")), "DeleteToken(a)")
	check(t, e.s.DeleteToken(e.ctx, h(u, "a")), "DeleteToken(a) again")
	check(t, e.s.DeleteToken(e.ctx, h(u, "never")), "DeleteToken(unknown)")
	if valid(h(u, "a")) || !valid(h(u, "b")) {
		t.Fatal("DeleteToken(a) did not remove exactly a")
	}

	removed, err := e.s.DeleteUserTokens(e.ctx, u, h(u, "c"))
	check(t, err, "DeleteUserTokens(keep c)")
	slices.Sort(removed)
	if want := []string{h(u, "b"), h(u, "d")}; !slices.Equal(removed, want) {
		t.Errorf("DeleteUserTokens(keep c) removed %v; want %v (a was gone already)", removed, want)
	}
	if valid(h(u, "b")) || valid(h(u, "d")) || !valid(h(u, "c")) || !valid(h(other, "a")) {
		t.Fatal("DeleteUserTokens(keep c): wrong tokens left")
	}
	removed, err = e.s.DeleteUserTokens(e.ctx, u, "")
	check(t, err, "DeleteUserTokens(keep none)")
	if !slices.Equal(removed, []string{h(u, "c")}) || valid(h(u, "c")) {
		t.Errorf("DeleteUserTokens(keep none) removed %v; want [c]", removed)
	}
	if !valid(h(other, "a")) {
		t.Error("another user's token was revoked")
	}
	// A token minted after a revocation works.
	check(t, e.s.PutToken(e.ctx, h(u, "e"), u), "PutToken(e)")
	if !valid(h(u, "e")) {
		t.Error("a token put after DeleteUserTokens does not work")
	}
}

func testPasswordAndBots(t *testing.T, e *env) {
	owner := guildhall.User{ID: e.id(), Username: fmt.Sprintf("owner_%d", e.next), Discriminator: "0"}
	check(t, e.s.CreateUser(e.ctx, messaging.UserRecord{User: owner, PasswordHash: "old"}), "CreateUser(owner)")
	check(t, e.s.SetPasswordHash(e.ctx, owner.ID, "new"), "SetPasswordHash")
	rec, err := e.s.UserByName(e.ctx, owner.Username)
	check(t, err, "UserByName")
	if rec.PasswordHash != "new" {
		t.Errorf("password hash after SetPasswordHash = %q; want new", rec.PasswordHash)
	}
	checkUser(t, "user after SetPasswordHash", rec.User, owner)
	wantErr(t, e.s.SetPasswordHash(e.ctx, e.id(), "x"), messaging.ErrNotFound, "SetPasswordHash(unknown)")

	var bots []guildhall.User
	for i := range 3 {
		b := guildhall.User{ID: e.id(), Username: fmt.Sprintf("bot%d_%d", i, e.next), Discriminator: "0", Bot: true}
		check(t, e.s.CreateUser(e.ctx, messaging.UserRecord{User: b, OwnerID: owner.ID}), "CreateUser(bot %d)", i)
		bots = append(bots, b)
	}
	orphan := guildhall.User{ID: e.id(), Username: fmt.Sprintf("orphan_%d", e.next), Discriminator: "0", Bot: true}
	check(t, e.s.CreateUser(e.ctx, messaging.UserRecord{User: orphan}), "CreateUser(bot without owner)")
	got, err := e.s.Bots(e.ctx, owner.ID)
	check(t, err, "Bots(owner)")
	slices.SortFunc(got, func(a, b guildhall.User) int { return cmpID(a.ID, b.ID) })
	if len(got) != len(bots) {
		t.Fatalf("Bots(owner) = %d bots; want %d", len(got), len(bots))
	}
	for i := range bots {
		checkUser(t, fmt.Sprintf("Bots(owner)[%d]", i), got[i], bots[i])
	}
	if none, err := e.s.Bots(e.ctx, e.id()); err != nil || len(none) != 0 {
		t.Errorf("Bots(nobody) = %v, %v; want none", none, err)
	}
}

func isNotFound(err error) bool { return err != nil && errors.Is(err, messaging.ErrNotFound) }

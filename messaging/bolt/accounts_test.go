package bolt

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	guildhall "github.com/guildhall/guildhall"
)

// A file written before the account indexes existed gets them built at Open:
// its tokens can be revoked with the rest of their user's, its invites count.
func TestAccountIndexesBuiltForOldFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	ctx := context.Background()
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"h1", "h2"} {
		if err := s.PutToken(ctx, h, 7); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutInvite(ctx, guildhall.Invite{Code: "abc", GuildID: 9, CreatedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	// Make it an old file: no index buckets.
	if err := s.db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bUserTokens, bGuildInvites} {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	removed, err := s.DeleteUserTokens(ctx, 7, "h2")
	if err != nil || len(removed) != 1 || removed[0] != "h1" {
		t.Fatalf("DeleteUserTokens on a reopened old file = %v, %v; want [h1]", removed, err)
	}
	if _, err := s.UserByToken(ctx, "h1"); err == nil {
		t.Fatal("h1 still valid")
	}
	invs, err := s.GuildInvites(ctx, 9)
	if err != nil || len(invs) != 1 || invs[0].Code != "abc" {
		t.Fatalf("GuildInvites on a reopened old file = %v, %v; want abc", invs, err)
	}
}

package messaging_test

import (
	"context"
	"errors"
	"reflect"
	"sync/atomic"
	"testing"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
	"github.com/guildhall/guildhall/messaging/bolt"
)

// outageStore is the real bbolt store with a database outage injected on
// demand (a local file cannot be made unreachable): while down, every method
// of messaging.Store fails with errOutage before touching the file, and the
// store reports that error as the database being unreachable, as the CQL store
// does for its driver's connection errors. The CQL outage test of cmd/guildhall
// runs the same scenario against a Cassandra that is really stopped.
type outageStore struct {
	*bolt.Store
	isDown atomic.Bool
}

var errOutage = errors.New("injected: the database cannot be reached")

func (s *outageStore) down(yes bool) { s.isDown.Store(yes) }

// Unavailable is what the api asks of a store about its errors.
func (s *outageStore) Unavailable(err error) bool { return errors.Is(err, errOutage) }

func (s *outageStore) check() error {
	if s.isDown.Load() {
		return errOutage
	}
	return nil
}

func down(s *outageStore, f func() error) error {
	if err := s.check(); err != nil {
		return err
	}
	return f()
}

func down2[T any](s *outageStore, f func() (T, error)) (T, error) {
	if err := s.check(); err != nil {
		var zero T
		return zero, err
	}
	return f()
}

func down3[T, U any](s *outageStore, f func() (T, U, error)) (T, U, error) {
	if err := s.check(); err != nil {
		var t T
		var u U
		return t, u, err
	}
	return f()
}

// TestOutageStoreFailsEveryMethod: a method the Store interface gains must be
// added to outageStore too, or it would answer during an injected outage.
func TestOutageStoreFailsEveryMethod(t *testing.T) {
	s := &outageStore{}
	s.down(true)
	it := reflect.TypeFor[messaging.Store]()
	v := reflect.ValueOf(messaging.Store(s))
	for i := range it.NumMethod() {
		m := it.Method(i)
		if m.Type.NumIn() == 0 { // Close
			continue
		}
		args := make([]reflect.Value, m.Type.NumIn())
		for j := range args {
			args[j] = reflect.Zero(m.Type.In(j))
		}
		args[0] = reflect.ValueOf(context.Background())
		out := v.MethodByName(m.Name).Call(args)
		if err, _ := out[len(out)-1].Interface().(error); !errors.Is(err, errOutage) {
			t.Errorf("outageStore.%s while down = %v; want errOutage (override it)", m.Name, err)
		}
	}
}

func (s *outageStore) CreateUser(ctx context.Context, u messaging.UserRecord) error {
	return down(s, func() error { return s.Store.CreateUser(ctx, u) })
}

func (s *outageStore) UserByName(ctx context.Context, username string) (messaging.UserRecord, error) {
	return down2(s, func() (messaging.UserRecord, error) { return s.Store.UserByName(ctx, username) })
}

func (s *outageStore) User(ctx context.Context, id guildhall.Snowflake) (guildhall.User, error) {
	return down2(s, func() (guildhall.User, error) { return s.Store.User(ctx, id) })
}

func (s *outageStore) PutToken(ctx context.Context, tokenHash string, userID guildhall.Snowflake) error {
	return down(s, func() error { return s.Store.PutToken(ctx, tokenHash, userID) })
}

func (s *outageStore) UserByToken(ctx context.Context, tokenHash string) (guildhall.Snowflake, error) {
	return down2(s, func() (guildhall.Snowflake, error) { return s.Store.UserByToken(ctx, tokenHash) })
}

func (s *outageStore) PutGuild(ctx context.Context, g guildhall.Guild) error {
	return down(s, func() error { return s.Store.PutGuild(ctx, g) })
}

func (s *outageStore) Guild(ctx context.Context, id guildhall.Snowflake) (guildhall.Guild, error) {
	return down2(s, func() (guildhall.Guild, error) { return s.Store.Guild(ctx, id) })
}

func (s *outageStore) PutChannel(ctx context.Context, c guildhall.Channel) error {
	return down(s, func() error { return s.Store.PutChannel(ctx, c) })
}

func (s *outageStore) Channel(ctx context.Context, id guildhall.Snowflake) (guildhall.Channel, error) {
	return down2(s, func() (guildhall.Channel, error) { return s.Store.Channel(ctx, id) })
}

func (s *outageStore) Channels(ctx context.Context, guildID guildhall.Snowflake) ([]guildhall.Channel, error) {
	return down2(s, func() ([]guildhall.Channel, error) { return s.Store.Channels(ctx, guildID) })
}

func (s *outageStore) PutRole(ctx context.Context, guildID guildhall.Snowflake, r guildhall.Role) error {
	return down(s, func() error { return s.Store.PutRole(ctx, guildID, r) })
}

func (s *outageStore) Roles(ctx context.Context, guildID guildhall.Snowflake) ([]guildhall.Role, error) {
	return down2(s, func() ([]guildhall.Role, error) { return s.Store.Roles(ctx, guildID) })
}

func (s *outageStore) PutMember(ctx context.Context, m guildhall.Member) error {
	return down(s, func() error { return s.Store.PutMember(ctx, m) })
}

func (s *outageStore) Member(ctx context.Context, guildID guildhall.Snowflake, userID guildhall.Snowflake) (guildhall.Member, error) {
	return down2(s, func() (guildhall.Member, error) { return s.Store.Member(ctx, guildID, userID) })
}

func (s *outageStore) Members(ctx context.Context, guildID guildhall.Snowflake, after guildhall.Snowflake, limit int) ([]guildhall.Member, error) {
	return down2(s, func() ([]guildhall.Member, error) { return s.Store.Members(ctx, guildID, after, limit) })
}

func (s *outageStore) MemberCount(ctx context.Context, guildID guildhall.Snowflake) (int, error) {
	return down2(s, func() (int, error) { return s.Store.MemberCount(ctx, guildID) })
}

func (s *outageStore) UserGuilds(ctx context.Context, userID guildhall.Snowflake) ([]guildhall.Snowflake, error) {
	return down2(s, func() ([]guildhall.Snowflake, error) { return s.Store.UserGuilds(ctx, userID) })
}

func (s *outageStore) PutInvite(ctx context.Context, inv guildhall.Invite) error {
	return down(s, func() error { return s.Store.PutInvite(ctx, inv) })
}

func (s *outageStore) Invite(ctx context.Context, code string) (guildhall.Invite, error) {
	return down2(s, func() (guildhall.Invite, error) { return s.Store.Invite(ctx, code) })
}

func (s *outageStore) JoinGuild(ctx context.Context, m guildhall.Member, code string) (guildhall.Invite, bool, error) {
	return down3(s, func() (guildhall.Invite, bool, error) { return s.Store.JoinGuild(ctx, m, code) })
}

func (s *outageStore) ApplyMessages(ctx context.Context, writes []messaging.MessageWrite) error {
	return down(s, func() error { return s.Store.ApplyMessages(ctx, writes) })
}

func (s *outageStore) Message(ctx context.Context, channelID guildhall.Snowflake, id guildhall.Snowflake) (guildhall.Message, error) {
	return down2(s, func() (guildhall.Message, error) { return s.Store.Message(ctx, channelID, id) })
}

func (s *outageStore) History(ctx context.Context, channelID guildhall.Snowflake, q messaging.HistoryQuery) ([]guildhall.Message, error) {
	return down2(s, func() ([]guildhall.Message, error) { return s.Store.History(ctx, channelID, q) })
}

func (s *outageStore) DeleteChannel(ctx context.Context, id guildhall.Snowflake) error {
	return down(s, func() error { return s.Store.DeleteChannel(ctx, id) })
}

func (s *outageStore) DeleteRole(ctx context.Context, guildID guildhall.Snowflake, roleID guildhall.Snowflake) error {
	return down(s, func() error { return s.Store.DeleteRole(ctx, guildID, roleID) })
}

func (s *outageStore) RemoveMember(ctx context.Context, guildID guildhall.Snowflake, userID guildhall.Snowflake) error {
	return down(s, func() error { return s.Store.RemoveMember(ctx, guildID, userID) })
}

func (s *outageStore) DeleteGuild(ctx context.Context, id guildhall.Snowflake) error {
	return down(s, func() error { return s.Store.DeleteGuild(ctx, id) })
}

func (s *outageStore) PutBan(ctx context.Context, b guildhall.Ban) (bool, error) {
	return down2(s, func() (bool, error) { return s.Store.PutBan(ctx, b) })
}

func (s *outageStore) Ban(ctx context.Context, guildID guildhall.Snowflake, userID guildhall.Snowflake) (guildhall.Ban, error) {
	return down2(s, func() (guildhall.Ban, error) { return s.Store.Ban(ctx, guildID, userID) })
}

func (s *outageStore) DeleteBan(ctx context.Context, guildID guildhall.Snowflake, userID guildhall.Snowflake) error {
	return down(s, func() error { return s.Store.DeleteBan(ctx, guildID, userID) })
}

func (s *outageStore) Bans(ctx context.Context, guildID guildhall.Snowflake, q messaging.BanQuery) ([]guildhall.Ban, error) {
	return down2(s, func() ([]guildhall.Ban, error) { return s.Store.Bans(ctx, guildID, q) })
}

func (s *outageStore) GuildInvites(ctx context.Context, guildID guildhall.Snowflake) ([]guildhall.Invite, error) {
	return down2(s, func() ([]guildhall.Invite, error) { return s.Store.GuildInvites(ctx, guildID) })
}

func (s *outageStore) DeleteInvite(ctx context.Context, code string) error {
	return down(s, func() error { return s.Store.DeleteInvite(ctx, code) })
}

func (s *outageStore) PutAuditEntry(ctx context.Context, e guildhall.AuditLogEntry) error {
	return down(s, func() error { return s.Store.PutAuditEntry(ctx, e) })
}

func (s *outageStore) AuditLog(ctx context.Context, guildID guildhall.Snowflake, q messaging.AuditQuery) ([]guildhall.AuditLogEntry, error) {
	return down2(s, func() ([]guildhall.AuditLogEntry, error) { return s.Store.AuditLog(ctx, guildID, q) })
}

func (s *outageStore) Pins(ctx context.Context, channelID guildhall.Snowflake, limit int) ([]messaging.PinnedMessage, error) {
	return down2(s, func() ([]messaging.PinnedMessage, error) { return s.Store.Pins(ctx, channelID, limit) })
}

func (s *outageStore) DeleteToken(ctx context.Context, tokenHash string) error {
	return down(s, func() error { return s.Store.DeleteToken(ctx, tokenHash) })
}

func (s *outageStore) DeleteUserTokens(ctx context.Context, userID guildhall.Snowflake, keep string) ([]string, error) {
	return down2(s, func() ([]string, error) { return s.Store.DeleteUserTokens(ctx, userID, keep) })
}

func (s *outageStore) SetPasswordHash(ctx context.Context, userID guildhall.Snowflake, hash string) error {
	return down(s, func() error { return s.Store.SetPasswordHash(ctx, userID, hash) })
}

func (s *outageStore) Bots(ctx context.Context, ownerID guildhall.Snowflake) ([]guildhall.User, error) {
	return down2(s, func() ([]guildhall.User, error) { return s.Store.Bots(ctx, ownerID) })
}

func (s *outageStore) Reactions(ctx context.Context, channelID guildhall.Snowflake, messageIDs []guildhall.Snowflake, me guildhall.Snowflake) (map[guildhall.Snowflake][]guildhall.Reaction, error) {
	return down2(s, func() (map[guildhall.Snowflake][]guildhall.Reaction, error) {
		return s.Store.Reactions(ctx, channelID, messageIDs, me)
	})
}

func (s *outageStore) ReactionUsers(ctx context.Context, channelID, messageID guildhall.Snowflake, emoji string, after guildhall.Snowflake, limit int) ([]guildhall.Snowflake, error) {
	return down2(s, func() ([]guildhall.Snowflake, error) {
		return s.Store.ReactionUsers(ctx, channelID, messageID, emoji, after, limit)
	})
}

func (s *outageStore) LastMessageIDs(ctx context.Context, channelIDs []guildhall.Snowflake) (map[guildhall.Snowflake]guildhall.Snowflake, error) {
	return down2(s, func() (map[guildhall.Snowflake]guildhall.Snowflake, error) {
		return s.Store.LastMessageIDs(ctx, channelIDs)
	})
}

func (s *outageStore) PutReadState(ctx context.Context, userID guildhall.Snowflake, rs guildhall.ReadState) error {
	return down(s, func() error { return s.Store.PutReadState(ctx, userID, rs) })
}

func (s *outageStore) ReadStates(ctx context.Context, userID guildhall.Snowflake) ([]guildhall.ReadState, error) {
	return down2(s, func() ([]guildhall.ReadState, error) { return s.Store.ReadStates(ctx, userID) })
}

func (s *outageStore) CreatePrivateChannel(ctx context.Context, ch guildhall.PrivateChannel) (guildhall.PrivateChannel, bool, error) {
	return down3(s, func() (guildhall.PrivateChannel, bool, error) { return s.Store.CreatePrivateChannel(ctx, ch) })
}

func (s *outageStore) PrivateChannel(ctx context.Context, id guildhall.Snowflake) (guildhall.PrivateChannel, error) {
	return down2(s, func() (guildhall.PrivateChannel, error) { return s.Store.PrivateChannel(ctx, id) })
}

func (s *outageStore) UserPrivateChannels(ctx context.Context, userID guildhall.Snowflake) ([]guildhall.PrivateChannel, error) {
	return down2(s, func() ([]guildhall.PrivateChannel, error) { return s.Store.UserPrivateChannels(ctx, userID) })
}

func (s *outageStore) LeavePrivateChannel(ctx context.Context, channelID, userID guildhall.Snowflake) (guildhall.PrivateChannel, error) {
	return down2(s, func() (guildhall.PrivateChannel, error) { return s.Store.LeavePrivateChannel(ctx, channelID, userID) })
}

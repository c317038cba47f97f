package bolt

// Layout (all ids are 8-byte big-endian, so byte order == numeric order):
//
//	meta               "schema" -> version
//	users              user_id -> JSON boltUser (public user + password hash)
//	usernames          lower(username) -> user_id         (uniqueness, login)
//	tokens             token_hash -> user_id
//	guilds             guild_id -> JSON Guild (MemberCount not stored here)
//	member_counts      guild_id -> uint64 count of distinct members
//	channels           channel_id -> JSON Channel
//	guild_channels     guild_id|channel_id -> ""          (list a guild's channels)
//	roles              guild_id|role_id -> JSON Role
//	members            guild_id|user_id -> JSON Member    (paging by user id)
//	user_guilds        user_id|guild_id -> ""             (reverse index)
//	invites            code -> JSON Invite
//	guild_invites      guild_id|code -> ""                (a guild's invites: lists, caps, guild deletes)
//	user_tokens        user_id|token_hash -> ""           (revoking a user's tokens)
//	bot_owners         owner_id|bot_id -> ""              (a user's bots)
//	messages           channel_id|bucket|message_id -> seq(8) + JSON Message
//	message_tombstones channel_id|bucket|message_id -> seq(8)
//	message_pins       channel_id|bucket|message_id -> seq(8) + pinned_at ms(8), 0 = unpinned
//	bans               guild_id|user_id -> JSON Ban
//	audit_log          guild_id|entry_id -> JSON AuditLogEntry
//
// and for conversations (conversations.go):
//
//	reactions             channel_id|message_id|emoji|0|user_id -> seq(8) + present(1)
//	reaction_clears       channel_id|message_id -> seq(8)        (remove all)
//	                      channel_id|message_id|emoji|0 -> seq(8) (remove one emoji)
//	channel_last          channel_id -> message_id            (the newest ever written)
//	read_states           user_id|channel_id -> version(8) + message_id(8)
//	private_channels      channel_id -> JSON PrivateChannel
//	user_private_channels user_id|channel_id -> ""
//	dm_pairs              low user_id|high user_id -> channel_id
//
// Values are encoding/json: not the fastest, but the domain types already
// marshal to Discord's JSON, so there is no second schema to keep in sync.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	bbolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
)

// ErrLocked: another process (or another Open in this one) holds the
// store file. bbolt takes an exclusive flock; without a timeout a second
// `guildhall serve` on the same data directory would hang forever instead of
// telling the operator what is wrong.
var ErrLocked = errors.New("store: file is locked by another process")

// openTimeout is how long Open waits for the file lock before giving up
// with ErrLocked.
const openTimeout = time.Second

// schemaVersion is the on-disk layout version, checked at open so a future layout
// change cannot silently misread an old file.
const schemaVersion = 1

var (
	bMeta          = []byte("meta")
	bUsers         = []byte("users")
	bUsernames     = []byte("usernames")
	bTokens        = []byte("tokens")
	bGuilds        = []byte("guilds")
	bMemberCounts  = []byte("member_counts")
	bChannels      = []byte("channels")
	bGuildChannels = []byte("guild_channels")
	bRoles         = []byte("roles")
	bMembers       = []byte("members")
	bUserGuilds    = []byte("user_guilds")
	bInvites       = []byte("invites")
	bMessages      = []byte("messages")
	bTombstones    = []byte("message_tombstones")
	bPins          = []byte("message_pins")
	bBans          = []byte("bans")
	bAudit         = []byte("audit_log")

	// The indexes that files of this schema may lack are created by
	// openIndexes (accounts.go), which builds them from what they index.
	allBuckets = append([][]byte{bMeta, bUsers, bUsernames, bTokens, bGuilds, bMemberCounts,
		bChannels, bGuildChannels, bRoles, bMembers, bUserGuilds, bInvites, bMessages, bTombstones,
		bPins, bBans, bAudit},
		conversationBuckets...)
)

// Store is the embedded messaging.Store: one bbolt file owned by one process.
type Store struct {
	db *bbolt.DB
}

var _ messaging.Store = (*Store)(nil)

// Open opens (or creates) the store file at path, creating its parent
// directories. If another process has the file open it fails after about a
// second with an error wrapping ErrLocked.
func Open(path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout: openTimeout,
		// The hashmap freelist keeps commits fast once the file is large and
		// fragmented (deletes and edits free pages all over it).
		FreelistType: bbolt.FreelistMapType,
	})
	if err == nil {
		// A lone writer waits at most this long for company before committing.
		db.MaxBatchDelay = 2 * time.Millisecond
	}
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open store %s: %w (is another guildhall running on this data directory?)", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bMeta)
		if v := meta.Get([]byte("schema")); v != nil {
			if got := binary.BigEndian.Uint64(v); got != schemaVersion {
				return fmt.Errorf("schema version %d, this build reads %d", got, schemaVersion)
			}
			return nil
		}
		if err := meta.Put([]byte("schema"), u64(schemaVersion)); err != nil {
			return err
		}
		return nil
	})
	if err == nil {
		err = db.Update(openIndexes)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close releases the file (and its lock).
func (s *Store) Close() error { return s.db.Close() }

// ---- keys and values

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), v) }

// key2 is a composite key a|b; every prefix scan below relies on a being first.
func key2(a, b guildhall.Snowflake) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, uint64(a))
	binary.BigEndian.PutUint64(k[8:], uint64(b))
	return k
}

// msgKey is channel|bucket|id, the CQL partition (channel, bucket) followed by
// the clustering column. Within a channel, bucket is a monotone function of the
// id (both grow with the id's millisecond), so byte order of these keys is the
// id order: a history page is a Seek to the cursor and a walk. The bucket is
// redundant for ordering here; it is kept so both stores share one layout.
func msgKey(channelID, id guildhall.Snowflake) []byte {
	k := make([]byte, 24)
	binary.BigEndian.PutUint64(k, uint64(channelID))
	binary.BigEndian.PutUint64(k[8:], uint64(id.Bucket()))
	binary.BigEndian.PutUint64(k[16:], uint64(id))
	return k
}

// idAt reads the snowflake at byte offset off of a key.
func idAt(k []byte, off int) guildhall.Snowflake {
	return guildhall.Snowflake(binary.BigEndian.Uint64(k[off:]))
}

// boltUser is the stored account. It has its own JSON tags (messaging.UserRecord has none)
// so renaming a Go field does not change the file format.
type boltUser struct {
	User         guildhall.User `json:"user"`
	PasswordHash string         `json:"password_hash,omitempty"`
}

func putJSON(b *bbolt.Bucket, k []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(k, data)
}

// getJSON decodes the value at k into v; messaging.ErrNotFound (wrapped with what) if absent.
func getJSON(b *bbolt.Bucket, k []byte, v any, what string) error {
	data := b.Get(k)
	if data == nil {
		return fmt.Errorf("%s: %w", what, messaging.ErrNotFound)
	}
	return json.Unmarshal(data, v)
}

func (s *Store) view(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(fn)
}

// update runs fn in a write transaction through bbolt's Batch: concurrent writers
// (many members joining at once, say) share one commit and one fsync instead of
// queueing for one each. Batch may run fn a second time, alone, when another
// function of the batch failed; every fn here only reads and writes its own tx,
// so running it again is safe.
func (s *Store) update(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Batch(fn)
}

// ---- users

// foldUsername is the uniqueness key of a username. strings.ToLower, not full
// Unicode case folding: the CQL store must compute the very same key, and ToLower
// is the simplest rule both can share.
func foldUsername(name string) []byte { return []byte(strings.ToLower(name)) }

func (s *Store) CreateUser(ctx context.Context, u messaging.UserRecord) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		names, users := tx.Bucket(bUsernames), tx.Bucket(bUsers)
		name := foldUsername(u.User.Username)
		if names.Get(name) != nil {
			return fmt.Errorf("username %q: %w", u.User.Username, messaging.ErrConflict)
		}
		id := u64(uint64(u.User.ID))
		if users.Get(id) != nil {
			// Overwriting would orphan the old username's index entry.
			return fmt.Errorf("user %v: %w", u.User.ID, messaging.ErrConflict)
		}
		if err := names.Put(name, id); err != nil {
			return err
		}
		if u.User.Bot && u.OwnerID != 0 {
			if err := tx.Bucket(bBotOwners).Put(key2(u.OwnerID, u.User.ID), nil); err != nil {
				return err
			}
		}
		return putJSON(users, id, boltUser{User: u.User, PasswordHash: u.PasswordHash})
	})
}

func (s *Store) UserByName(ctx context.Context, username string) (messaging.UserRecord, error) {
	var rec boltUser
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		id := tx.Bucket(bUsernames).Get(foldUsername(username))
		if id == nil {
			return fmt.Errorf("username %q: %w", username, messaging.ErrNotFound)
		}
		return getJSON(tx.Bucket(bUsers), id, &rec, "user")
	})
	return messaging.UserRecord{User: rec.User, PasswordHash: rec.PasswordHash}, err
}

func (s *Store) User(ctx context.Context, id guildhall.Snowflake) (guildhall.User, error) {
	var rec boltUser
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		return getJSON(tx.Bucket(bUsers), u64(uint64(id)), &rec, "user "+id.String())
	})
	return rec.User, err
}

func (s *Store) PutToken(ctx context.Context, tokenHash string, userID guildhall.Snowflake) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		if err := tx.Bucket(bUserTokens).Put(userTokenKey(userID, tokenHash), nil); err != nil {
			return err
		}
		return tx.Bucket(bTokens).Put([]byte(tokenHash), u64(uint64(userID)))
	})
}

func (s *Store) UserByToken(ctx context.Context, tokenHash string) (guildhall.Snowflake, error) {
	var id guildhall.Snowflake
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		v := tx.Bucket(bTokens).Get([]byte(tokenHash))
		if v == nil {
			return fmt.Errorf("token: %w", messaging.ErrNotFound)
		}
		id = idAt(v, 0)
		return nil
	})
	return id, err
}

// ---- guilds, channels, roles

func (s *Store) PutGuild(ctx context.Context, g guildhall.Guild) error {
	// The count belongs to member_counts (kept by PutMember); storing the
	// caller's copy would let a stale value shadow it.
	g.MemberCount = 0
	return s.update(ctx, func(tx *bbolt.Tx) error {
		return putJSON(tx.Bucket(bGuilds), u64(uint64(g.ID)), g)
	})
}

func (s *Store) Guild(ctx context.Context, id guildhall.Snowflake) (guildhall.Guild, error) {
	var g guildhall.Guild
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		if err := getJSON(tx.Bucket(bGuilds), u64(uint64(id)), &g, "guild "+id.String()); err != nil {
			return err
		}
		g.MemberCount = memberCount(tx, id)
		return nil
	})
	return g, err
}

func (s *Store) PutChannel(ctx context.Context, c guildhall.Channel) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		chans, index := tx.Bucket(bChannels), tx.Bucket(bGuildChannels)
		id := u64(uint64(c.ID))
		// A replace may move the channel to another guild: drop the old index
		// entry or the old guild would keep listing it.
		var old guildhall.Channel
		if err := getJSON(chans, id, &old, "channel"); err == nil && old.GuildID != c.GuildID {
			if err := index.Delete(key2(old.GuildID, old.ID)); err != nil {
				return err
			}
		}
		if err := index.Put(key2(c.GuildID, c.ID), []byte{}); err != nil {
			return err
		}
		return putJSON(chans, id, c)
	})
}

func (s *Store) Channel(ctx context.Context, id guildhall.Snowflake) (guildhall.Channel, error) {
	var c guildhall.Channel
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		return getJSON(tx.Bucket(bChannels), u64(uint64(id)), &c, "channel "+id.String())
	})
	return c, err
}

func (s *Store) Channels(ctx context.Context, guildID guildhall.Snowflake) ([]guildhall.Channel, error) {
	var out []guildhall.Channel
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		chans := tx.Bucket(bChannels)
		prefix := u64(uint64(guildID))
		c := tx.Bucket(bGuildChannels).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			var ch guildhall.Channel
			if err := getJSON(chans, k[8:16], &ch, "channel"); err != nil {
				return err
			}
			out = append(out, ch)
		}
		return nil
	})
	// Positions change on every reorder, so they are not part of the key; a
	// guild has at most a few hundred channels, sorting them here is cheap.
	guildhall.SortChannels(out)
	return out, err
}

func (s *Store) PutRole(ctx context.Context, guildID guildhall.Snowflake, r guildhall.Role) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		return putJSON(tx.Bucket(bRoles), key2(guildID, r.ID), r)
	})
}

// Roles lists a guild's roles by id ascending (key order; the contract does not
// fix an order, callers sort by Position when they care).
func (s *Store) Roles(ctx context.Context, guildID guildhall.Snowflake) ([]guildhall.Role, error) {
	var out []guildhall.Role
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		prefix := u64(uint64(guildID))
		c := tx.Bucket(bRoles).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var r guildhall.Role
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// ---- members

// memberCount reads the maintained count; 0 for a guild nobody joined.
func memberCount(tx *bbolt.Tx, guildID guildhall.Snowflake) int {
	v := tx.Bucket(bMemberCounts).Get(u64(uint64(guildID)))
	if v == nil {
		return 0
	}
	return int(binary.BigEndian.Uint64(v))
}

func (s *Store) PutMember(ctx context.Context, m guildhall.Member) error {
	return s.update(ctx, func(tx *bbolt.Tx) error { return putMember(tx, m) })
}

func putMember(tx *bbolt.Tx, m guildhall.Member) error {
	members := tx.Bucket(bMembers)
	k := key2(m.GuildID, m.User.ID)
	// Count only new keys: a replace (nick change, role change) must not
	// inflate the count. This read-then-write is safe because bbolt
	// serializes writers.
	if members.Get(k) == nil {
		n := memberCount(tx, m.GuildID) + 1
		if err := tx.Bucket(bMemberCounts).Put(u64(uint64(m.GuildID)), u64(uint64(n))); err != nil {
			return err
		}
		if err := tx.Bucket(bUserGuilds).Put(key2(m.User.ID, m.GuildID), []byte{}); err != nil {
			return err
		}
	}
	return putJSON(members, k, m)
}

// fillMember decodes a stored membership and refreshes its User from the users
// bucket: the copy taken at join time goes stale when the user renames, the
// account is the source of truth. A member without an account (imported, or a
// test) keeps the stored copy.
func fillMember(tx *bbolt.Tx, k, v []byte) (guildhall.Member, error) {
	var m guildhall.Member
	if err := json.Unmarshal(v, &m); err != nil {
		return m, err
	}
	m.GuildID, m.User.ID = idAt(k, 0), idAt(k, 8)
	if data := tx.Bucket(bUsers).Get(k[8:16]); data != nil {
		var rec boltUser
		if err := json.Unmarshal(data, &rec); err != nil {
			return m, err
		}
		m.User = rec.User
	}
	return m, nil
}

func (s *Store) Member(ctx context.Context, guildID, userID guildhall.Snowflake) (guildhall.Member, error) {
	var m guildhall.Member
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		k := key2(guildID, userID)
		v := tx.Bucket(bMembers).Get(k)
		if v == nil {
			return fmt.Errorf("member %v of guild %v: %w", userID, guildID, messaging.ErrNotFound)
		}
		var err error
		m, err = fillMember(tx, k, v)
		return err
	})
	return m, err
}

func (s *Store) Members(ctx context.Context, guildID, after guildhall.Snowflake, limit int) ([]guildhall.Member, error) {
	out := []guildhall.Member{}
	if limit <= 0 {
		return out, nil
	}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		prefix := u64(uint64(guildID))
		c := tx.Bucket(bMembers).Cursor()
		k, v := c.Seek(key2(guildID, after))
		if k != nil && bytes.HasPrefix(k, prefix) && idAt(k, 8) == after {
			k, v = c.Next() // strictly after
		}
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, v = c.Next() {
			m, err := fillMember(tx, k, v)
			if err != nil {
				return err
			}
			out = append(out, m)
		}
		return nil
	})
	return out, err
}

func (s *Store) MemberCount(ctx context.Context, guildID guildhall.Snowflake) (int, error) {
	var n int
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		n = memberCount(tx, guildID)
		return nil
	})
	return n, err
}

func (s *Store) UserGuilds(ctx context.Context, userID guildhall.Snowflake) ([]guildhall.Snowflake, error) {
	out := []guildhall.Snowflake{}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		prefix := u64(uint64(userID))
		c := tx.Bucket(bUserGuilds).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			out = append(out, idAt(k, 8))
		}
		return nil
	})
	return out, err
}

// ---- invites

func (s *Store) PutInvite(ctx context.Context, inv guildhall.Invite) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		if err := tx.Bucket(bGuildInvites).Put(guildInviteKey(inv.GuildID, inv.Code), nil); err != nil {
			return err
		}
		return putJSON(tx.Bucket(bInvites), []byte(inv.Code), inv)
	})
}

// JoinGuild checks and writes in one transaction, so concurrent joins share
// db.Batch commits instead of each waiting for two. The refusals are results, not
// errors of the closure: an error would roll back and re-run the whole batch.
func (s *Store) JoinGuild(ctx context.Context, m guildhall.Member, code string) (guildhall.Invite, bool, error) {
	var inv guildhall.Invite
	var joined bool
	var refused error
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		inv, joined, refused = guildhall.Invite{}, false, nil // db.Batch may run this twice
		invites := tx.Bucket(bInvites)
		if refused = getJSON(invites, []byte(code), &inv, "invite "+code); refused != nil {
			if errors.Is(refused, messaging.ErrNotFound) {
				return nil
			}
			return refused
		}
		if tx.Bucket(bMembers).Get(key2(m.GuildID, m.User.ID)) != nil {
			return nil
		}
		if inv.MaxUses > 0 && inv.Uses >= inv.MaxUses {
			refused = fmt.Errorf("invite %s: %w", code, messaging.ErrInviteUsedUp)
			return nil
		}
		if err := putMember(tx, m); err != nil {
			return err
		}
		inv.Uses++
		joined = true
		return putJSON(invites, []byte(code), inv)
	})
	if err == nil {
		err = refused
	}
	if err != nil {
		return guildhall.Invite{}, false, err
	}
	return inv, joined, nil
}

func (s *Store) Invite(ctx context.Context, code string) (guildhall.Invite, error) {
	var inv guildhall.Invite
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		return getJSON(tx.Bucket(bInvites), []byte(code), &inv, "invite "+code)
	})
	return inv, err
}

// ---- messages

// ApplyMessages commits the whole batch in one transaction (one fsync for the
// batch, and a failed batch leaves nothing half-applied for the writer to
// reason about). Versioning, per message key:
//
//   - the messages bucket holds the live version with the Seq that wrote it;
//   - the tombstones bucket holds the Seq of the delete of a deleted message;
//   - at most one of the two exists for a key. A delete is final (see messaging.Store):
//     once a tombstone exists no upsert is applied, so the outcome does not
//     depend on order or repetition.
//
// Tombstones are never collected: a message id is 24+8 bytes forever after its
// delete. They could be dropped once older than the stream's redelivery horizon,
// if that ever matters.
func (s *Store) ApplyMessages(ctx context.Context, writes []messaging.MessageWrite) error {
	if len(writes) == 0 {
		return nil
	}
	return s.update(ctx, func(tx *bbolt.Tx) error {
		msgs, tombs, pins := tx.Bucket(bMessages), tx.Bucket(bTombstones), tx.Bucket(bPins)
		for _, w := range writes {
			if err := applyMessage(msgs, tombs, pins, w); err != nil {
				return err
			}
		}
		return nil
	})
}

func applyMessage(msgs, tombs, pins *bbolt.Bucket, w messaging.MessageWrite) error {
	m := w.Message
	if m.ID == 0 || m.ChannelID == 0 {
		return fmt.Errorf("apply message write seq %d: message id and channel id are required", w.Seq)
	}
	k := msgKey(m.ChannelID, m.ID)
	if !w.Delete && w.Reaction == nil && w.Pin == nil {
		// Written, even if deleted already: the channel's last message id counts it.
		if err := raiseLastMessage(msgs.Tx(), m.ChannelID, m.ID); err != nil {
			return err
		}
	}
	if tombs.Get(k) != nil {
		return nil // deleted: final
	}
	if w.Reaction != nil {
		return applyReaction(msgs.Tx(), m.ChannelID, m.ID, w.Seq, *w.Reaction)
	}
	if w.Delete {
		if err := msgs.Delete(k); err != nil {
			return err
		}
		if err := pins.Delete(k); err != nil {
			return err
		}
		if err := deleteReactions(msgs.Tx(), m.ChannelID, m.ID); err != nil {
			return err
		}
		return tombs.Put(k, u64(w.Seq))
	}
	if w.Pin != nil {
		return applyPin(pins, k, w)
	}
	if cur := msgs.Get(k); cur != nil && binary.BigEndian.Uint64(cur) >= w.Seq {
		return nil // stale or repeated
	}
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return msgs.Put(k, append(u64(w.Seq), data...))
}

// decodeMessage reads a stored message and whether it is pinned (pins is the
// message_pins bucket, k the message's key).
func decodeMessage(pins *bbolt.Bucket, k, v []byte) (guildhall.Message, error) {
	var m guildhall.Message
	err := json.Unmarshal(v[8:], &m)
	_, m.Pinned = pinnedAt(pins.Get(k))
	return m, err
}

func (s *Store) Message(ctx context.Context, channelID, id guildhall.Snowflake) (guildhall.Message, error) {
	var m guildhall.Message
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		k := msgKey(channelID, id)
		v := tx.Bucket(bMessages).Get(k)
		if v == nil {
			return fmt.Errorf("message %v in channel %v: %w", id, channelID, messaging.ErrNotFound)
		}
		var err error
		m, err = decodeMessage(tx.Bucket(bPins), k, v)
		return err
	})
	return m, err
}

// History walks the messages bucket from a Seek. Empty buckets: we keep no
// per-channel index of non-empty buckets, because the B+tree already is one —
// a bucket without messages has no keys, so Seek lands on the nearest existing
// key and a channel quiet for two years costs the same as a busy one (one seek,
// O(log n)). The CQL store cannot do this (a partition is addressed by its exact
// bucket), which is why it keeps an index of a channel's non-empty buckets (package cql).
func (s *Store) History(ctx context.Context, channelID guildhall.Snowflake, q messaging.HistoryQuery) ([]guildhall.Message, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	out := []guildhall.Message{}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		c, pins := tx.Bucket(bMessages).Cursor(), tx.Bucket(bPins)
		var err error
		switch {
		case q.After != 0:
			if q.After == ^guildhall.Snowflake(0) {
				return nil // nothing can be newer
			}
			out, err = historyUp(c, pins, channelID, q.After+1, q.Limit, out)
			slices.Reverse(out)
		case q.Around != 0:
			// Newer half first (walk up, then flip to newest first), then the
			// older half continues the newest-first order below it.
			out, err = historyUp(c, pins, channelID, q.Around, q.Limit-q.Limit/2, out)
			slices.Reverse(out)
			if err == nil {
				out, err = historyDown(c, pins, channelID, q.Around, q.Limit/2, out)
			}
		default: // Before, or the newest page when Before is 0
			out, err = historyDown(c, pins, channelID, q.Before, q.Limit, out)
		}
		return err
	})
	return out, err
}

// historyDown appends up to n messages of the channel with id < below, newest
// first; below == 0 means no bound (start at the newest).
func historyDown(c *bbolt.Cursor, pins *bbolt.Bucket, channelID, below guildhall.Snowflake, n int, out []guildhall.Message) ([]guildhall.Message, error) {
	if n <= 0 {
		return out, nil
	}
	var seek []byte
	if below == 0 {
		// channel|ff..ff sorts after every real key of the channel (no real
		// bucket is all ones), so Seek lands on the next channel or the end.
		seek = append(u64(uint64(channelID)), bytes.Repeat([]byte{0xff}, 16)...)
	} else {
		seek = msgKey(channelID, below)
	}
	// Seek finds the first key >= seek; the one before it is the newest < seek.
	var k, v []byte
	if first, _ := c.Seek(seek); first == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	prefix := seek[:8]
	for ; k != nil && bytes.HasPrefix(k, prefix) && n > 0; k, v = c.Prev() {
		m, err := decodeMessage(pins, k, v)
		if err != nil {
			return out, err
		}
		out = append(out, m)
		n--
	}
	return out, nil
}

// historyUp appends up to n messages of the channel with id >= from, oldest first.
func historyUp(c *bbolt.Cursor, pins *bbolt.Bucket, channelID, from guildhall.Snowflake, n int, out []guildhall.Message) ([]guildhall.Message, error) {
	if n <= 0 {
		return out, nil
	}
	prefix := u64(uint64(channelID))
	for k, v := c.Seek(msgKey(channelID, from)); k != nil && bytes.HasPrefix(k, prefix) && n > 0; k, v = c.Next() {
		m, err := decodeMessage(pins, k, v)
		if err != nil {
			return out, err
		}
		out = append(out, m)
		n--
	}
	return out, nil
}

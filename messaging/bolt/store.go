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
//
// Each file holds what it stores, under the same names as in the CQL store:
// accounts.go (users, tokens, bots), guilds.go (guilds, channels, roles),
// members.go, invites.go, messages.go (messages and history), community.go
// (pins, bans, the audit log, deletes), conversations.go (reactions, read
// states, DMs).

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

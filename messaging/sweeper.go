package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/nats-io/nats.go/jetstream"
)

// MessageLookup is what the Sweeper needs of the store: one message by its
// channel and id, ErrNotFound when there is none (never stored, or deleted);
// and whether its channel still exists, a guild channel (ErrNotFound once it or
// its guild is deleted; its messages stay in the store, unreachable) or a DM.
type MessageLookup interface {
	Message(ctx context.Context, channelID, id guildhall.Snowflake) (guildhall.Message, error)
	Channel(ctx context.Context, id guildhall.Snowflake) (guildhall.Channel, error)
	PrivateChannel(ctx context.Context, id guildhall.Snowflake) (guildhall.PrivateChannel, error)
}

// SweeperConfig configures a Sweeper. JS and Store are required; every other
// field may be left zero.
type SweeperConfig struct {
	// JS is the connection of the writer role, which may read the attachments'
	// stream, the writer's consumer, and delete files.
	JS jetstream.JetStream
	// Store is where a file's message is looked up.
	Store MessageLookup
	// Files are the attachment files. Zero value means NewFiles(JS).
	Files *Files
	// Interval is the time between two passes; the first runs one Interval
	// after Run starts. Zero value means 1 hour.
	Interval time.Duration
	// Grace is how long a file is left alone after its metadata last changed
	// (its upload, or its post linking it to the message): a post still in
	// flight is never swept. It must exceed the longest a request may take to
	// upload its files (the HTTP read timeout). Zero value means 1 hour.
	Grace time.Duration
	// MaxFiles bounds the metadata entries one pass reads (live files and the
	// tombstones JetStream keeps of deleted ones); the next pass goes on where
	// this one stopped. Zero value means 1,000.
	MaxFiles int
	// FilesPerSecond bounds the rate at which a pass reads metadata entries
	// (each a read from the stream's leader, then at most one store read and
	// one delete). Zero value means 20.
	FilesPerSecond float64
	// CatchUpTimeout bounds how long a pass waits for the writer to have stored
	// every event the stream held when the pass began; past it the pass is
	// skipped (a message not stored yet must not make its files look orphaned).
	// Zero value means 30 seconds.
	CatchUpTimeout time.Duration
	// Metrics counts the swept files. Zero value means unregistered metrics.
	Metrics *Metrics
	// Logger for passes and failures. Zero value means no logs.
	Logger *slog.Logger
	// Now is the clock files' ages are measured with. Zero value means time.Now.
	Now func() time.Time
}

// Sweeper deletes orphaned attachment files: those whose post failed and whose
// deletion failed with it (the api died, NATS refused), those of deleted
// messages the Writer gave up deleting, and those of deleted channels. A file
// is an orphan when its metadata is older than the grace period and its message
// (the fileMessage key, set just before the message is published) is not in the
// store, no longer lists it, or is in a channel that no longer exists, or when
// no post ever linked it. It walks the bucket's metadata one leader read
// at a time from a cursor kept between passes, so it holds one file's metadata
// at a time whatever the bucket's size, and runs beside the Writer, never in
// its path. Several Sweepers (one per writer process) only repeat each other's
// work: deletes are idempotent.
type Sweeper struct {
	js      jetstream.JetStream
	store   MessageLookup
	files   *Files
	cfg     SweeperConfig
	metrics *Metrics
	log     *slog.Logger
	now     func() time.Time

	cursor uint64 // the stream sequence the next pass starts at; only Run's goroutine (or Sweep's caller) uses it
}

// NewSweeper returns a Sweeper; it touches nothing until Run or Sweep.
func NewSweeper(cfg SweeperConfig) (*Sweeper, error) {
	if cfg.JS == nil || cfg.Store == nil {
		return nil, errors.New("messaging: sweeper: JS and Store are required")
	}
	s := &Sweeper{js: cfg.JS, store: cfg.Store, files: cfg.Files, cfg: cfg, metrics: cfg.Metrics, log: cfg.Logger, now: cfg.Now, cursor: 1}
	if s.files == nil {
		s.files = NewFiles(cfg.JS)
	}
	if s.cfg.Interval <= 0 {
		s.cfg.Interval = time.Hour
	}
	if s.cfg.Grace <= 0 {
		s.cfg.Grace = time.Hour
	}
	if s.cfg.MaxFiles <= 0 {
		s.cfg.MaxFiles = 1000
	}
	if s.cfg.FilesPerSecond <= 0 {
		s.cfg.FilesPerSecond = 20
	}
	if s.cfg.CatchUpTimeout <= 0 {
		s.cfg.CatchUpTimeout = 30 * time.Second
	}
	if s.metrics == nil {
		s.metrics = NewMetrics(nil)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Run sweeps every Interval until ctx ends. A failed pass is logged and the
// next one tries again.
func (s *Sweeper) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		res, err := s.Sweep(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("sweeper: pass stopped", "looked_at", res.Examined, "deleted", res.Deleted, "err", err)
			continue
		}
		s.log.Info("sweeper: pass", "looked_at", res.Examined, "deleted", res.Deleted, "legacy", res.Legacy, "wrapped", res.Wrapped)
	}
}

// SweepResult is what one pass did.
type SweepResult struct {
	// Examined counts the files looked at (deleted files' tombstones are read
	// but not counted).
	Examined int
	// Deleted counts the orphans deleted.
	Deleted int
	// Legacy counts files stored before files were linked to their message,
	// which are never swept.
	Legacy int
	// Wrapped says the pass reached the end of the bucket: the next one starts
	// from its beginning.
	Wrapped bool
}

// errWriterBehind: the writer has not stored what the stream held when the pass
// began; the pass is skipped.
var errWriterBehind = errors.New("messaging: sweeper: writer behind; pass skipped")

// Sweep runs one pass: it waits until the writer has stored every event the
// stream held when it began (or gives up, errWriterBehind), then looks at up to
// MaxFiles files from where the last pass stopped, at most FilesPerSecond, and
// deletes the orphans. A store or NATS failure stops the pass without deleting
// the file it was looking at. Calls must not overlap each other or Run.
func (s *Sweeper) Sweep(ctx context.Context) (SweepResult, error) {
	var res SweepResult
	// Files whose metadata is older than this are candidates. Taken before the
	// catch-up, so that every post linked before it was published before the
	// catch-up's start, and is stored once the catch-up is done.
	cutoff := s.now().Add(-s.cfg.Grace)
	if err := s.awaitWriter(ctx); err != nil {
		return res, err
	}
	subject := ghnats.ObjectMetaSubjects(ghnats.BucketAttachments)
	pace := time.NewTicker(time.Duration(float64(time.Second) / s.cfg.FilesPerSecond))
	defer pace.Stop()
	for read := 0; read < s.cfg.MaxFiles; read++ {
		if read > 0 {
			select {
			case <-ctx.Done():
				return res, ctx.Err()
			case <-pace.C:
			}
		}
		gctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		// From the leader: a replica that lags could show a file's upload
		// without the link its post wrote since.
		msg, found, err := ghnats.NextMsg(gctx, s.js, ghnats.StreamAttachments, subject, s.cursor)
		cancel()
		if err == nil && !found {
			s.cursor, res.Wrapped = 1, true
			return res, nil
		}
		if err != nil {
			return res, fmt.Errorf("messaging: sweeper: file metadata at %d: %w", s.cursor, err)
		}
		var info jetstream.ObjectInfo
		if err := json.Unmarshal(msg.Data, &info); err != nil || info.Deleted {
			s.cursor = msg.Seq + 1 // a deleted file's tombstone, or not ours
			continue
		}
		res.Examined++
		orphan, legacy, err := s.orphan(ctx, info, msg.Time, cutoff)
		if err != nil {
			return res, err
		}
		if legacy {
			res.Legacy++
		}
		if orphan {
			id, _ := guildhall.ParseSnowflake(info.Name) // orphan checked it
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := s.files.Remove(dctx, []guildhall.Snowflake{id})
			cancel()
			if err != nil {
				return res, err
			}
			res.Deleted++
			s.metrics.FilesSwept.Inc()
			s.log.Info("sweeper: orphaned file deleted", "file", info.Name, "channel", info.Metadata[fileChannel],
				"message", info.Metadata[fileMessage], "size", info.Size, "modified", msg.Time)
		}
		s.cursor = msg.Seq + 1
	}
	return res, nil
}

// orphan tells whether a file whose metadata was written at modified is an
// orphan. legacy: the file predates links and is kept.
func (s *Sweeper) orphan(ctx context.Context, info jetstream.ObjectInfo, modified, cutoff time.Time) (orphan, legacy bool, err error) {
	if !modified.Before(cutoff) {
		return false, false, nil // in its grace: its post may be in flight
	}
	id, err := guildhall.ParseSnowflake(info.Name)
	if err != nil {
		return false, false, nil // not an attachment's file: not ours to delete
	}
	link, linked := info.Metadata[fileMessage]
	if !linked {
		return false, true, nil
	}
	if link == "" {
		return true, false, nil // no post got as far as publishing it
	}
	channelID, cerr := guildhall.ParseSnowflake(info.Metadata[fileChannel])
	messageID, merr := guildhall.ParseSnowflake(link)
	if cerr != nil || merr != nil {
		s.log.Warn("sweeper: file with a bad link kept", "file", info.Name, "channel", info.Metadata[fileChannel], "message", link)
		return false, false, nil
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m, err := s.store.Message(sctx, channelID, messageID)
	if errors.Is(err, ErrNotFound) {
		return true, false, nil // never stored (the post failed) or deleted
	}
	if err != nil {
		return false, false, fmt.Errorf("messaging: sweeper: message %v of file %v: %w", messageID, id, err)
	}
	if !slices.ContainsFunc(m.Attachments, func(a guildhall.Attachment) bool { return a.ID == id }) {
		return true, false, nil
	}
	// A deleted channel's messages stay in the store, out of reach: their
	// files must not stay served to whoever kept a URL.
	gone, err := s.channelGone(sctx, channelID)
	if err != nil {
		return false, false, fmt.Errorf("messaging: sweeper: channel %v of file %v: %w", channelID, id, err)
	}
	return gone, false, nil
}

// channelGone reports whether a channel no longer exists: neither a guild
// channel nor a DM.
func (s *Sweeper) channelGone(ctx context.Context, id guildhall.Snowflake) (bool, error) {
	_, err := s.store.Channel(ctx, id)
	if !errors.Is(err, ErrNotFound) {
		return false, err
	}
	_, err = s.store.PrivateChannel(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return true, nil
	}
	return false, err
}

// awaitWriter returns once the writer's durable consumer has acknowledged (so
// stored) every event the stream held when it was called: its ack floor is past
// the stream's last sequence then, or nothing is pending or unacknowledged.
// With the writer behind for longer than CatchUpTimeout it returns
// errWriterBehind.
func (s *Sweeper) awaitWriter(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CatchUpTimeout)
	defer cancel()
	stream, err := s.js.Stream(ctx, ghnats.StreamEvents)
	if err != nil {
		return fmt.Errorf("messaging: sweeper: stream %s: %w", ghnats.StreamEvents, err)
	}
	last := stream.CachedInfo().State.LastSeq
	cons, err := stream.Consumer(ctx, ghnats.ConsumerWriter)
	if err != nil {
		return fmt.Errorf("messaging: sweeper: consumer %s: %w", ghnats.ConsumerWriter, err)
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		info, err := cons.Info(ctx)
		if err == nil && (info.AckFloor.Stream >= last || (info.NumPending == 0 && info.NumAckPending == 0)) {
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return errWriterBehind
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

package messaging_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
	"github.com/guildhall/guildhall/messaging/bolt"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/testenv"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/crypto/bcrypt"
)

// fileMessageKey is the metadata key that links a file to its message (the
// Sweeper's input), written here to make a file look like one whose post died
// after linking it.
const fileMessageKey = "message"

// refusingRemover is the writer's file remover failing every time: NATS
// refusing a delete, which the real server does not do on demand. The Writer
// then gives up on the files of deleted messages and leaves them to the
// Sweeper. (Without it the Writer deletes them itself: TestWriter* cover that.)
type refusingRemover struct{}

func (refusingRemover) Remove(context.Context, []guildhall.Snowflake) error {
	return errors.New("injected: delete refused")
}

type sweeperRig struct {
	t        *testing.T
	ctx      context.Context
	nats     *testenv.NATS
	wjs      jetstream.JetStream // the writer role's connection
	store    *bolt.Store
	svc      *messaging.Service
	files    *messaging.Files // as the writer role
	apiFiles *messaging.Files // as the api role, which stores files
	metrics  *messaging.Metrics
	user     guildhall.User
	channel  guildhall.Snowflake

	stopWriter func()
}

func newSweeperRig(t *testing.T) *sweeperRig {
	t.Helper()
	n := testenv.StartNATS(t, ghnats.Topology{})
	anc, ajs, err := ghnats.ConnectAs(n.URL, "api-test", ghnats.RoleAPI, ghnats.ClientAuth{Dir: n.Creds})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(anc.Close)
	wnc, wjs, err := ghnats.ConnectAs(n.URL, "writer-test", ghnats.RoleWriter, ghnats.ClientAuth{Dir: n.Creds})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(wnc.Close)
	store, err := bolt.Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	r := &sweeperRig{t: t, ctx: context.Background(), nats: n, wjs: wjs, store: store, files: messaging.NewFiles(wjs),
		apiFiles: messaging.NewFiles(ajs), metrics: messaging.NewMetrics(nil)}
	r.svc, err = messaging.NewService(r.ctx, messaging.Config{
		Store: store, Conn: anc, JS: ajs, IDs: guildhall.NewSnowflakeGeneratorForNode(7), BcryptCost: bcrypt.MinCost, Logger: testLog(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	runProjection(t, r.svc)
	r.startWriter()
	t.Cleanup(func() { r.stopWriter() })
	r.user = registerUser(t, r.svc, "sweeper_owner")
	st, err := r.svc.CreateGuild(r.ctx, r.user, "Files")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range st.Channels {
		if c.Type == guildhall.ChannelTypeGuildText {
			r.channel = c.ID
		}
	}
	if r.channel == 0 {
		t.Fatalf("CreateGuild made no text channel: %+v", st.Channels)
	}
	return r
}

// startWriter runs a Writer (as the writer role) whose file deletes are refused.
func (r *sweeperRig) startWriter() {
	w, err := messaging.NewWriter(messaging.WriterConfig{Store: r.store, JS: r.wjs, Files: refusingRemover{}, Logger: testLog(r.t), IdleWait: time.Second})
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	r.stopWriter = func() { cancel(); <-done }
}

func (r *sweeperRig) upload(name string) guildhall.Attachment {
	r.t.Helper()
	a, err := r.svc.UploadAttachment(r.ctx, r.user, r.channel, "http://files.test", messaging.Upload{Filename: name, Body: strings.NewReader("contents of " + name)})
	if err != nil {
		r.t.Fatalf("UploadAttachment(%s): %v", name, err)
	}
	return a
}

// post posts a message carrying as and returns it (not waiting for the writer).
func (r *sweeperRig) post(as ...guildhall.Attachment) guildhall.Message {
	r.t.Helper()
	m, err := r.svc.PostMessage(r.ctx, r.user, r.channel, messaging.NewMessage{Content: "with files", Attachments: as})
	if err != nil {
		r.t.Fatalf("PostMessage: %v", err)
	}
	return m
}

// stored waits until the store has message id (present) or has not (deleted).
func (r *sweeperRig) stored(id guildhall.Snowflake, present bool) {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := r.store.Message(r.ctx, r.channel, id)
		if (err == nil) == present {
			return
		}
		if err != nil && !errors.Is(err, messaging.ErrNotFound) {
			r.t.Fatal(err)
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("message %v stored = %v after 10 s; want %v", id, !present, present)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *sweeperRig) exists(a guildhall.Attachment) bool {
	r.t.Helper()
	_, err := r.files.Stat(r.ctx, a.ID)
	if errors.Is(err, messaging.ErrFileNotFound) {
		return false
	}
	if err != nil {
		r.t.Fatal(err)
	}
	return true
}

func (r *sweeperRig) sweeper(now func() time.Time, cfg messaging.SweeperConfig) *messaging.Sweeper {
	r.t.Helper()
	cfg.JS, cfg.Store, cfg.Metrics, cfg.Logger, cfg.Now = r.wjs, r.store, r.metrics, testLog(r.t), now
	cfg.Grace = time.Hour
	if cfg.FilesPerSecond == 0 {
		cfg.FilesPerSecond = 1000
	}
	s, err := messaging.NewSweeper(cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	return s
}

// TestSweeperDeletesOrphans: a pass, run with the writer role's rights, deletes
// the files past the grace whose message is not stored (the post died after
// storing them, or after linking them), was deleted (and the writer could not
// delete them), or does not list them; it keeps the files of live messages,
// files inside the grace, and files stored before files were linked.
func TestSweeperDeletesOrphans(t *testing.T) {
	r := newSweeperRig(t)

	live := r.upload("live.txt")
	liveMsg := r.post(live)
	deleted := r.upload("deleted.txt")
	deletedMsg := r.post(deleted)
	neverPosted := r.upload("never-posted.txt")
	diedAfterLink := r.upload("died-after-link.txt")
	if err := r.files.SetMetadata(r.ctx, diedAfterLink.ID, fileMessageKey, guildhall.NewSnowflakeGeneratorForNode(9).Next().String()); err != nil {
		t.Fatal(err)
	}
	notListed := r.upload("not-listed.txt")
	if err := r.files.SetMetadata(r.ctx, notListed.ID, fileMessageKey, liveMsg.ID.String()); err != nil {
		t.Fatal(err)
	}
	legacyID := guildhall.NewSnowflakeGeneratorForNode(10).Next()
	if _, err := r.apiFiles.Put(r.ctx, legacyID, map[string]string{"channel": r.channel.String()}, strings.NewReader("from before links")); err != nil {
		t.Fatal(err)
	}
	legacy := guildhall.Attachment{ID: legacyID}
	r.stored(liveMsg.ID, true)
	r.stored(deletedMsg.ID, true)
	if err := r.svc.DeleteMessage(r.ctx, r.user, r.channel, deletedMsg.ID); err != nil {
		t.Fatal(err)
	}
	r.stored(deletedMsg.ID, false)
	if !r.exists(deleted) {
		t.Fatal("the writer deleted the file of the deleted message although its deletes are refused")
	}

	// Every file so far was last modified before cutoff; the next one after it.
	time.Sleep(20 * time.Millisecond)
	cutoff := time.Now()
	time.Sleep(20 * time.Millisecond)
	fresh := r.upload("fresh.txt")

	s := r.sweeper(func() time.Time { return cutoff.Add(time.Hour) }, messaging.SweeperConfig{})
	res, err := s.Sweep(r.ctx)
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	for _, c := range []struct {
		name string
		a    guildhall.Attachment
		kept bool
	}{
		{"file of a live message", live, true},
		{"file of a deleted message", deleted, false},
		{"file of a post that never published", neverPosted, false},
		{"file linked to a message never stored", diedAfterLink, false},
		{"file linked to a message that does not list it", notListed, false},
		{"file inside the grace", fresh, true},
		{"file from before links", legacy, true},
	} {
		if got := r.exists(c.a); got != c.kept {
			t.Errorf("after a pass, %s exists = %v; want %v", c.name, got, c.kept)
		}
	}
	if res.Examined != 7 || res.Deleted != 4 || res.Legacy != 1 || !res.Wrapped {
		t.Errorf("Sweep = %+v; want 7 examined, 4 deleted, 1 legacy, wrapped", res)
	}
	if got := counter(r.metrics.FilesSwept); got != 4 {
		t.Errorf("files swept counter = %v; want 4", got)
	}
	// The live message is still served whole.
	if _, err := r.svc.OpenAttachment(r.ctx, r.channel, live.ID, "live.txt", live.URL[strings.Index(live.URL, "hm=")+len("hm="):]); err != nil {
		t.Errorf("OpenAttachment(live) after the pass: %v", err)
	}

	// A second pass finds nothing more to delete: the tombstones are skipped.
	res, err = s.Sweep(r.ctx)
	if err != nil || res.Deleted != 0 || res.Examined != 3 {
		t.Errorf("second Sweep = %+v, %v; want 3 examined, none deleted", res, err)
	}
}

// TestSweeperWaitsForTheWriter: a message published but not yet stored (the
// writer stopped) does not make its files look orphaned: the pass is skipped
// until the writer has caught up, and then keeps them.
func TestSweeperWaitsForTheWriter(t *testing.T) {
	r := newSweeperRig(t)
	r.stopWriter()
	a := r.upload("pending.txt")
	m := r.post(a)

	far := func() time.Time { return time.Now().Add(3 * time.Hour) } // every file is past the grace
	s := r.sweeper(far, messaging.SweeperConfig{CatchUpTimeout: 300 * time.Millisecond})
	if res, err := s.Sweep(r.ctx); err == nil {
		t.Fatalf("Sweep with the writer behind = %+v, nil; want an error", res)
	}
	if !r.exists(a) {
		t.Fatal("a pass with the writer behind deleted the file of a message not stored yet")
	}

	r.startWriter()
	r.stored(m.ID, true)
	res, err := s.Sweep(r.ctx)
	if err != nil || res.Deleted != 0 || res.Examined != 1 {
		t.Errorf("Sweep after the writer caught up = %+v, %v; want 1 examined, none deleted", res, err)
	}
	if !r.exists(a) {
		t.Error("the file of a stored message was swept")
	}
}

// TestSweeperBoundedPass: a pass reads at most MaxFiles entries, and the next
// one goes on where it stopped.
func TestSweeperBoundedPass(t *testing.T) {
	r := newSweeperRig(t)
	var orphans []guildhall.Attachment
	for _, name := range []string{"a.txt", "b.txt", "c.txt"} {
		orphans = append(orphans, r.upload(name))
	}
	far := func() time.Time { return time.Now().Add(3 * time.Hour) }
	s := r.sweeper(far, messaging.SweeperConfig{MaxFiles: 2})
	res, err := s.Sweep(r.ctx)
	if err != nil || res.Deleted != 2 || res.Wrapped {
		t.Fatalf("first Sweep = %+v, %v; want 2 deleted, not wrapped", res, err)
	}
	if r.exists(orphans[0]) || r.exists(orphans[1]) || !r.exists(orphans[2]) {
		t.Fatal("the first pass of 2 did not delete exactly the first two orphans")
	}
	res, err = s.Sweep(r.ctx)
	if err != nil || res.Deleted != 1 || r.exists(orphans[2]) {
		t.Fatalf("second Sweep = %+v, %v; want the third orphan deleted", res, err)
	}
}

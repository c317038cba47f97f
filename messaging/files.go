package messaging

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/nats-io/nats.go/jetstream"
)

// Files keeps attachment files in JetStream's object store (bucket
// ghnats.BucketAttachments, declared by ghnats.Apply): one object per
// attachment, named by its id, in chunks of FileChunkSize. Writes stream the
// file through in chunks; reads fetch one chunk at a time with direct gets, so
// neither ever holds more than about one chunk of a file, however large it is
// or however slow the client.
type Files struct {
	js jetstream.JetStream

	mu     sync.Mutex
	obs    jetstream.ObjectStore
	stream jetstream.Stream
}

// FileChunkSize is the size of an object's chunks (JetStream's default).
const FileChunkSize = 128 << 10

// ErrFileNotFound: no file with that id (never stored, or deleted).
var ErrFileNotFound = errors.New("files: not found")

// NewFiles returns the file store on js. The bucket is looked up on first use.
func NewFiles(js jetstream.JetStream) *Files { return &Files{js: js} }

func (f *Files) open(ctx context.Context) (jetstream.ObjectStore, jetstream.Stream, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.obs != nil {
		return f.obs, f.stream, nil
	}
	obs, err := f.js.ObjectStore(ctx, ghnats.BucketAttachments)
	if err != nil {
		return nil, nil, fmt.Errorf("files: object store %s: %w", ghnats.BucketAttachments, err)
	}
	st, err := f.js.Stream(ctx, ghnats.StreamAttachments)
	if err != nil {
		return nil, nil, fmt.Errorf("files: stream %s: %w", ghnats.StreamAttachments, err)
	}
	f.obs, f.stream = obs, st
	return obs, st, nil
}

// FileInfo is what is known of a stored file.
type FileInfo struct {
	ID       guildhall.Snowflake
	Size     int64
	Digest   string            // "SHA-256=<base64url>", JetStream's
	Metadata map[string]string // what Put was given
	nuid     string
	chunks   uint32
}

// Put stores the file read from r under id, with metadata, and returns its
// info. It reads r to its end in FileChunkSize pieces; on failure nothing of
// the file stays.
func (f *Files) Put(ctx context.Context, id guildhall.Snowflake, metadata map[string]string, r io.Reader) (FileInfo, error) {
	obs, _, err := f.open(ctx)
	if err != nil {
		return FileInfo{}, err
	}
	info, err := obs.Put(ctx, jetstream.ObjectMeta{
		Name: id.String(), Metadata: metadata, Opts: &jetstream.ObjectMetaOptions{ChunkSize: FileChunkSize},
	}, fullChunks{r})
	if err != nil {
		return FileInfo{}, fmt.Errorf("files: put %v: %w", id, err)
	}
	return fileInfo(id, info), nil
}

func fileInfo(id guildhall.Snowflake, info *jetstream.ObjectInfo) FileInfo {
	return FileInfo{ID: id, Size: int64(info.Size), Digest: info.Digest, Metadata: info.Metadata, nuid: info.NUID, chunks: info.Chunks}
}

// fullChunks makes each Read fill p when it can, so that an object's chunks
// are whole (a multipart body reads in small pieces) and a byte offset maps to
// a chunk.
type fullChunks struct{ r io.Reader }

func (c fullChunks) Read(p []byte) (int, error) {
	n, err := io.ReadFull(c.r, p)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = io.EOF
	}
	if n > 0 && errors.Is(err, io.EOF) {
		return n, nil // the next Read reports the end
	}
	return n, err
}

// SetMetadata sets one metadata key of a stored file, keeping the others (its
// content is not touched). It also makes the file's modification time now.
func (f *Files) SetMetadata(ctx context.Context, id guildhall.Snowflake, key, value string) error {
	obs, _, err := f.open(ctx)
	if err != nil {
		return err
	}
	info, err := obs.GetInfo(ctx, id.String())
	if errors.Is(err, jetstream.ErrObjectNotFound) || (err == nil && info.Deleted) {
		return ErrFileNotFound
	}
	if err != nil {
		return fmt.Errorf("files: stat %v: %w", id, err)
	}
	meta := info.ObjectMeta
	meta.Metadata = make(map[string]string, len(info.Metadata)+1)
	for k, v := range info.Metadata {
		meta.Metadata[k] = v
	}
	meta.Metadata[key] = value
	err = obs.UpdateMeta(ctx, id.String(), meta)
	if errors.Is(err, jetstream.ErrUpdateMetaDeleted) {
		return ErrFileNotFound
	}
	if err != nil {
		return fmt.Errorf("files: metadata of %v: %w", id, err)
	}
	return nil
}

// Stat returns a file's info; ErrFileNotFound if there is none.
func (f *Files) Stat(ctx context.Context, id guildhall.Snowflake) (FileInfo, error) {
	obs, _, err := f.open(ctx)
	if err != nil {
		return FileInfo{}, err
	}
	info, err := obs.GetInfo(ctx, id.String())
	if errors.Is(err, jetstream.ErrObjectNotFound) || (err == nil && info.Deleted) {
		return FileInfo{}, ErrFileNotFound
	}
	if err != nil {
		return FileInfo{}, fmt.Errorf("files: stat %v: %w", id, err)
	}
	return fileInfo(id, info), nil
}

// Copy writes length bytes of the file from offset to w, reading one chunk at a
// time. A file deleted meanwhile ends the copy with ErrFileNotFound.
func (f *Files) Copy(ctx context.Context, w io.Writer, info FileInfo, offset, length int64) error {
	_, st, err := f.open(ctx)
	if err != nil {
		return err
	}
	if offset < 0 || length < 0 || offset+length > info.Size {
		return fmt.Errorf("files: range %d+%d outside %d bytes", offset, length, info.Size)
	}
	subject := ghnats.ObjectChunkSubject(ghnats.BucketAttachments, info.nuid)
	seq := uint64(1) // the first message on the subject at or after seq
	var pos int64
	for n := uint32(0); n < info.chunks && length > 0; n++ {
		msg, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return ErrFileNotFound
		}
		if err != nil {
			return fmt.Errorf("files: chunk %d of %v: %w", n, info.ID, err)
		}
		seq = msg.Sequence + 1
		data := msg.Data
		end := pos + int64(len(data))
		if end > offset {
			from := max(offset-pos, 0)
			part := data[from:min(int64(len(data)), from+length)]
			if _, err := w.Write(part); err != nil {
				return err
			}
			offset += int64(len(part))
			length -= int64(len(part))
		}
		pos = end
	}
	if length > 0 {
		return fmt.Errorf("files: %v ended %d bytes short", info.ID, length)
	}
	return nil
}

// Remove deletes files; ones already gone are fine (deletes are idempotent).
func (f *Files) Remove(ctx context.Context, ids []guildhall.Snowflake) error {
	if len(ids) == 0 {
		return nil
	}
	obs, _, err := f.open(ctx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := obs.Delete(ctx, id.String()); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			return fmt.Errorf("files: delete %v: %w", id, err)
		}
	}
	return nil
}

package messaging

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"image"
	_ "image/gif" // image.DecodeConfig: widths and heights of attachments
	_ "image/jpeg"
	_ "image/png"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"unicode/utf8"

	guildhall "github.com/guildhall/guildhall"
)

// Attachments. A file is uploaded with the message that carries it (multipart,
// files[n] before or after payload_json): UploadAttachment stores it in Files
// as it arrives, then PostMessage publishes the message with the attachments.
// The api serves a file at /attachments/{channel_id}/{attachment_id}/{filename}
// (Discord's CDN path); the MESSAGE_DELETE of its message names it, and the
// Writer deletes it once the delete is stored.
//
// Who may download: anyone holding the URL, as on Discord's CDN, because a
// browser's <img> cannot send an Authorization header. The URL is a capability:
// it carries hm=<128 random bits> that the file's metadata must match, so it
// cannot be guessed from the (time-ordered) ids; only those who could read the
// message have it. A wrong or missing hm is answered 404, like an unknown file.

// Metadata keys of an attachment's file.
const (
	fileChannel     = "channel"
	fileName        = "filename"
	fileContentType = "content_type"
	fileSecret      = "secret"
	fileWidth       = "width"
	fileHeight      = "height"
	// fileMessage links a file to its message, for the Sweeper: empty from the
	// upload until PostMessage sets the message's id, just before it publishes.
	// A file without the key was stored before files were linked: it is never
	// swept.
	fileMessage = "message"
)

// Upload is one file of a message being posted, read as it arrives.
type Upload struct {
	// Filename as the client sent it; it is made safe for a URL path.
	Filename string
	// Body is read to its end.
	Body io.Reader
}

// probeSize is how much of a file is looked at before it is stored: enough for
// the content sniffer and for the headers of PNG, GIF, WebP and nearly every
// JPEG (a JPEG whose EXIF block is larger gets no width and height).
const probeSize = 128 << 10

// UploadAttachment stores one file for a message u is about to post to
// channelID (SEND_MESSAGES and ATTACH_FILES needed, checked before any byte is
// read) and returns its attachment, whose URL starts with baseURL (the api's
// public URL, e.g. "http://127.0.0.1:8080"). Until a message carries it, the
// file belongs to nobody: RemoveUploads deletes the files of a post that failed.
func (s *Service) UploadAttachment(ctx context.Context, u guildhall.User, channelID guildhall.Snowflake, baseURL string, up Upload) (guildhall.Attachment, error) {
	c, err := s.conversationAccess(ctx, u, channelID)
	if err != nil {
		return guildhall.Attachment{}, err
	}
	if !c.textual() {
		return guildhall.Attachment{}, errNonTextChannel
	}
	if !c.perms.Has(guildhall.PermSendMessages) || !c.perms.Has(guildhall.PermAttachFiles) {
		return guildhall.Attachment{}, guildhall.ErrMissingPerms
	}
	if err := s.dmReachable(ctx, u, c); err != nil {
		return guildhall.Attachment{}, err
	}
	id := s.ids.Next()
	var secret [16]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return guildhall.Attachment{}, internal("attachment secret", err)
	}
	name := safeFilename(up.Filename)
	br := bufio.NewReaderSize(up.Body, probeSize)
	head, err := br.Peek(probeSize)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return guildhall.Attachment{}, err // the request body failed (too large, cut)
	}
	a := guildhall.Attachment{ID: id, Filename: name, ContentType: contentType(name, head)}
	meta := map[string]string{
		fileChannel: c.ID.String(), fileName: name, fileContentType: a.ContentType, fileSecret: hex.EncodeToString(secret[:]),
		fileMessage: "",
	}
	if w, h, ok := imageSize(head); ok {
		a.Width, a.Height = &w, &h
		meta[fileWidth], meta[fileHeight] = strconv.Itoa(w), strconv.Itoa(h)
	}
	info, err := s.files.Put(ctx, id, meta, br)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return guildhall.Attachment{}, mbe
		}
		return guildhall.Attachment{}, internal("store attachment", err)
	}
	a.Size = info.Size
	a.URL = strings.TrimRight(baseURL, "/") + AttachmentPath(c.ID, id, name) + "?hm=" + meta[fileSecret]
	a.ProxyURL = a.URL
	return a, nil
}

// AttachmentPath is where the api serves an attachment, Discord's CDN path.
func AttachmentPath(channelID, id guildhall.Snowflake, filename string) string {
	return "/attachments/" + channelID.String() + "/" + id.String() + "/" + url.PathEscape(filename)
}

// linkAttachments records in each file the id of the message about to carry
// it, so that the Sweeper can tell a file whose post failed (its message never
// stored) from one of a live message. It runs before the message is published:
// a file whose post dies after it points at a message that never existed.
func (s *Service) linkAttachments(ctx context.Context, messageID guildhall.Snowflake, as []guildhall.Attachment) error {
	for _, a := range as {
		if err := s.files.SetMetadata(ctx, a.ID, fileMessage, messageID.String()); err != nil {
			return err
		}
	}
	return nil
}

// RemoveUploads deletes the files of attachments whose message was never posted.
func (s *Service) RemoveUploads(ctx context.Context, as []guildhall.Attachment) error {
	ids := make([]guildhall.Snowflake, len(as))
	for i, a := range as {
		ids[i] = a.ID
	}
	return s.files.Remove(ctx, ids)
}

// AttachmentFile is a stored attachment as the api serves it.
type AttachmentFile struct {
	Info        FileInfo
	ContentType string
	Filename    string
}

// OpenAttachment finds the file of attachment id of channelID named filename,
// if secret (the URL's hm) is its own; anything else is ErrNotFound.
func (s *Service) OpenAttachment(ctx context.Context, channelID, id guildhall.Snowflake, filename, secret string) (AttachmentFile, error) {
	info, err := s.files.Stat(ctx, id)
	if errors.Is(err, ErrFileNotFound) {
		return AttachmentFile{}, guildhall.ErrNotFound
	}
	if err != nil {
		return AttachmentFile{}, internal("attachment", err)
	}
	m := info.Metadata
	if m[fileChannel] != channelID.String() || m[fileName] != filename ||
		subtle.ConstantTimeCompare([]byte(m[fileSecret]), []byte(secret)) != 1 {
		return AttachmentFile{}, guildhall.ErrNotFound
	}
	return AttachmentFile{Info: info, ContentType: m[fileContentType], Filename: m[fileName]}, nil
}

// CopyAttachment writes length bytes of a file from offset to w.
func (s *Service) CopyAttachment(ctx context.Context, w io.Writer, f AttachmentFile, offset, length int64) error {
	return s.files.Copy(ctx, w, f.Info, offset, length)
}

// safeFilename is a name fit for a URL path segment, as Discord makes them:
// the base name, characters other than letters, digits, '.', '-' and '_'
// replaced by '_', at most 128 bytes; "unknown" when nothing is left.
func safeFilename(name string) string {
	name = path.Base(strings.ReplaceAll(name, "\\", "/"))
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
		if b.Len() >= 128 {
			break
		}
	}
	out := strings.TrimLeft(b.String(), ".")
	if out == "" || !utf8.ValidString(out) {
		return "unknown"
	}
	return out
}

// contentType is a file's media type: sniffed from its first bytes, or from its
// extension when sniffing finds nothing more specific than text or bytes.
func contentType(name string, head []byte) string {
	sniffed := http.DetectContentType(head)
	generic := sniffed == "application/octet-stream" || strings.HasPrefix(sniffed, "text/plain")
	if ext := path.Ext(name); generic && ext != "" {
		if t := mime.TypeByExtension(ext); t != "" {
			return t
		}
	}
	return sniffed
}

// imageSize reads the width and height of a PNG, JPEG, GIF or WebP from its
// first bytes (headers only, nothing decoded).
func imageSize(head []byte) (w, h int, ok bool) {
	if cfg, _, err := image.DecodeConfig(bytes.NewReader(head)); err == nil {
		return cfg.Width, cfg.Height, cfg.Width > 0 && cfg.Height > 0
	}
	return webpSize(head)
}

// webpSize reads a WebP's canvas size from its RIFF header: the VP8 (lossy),
// VP8L (lossless) or VP8X (extended) chunk, whichever comes first.
func webpSize(b []byte) (w, h int, ok bool) {
	if len(b) < 30 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WEBP" {
		return 0, 0, false
	}
	switch string(b[12:16]) {
	case "VP8 ": // frame tag (3), start code 9d 01 2a, then 14-bit width and height
		if b[23] != 0x9d || b[24] != 0x01 || b[25] != 0x2a {
			return 0, 0, false
		}
		w = int(binary.LittleEndian.Uint16(b[26:28]) & 0x3fff)
		h = int(binary.LittleEndian.Uint16(b[28:30]) & 0x3fff)
	case "VP8L": // signature 0x2f, then 14 bits width-1, 14 bits height-1
		if b[20] != 0x2f {
			return 0, 0, false
		}
		v := binary.LittleEndian.Uint32(b[21:25])
		w, h = int(v&0x3fff)+1, int(v>>14&0x3fff)+1
	case "VP8X": // flags (4), then 24 bits width-1, 24 bits height-1
		w = int(uint32(b[24])|uint32(b[25])<<8|uint32(b[26])<<16) + 1
		h = int(uint32(b[27])|uint32(b[28])<<8|uint32(b[29])<<16) + 1
	default:
		return 0, 0, false
	}
	return w, h, w > 0 && h > 0
}

package rest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
)

// Conversations: posting with embeds, replies, mentions and files
// (multipart/form-data), reactions, acks, DMs, and the attachment downloads.

var (
	errUnsupportedType = &guildhall.Error{Status: http.StatusUnsupportedMediaType, Code: 0, Message: "415: Unsupported Media Type"}
	errTooManyFiles    = guildhall.FieldError("files", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
)

// conversationRoutes are the routes of this file, added to the route table.
func (h *handler) conversationRoutes() []route {
	rl := h.cfg.RouteLimit
	const msg = "/channels/{channel_id}/messages/{message_id}"
	return []route{
		// {user_id} is "@me" or an id (one pattern: the 405 handlers of two would clash).
		{method: "PUT", path: msg + "/reactions/{emoji}/{user_id}", major: "channel_id", limit: rl, serve: h.addReaction},
		{method: "DELETE", path: msg + "/reactions/{emoji}/{user_id}", major: "channel_id", limit: rl, serve: h.removeReaction},
		{method: "GET", path: msg + "/reactions/{emoji}", major: "channel_id", limit: rl, serve: h.reactionUsers},
		{method: "DELETE", path: msg + "/reactions/{emoji}", major: "channel_id", limit: rl, serve: h.removeEmojiReactions},
		{method: "DELETE", path: msg + "/reactions", major: "channel_id", limit: rl, serve: h.removeAllReactions},
		{method: "POST", path: msg + "/ack", major: "channel_id", limit: rl, serve: h.ack},
		{method: "POST", path: "/users/@me/channels", limit: rl, serve: h.openDM},
		{method: "GET", path: "/users/@me/channels", limit: rl, serve: h.myDMs},
	}
}

// allowedMentionsBody is allowed_mentions on the wire.
type allowedMentionsBody struct {
	Parse       []string              `json:"parse"`
	Users       []guildhall.Snowflake `json:"users"`
	Roles       []guildhall.Snowflake `json:"roles"`
	RepliedUser bool                  `json:"replied_user"`
}

func (b *allowedMentionsBody) domain() *messaging.AllowedMentions {
	if b == nil {
		return nil
	}
	return &messaging.AllowedMentions{Parse: b.Parse, Users: b.Users, Roles: b.Roles, RepliedUser: b.RepliedUser}
}

// attachmentBody is an entry of a post's attachments: the index n of files[n]
// as id, and its description.
type attachmentBody struct {
	ID          json.Number `json:"id"`
	Description string      `json:"description"`
}

// messageBody is what POST /channels/{id}/messages takes, as JSON or as the
// payload_json of a multipart body.
type messageBody struct {
	Content          string                      `json:"content"`
	Nonce            any                         `json:"nonce"`
	TTS              bool                        `json:"tts"`
	Embeds           []guildhall.Embed           `json:"embeds"`
	AllowedMentions  *allowedMentionsBody        `json:"allowed_mentions"`
	MessageReference *guildhall.MessageReference `json:"message_reference"`
	Attachments      []attachmentBody            `json:"attachments"`
	Flags            int                         `json:"flags"`
}

// postMessage answers a JSON body or, with files, multipart/form-data: any
// number of files[n] parts (at most 10 files) and a payload_json part, in any
// order (libraries send the files first). Each file is streamed into the file
// store as it arrives, the whole body bounded by MaxUploadBytes (413, 40005);
// the files of a post that fails are deleted.
func (h *handler) postMessage(r *http.Request, u guildhall.User) (int, any, error) {
	id, err := pathID(r, "channel_id", guildhall.ErrUnknownChannel)
	if err != nil {
		return 0, nil, err
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil && r.Header.Get("Content-Type") != "" {
		return 0, nil, errUnsupportedType
	}
	var b messageBody
	var files map[int]guildhall.Attachment
	switch mt {
	case "multipart/form-data": // the route's body limit is MaxUploadBytes
		files, err = h.readMultipart(r, u, id, params["boundary"], &b)
		if err != nil {
			h.discard(files)
			return 0, nil, err
		}
	case "application/json", "":
		r.Body = http.MaxBytesReader(nil, r.Body, h.cfg.MaxBodyBytes)
		if err := decode(r, &b, false); err != nil {
			return 0, nil, err
		}
	default:
		return 0, nil, errUnsupportedType
	}
	nm := messaging.NewMessage{
		Content: b.Content, Nonce: b.Nonce, TTS: b.TTS, Embeds: b.Embeds, AllowedMentions: b.AllowedMentions.domain(),
		Reference: b.MessageReference, Flags: b.Flags,
	}
	if nm.Attachments, err = attachmentsInOrder(files, b.Attachments); err != nil {
		h.discard(files)
		return 0, nil, err
	}
	m, err := h.svc.PostMessage(r.Context(), u, id, nm)
	if err != nil {
		h.discard(files)
		return 0, nil, err
	}
	return http.StatusOK, m, nil
}

// readMultipart reads a multipart post: files into the file store, payload_json
// into b. It returns the files stored so far even when it fails.
func (h *handler) readMultipart(r *http.Request, u guildhall.User, channelID guildhall.Snowflake, boundary string, b *messageBody) (map[int]guildhall.Attachment, error) {
	if boundary == "" {
		return nil, errUnsupportedType
	}
	files := map[int]guildhall.Attachment{}
	mr := multipart.NewReader(r.Body, boundary)
	payload := false
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return files, bodyError(err)
		}
		name := part.FormName()
		switch {
		case name == "payload_json":
			data, err := io.ReadAll(io.LimitReader(part, h.cfg.MaxBodyBytes+1))
			if err != nil {
				return files, bodyError(err)
			}
			if int64(len(data)) > h.cfg.MaxBodyBytes {
				return files, errTooLarge
			}
			if err := decodeJSON(data, b, false); err != nil {
				return files, err
			}
			payload = true
		case name == "content" && !payload: // a plain form field, as Discord also takes
			data, err := io.ReadAll(io.LimitReader(part, 8<<10))
			if err != nil {
				return files, bodyError(err)
			}
			b.Content = string(data)
		case strings.HasPrefix(name, "files[") && strings.HasSuffix(name, "]") || name == "file":
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(name, "files["), "]"))
			if name == "file" {
				n, err = len(files), nil
			}
			if err != nil || n < 0 || n >= 1000 {
				return files, guildhall.FieldError(name, "BASE_TYPE_INVALID", "Not a file index.")
			}
			if len(files) >= guildhall.MaxAttachments {
				return files, errTooManyFiles
			}
			if _, dup := files[n]; dup {
				return files, guildhall.FieldError(name, "DUPLICATE", "Duplicate file index.")
			}
			a, err := h.svc.UploadAttachment(r.Context(), u, channelID, h.publicURL(r), messaging.Upload{Filename: part.FileName(), Body: part})
			if err != nil {
				return files, bodyError(err)
			}
			files[n] = a
		}
		part.Close()
	}
	return files, nil
}

// attachmentsInOrder lists the uploaded files in index order, with the
// descriptions the payload gives them.
func attachmentsInOrder(files map[int]guildhall.Attachment, meta []attachmentBody) ([]guildhall.Attachment, error) {
	if len(files) == 0 {
		return nil, nil
	}
	for i, m := range meta {
		n, err := strconv.Atoi(m.ID.String())
		a, ok := files[n]
		if err != nil || !ok {
			continue // an attachment kept from before (edits): not one of these files
		}
		if len([]rune(m.Description)) > 1024 {
			return nil, guildhall.FieldError("attachments", "BASE_TYPE_MAX_LENGTH", "attachments."+strconv.Itoa(i)+".description must be 1024 or fewer in length.")
		}
		a.Description = m.Description
		files[n] = a
	}
	out := make([]guildhall.Attachment, 0, len(files))
	for n := range 1000 {
		if a, ok := files[n]; ok {
			out = append(out, a)
		}
	}
	return out, nil
}

// discard deletes the files of a post that failed; a file it misses is an
// orphan, which the writer's messaging.Sweeper deletes later.
func (h *handler) discard(files map[int]guildhall.Attachment) {
	if len(files) == 0 {
		return
	}
	as := make([]guildhall.Attachment, 0, len(files))
	for _, a := range files {
		as = append(as, a)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.svc.RemoveUploads(ctx, as); err != nil {
		h.log.Warn("rest: delete files of a failed post", "files", len(as), "err", err)
	}
}

// bodyError maps a failure reading the request body: over the limit is 413.
func bodyError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errTooLarge
	}
	var ge *guildhall.Error
	if errors.As(err, &ge) {
		return err
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "multipart") {
		return guildhall.ErrInvalidJSON
	}
	return err
}

// publicURL is the api's URL as clients reach it: Config.PublicURL, or the
// request's own scheme and host.
func (h *handler) publicURL(r *http.Request) string {
	if h.cfg.PublicURL != "" {
		return h.cfg.PublicURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// editBody is what PATCH /channels/{id}/messages/{id} takes.
type editBody struct {
	Content         *string              `json:"content"`
	Embeds          *[]guildhall.Embed   `json:"embeds"`
	AllowedMentions *allowedMentionsBody `json:"allowed_mentions"`
}

func (h *handler) editMessage(r *http.Request, u guildhall.User) (int, any, error) {
	ch, id, err := messageIDs(r)
	if err != nil {
		return 0, nil, err
	}
	var b editBody
	if err := decode(r, &b, false); err != nil {
		return 0, nil, err
	}
	m, err := h.svc.EditMessageWith(r.Context(), u, ch, id, messaging.MessageEdit{
		Content: b.Content, Embeds: b.Embeds, AllowedMentions: b.AllowedMentions.domain(),
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, m, nil
}

// ---- reactions

// reactionPath reads the channel, message and emoji of a reaction route.
func reactionPath(r *http.Request) (ch, msg guildhall.Snowflake, emoji string, err error) {
	if ch, msg, err = messageIDs(r); err != nil {
		return 0, 0, "", err
	}
	return ch, msg, r.PathValue("emoji"), nil
}

func (h *handler) addReaction(r *http.Request, u guildhall.User) (int, any, error) {
	ch, msg, emoji, err := reactionPath(r)
	if err != nil {
		return 0, nil, err
	}
	if r.PathValue("user_id") != "@me" { // one reacts only as oneself
		return 0, nil, guildhall.ErrNotFound
	}
	return http.StatusNoContent, nil, h.svc.AddReaction(r.Context(), u, ch, msg, emoji)
}

// removeReaction removes one's own reaction (@me) or, with MANAGE_MESSAGES,
// another user's.
func (h *handler) removeReaction(r *http.Request, u guildhall.User) (int, any, error) {
	ch, msg, emoji, err := reactionPath(r)
	if err != nil {
		return 0, nil, err
	}
	user := u.ID
	if r.PathValue("user_id") != "@me" {
		if user, err = pathID(r, "user_id", guildhall.ErrUnknownUser); err != nil {
			return 0, nil, err
		}
	}
	return http.StatusNoContent, nil, h.svc.RemoveReaction(r.Context(), u, ch, msg, emoji, user)
}

func (h *handler) removeEmojiReactions(r *http.Request, u guildhall.User) (int, any, error) {
	ch, msg, emoji, err := reactionPath(r)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, h.svc.RemoveReactions(r.Context(), u, ch, msg, emoji)
}

func (h *handler) removeAllReactions(r *http.Request, u guildhall.User) (int, any, error) {
	ch, msg, err := messageIDs(r)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, h.svc.RemoveReactions(r.Context(), u, ch, msg, "")
}

func (h *handler) reactionUsers(r *http.Request, u guildhall.User) (int, any, error) {
	ch, msg, emoji, err := reactionPath(r)
	if err != nil {
		return 0, nil, err
	}
	limit, err := queryInt(r, "limit", 25, 1, 100)
	if err != nil {
		return 0, nil, err
	}
	after, err := queryID(r, "after")
	if err != nil {
		return 0, nil, err
	}
	typ, err := queryInt(r, "type", 0, 0, 1)
	if err != nil {
		return 0, nil, err
	}
	users, err := h.svc.ReactionUsers(r.Context(), u, ch, msg, emoji, after, limit)
	if err != nil {
		return 0, nil, err
	}
	if typ == 1 { // super reactions: Guildhall has none
		users = users[:0]
	}
	return http.StatusOK, users, nil
}

// ---- read states

func (h *handler) ack(r *http.Request, u guildhall.User) (int, any, error) {
	ch, msg, err := messageIDs(r)
	if err != nil {
		return 0, nil, err
	}
	// Discord's clients send {token, manual, mention_count, last_viewed}; all
	// optional, read for the size limit and ignored.
	if err := decode(r, &struct{}{}, true); err != nil {
		return 0, nil, err
	}
	if _, err := h.svc.Ack(r.Context(), u, ch, msg); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"token": nil}, nil
}

// ---- direct messages

func (h *handler) openDM(r *http.Request, u guildhall.User) (int, any, error) {
	var b struct {
		RecipientID guildhall.Snowflake   `json:"recipient_id"`
		Recipients  []guildhall.Snowflake `json:"recipients"`
	}
	if err := decode(r, &b, false); err != nil {
		return 0, nil, err
	}
	ids := b.Recipients
	if b.RecipientID != 0 {
		ids = []guildhall.Snowflake{b.RecipientID}
	}
	ch, err := h.svc.OpenDM(r.Context(), u, ids)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, ch, nil
}

func (h *handler) myDMs(r *http.Request, u guildhall.User) (int, any, error) {
	chs, err := h.svc.PrivateChannels(r.Context(), u)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, chs, nil
}

// channelOrDM answers GET /channels/{id} for a DM the guild lookup did not
// find.
func (h *handler) channelOrDM(r *http.Request, u guildhall.User, id guildhall.Snowflake, err error) (int, any, error) {
	if !errors.Is(err, guildhall.ErrUnknownChannel) {
		return 0, nil, err
	}
	dm, err := h.svc.PrivateChannel(r.Context(), u, id)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, dm, nil
}

// ---- attachment downloads

// attachment serves GET and HEAD /attachments/{channel_id}/{attachment_id}/{filename}?hm=…:
// the file with its Content-Type and Content-Length, one byte range (206) when
// asked, ETag (the file's SHA-256) and If-None-Match (304), and caching headers.
// Types a browser would render as a page are served as downloads. No token: the
// URL is the capability (see messaging.UploadAttachment).
func (h *handler) attachment(rw http.ResponseWriter, r *http.Request) {
	w := &statusWriter{ResponseWriter: rw}
	defer h.observe("/attachments", r.Method, w, time.Now())
	ch, err1 := guildhall.ParseSnowflake(r.PathValue("channel_id"))
	id, err2 := guildhall.ParseSnowflake(r.PathValue("attachment_id"))
	if err1 != nil || err2 != nil {
		writeJSON(w, http.StatusNotFound, guildhall.ErrNotFound)
		return
	}
	if !h.allow(w, "ip:"+clientIP(r), h.cfg.DownloadLimit, bucketID("attachments"), h.now(), false) {
		return
	}
	f, err := h.svc.OpenAttachment(r.Context(), ch, id, r.PathValue("filename"), r.URL.Query().Get("hm"))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	hd := w.Header()
	etag := `"` + f.Info.Digest + `"`
	hd.Set("ETag", etag)
	hd.Set("Cache-Control", "private, max-age=86400, immutable")
	hd.Set("Accept-Ranges", "bytes")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Content-Type", f.ContentType)
	if !inline(f.ContentType) {
		hd.Set("Content-Disposition", `attachment; filename="`+f.Filename+`"`)
	}
	if match := r.Header.Get("If-None-Match"); match != "" && (match == etag || match == "*") {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	offset, length, status := int64(0), f.Info.Size, http.StatusOK
	if rh := r.Header.Get("Range"); rh != "" && (r.Header.Get("If-Range") == "" || r.Header.Get("If-Range") == etag) {
		var ok bool
		offset, length, ok = parseRange(rh, f.Info.Size)
		if !ok {
			hd.Set("Content-Range", "bytes */"+strconv.FormatInt(f.Info.Size, 10))
			writeJSON(w, http.StatusRequestedRangeNotSatisfiable, &guildhall.Error{Status: 416, Message: "416: Range Not Satisfiable"})
			return
		}
		status = http.StatusPartialContent
		hd.Set("Content-Range", "bytes "+strconv.FormatInt(offset, 10)+"-"+strconv.FormatInt(offset+length-1, 10)+"/"+strconv.FormatInt(f.Info.Size, 10))
	}
	hd.Set("Content-Length", strconv.FormatInt(length, 10))
	w.WriteHeader(status)
	if r.Method == http.MethodHead || length == 0 {
		return
	}
	if err := h.svc.CopyAttachment(r.Context(), w, f, offset, length); err != nil && r.Context().Err() == nil {
		// The status is sent: all that is left is to cut the response short.
		h.log.Warn("rest: attachment download cut", "attachment", id, "err", err)
		panic(http.ErrAbortHandler)
	}
}

// inline reports whether a browser may show a type in place: media, and text
// that is not a page (the api's origin must never serve user HTML or SVG).
func inline(ct string) bool {
	t, _, _ := mime.ParseMediaType(ct)
	switch {
	case t == "image/svg+xml":
		return false
	case strings.HasPrefix(t, "image/"), strings.HasPrefix(t, "video/"), strings.HasPrefix(t, "audio/"):
		return true
	case t == "text/plain", t == "application/json":
		return true
	}
	return false
}

// parseRange reads a byte range of a Range header ("bytes=a-b", "bytes=a-",
// "bytes=-n") within size; ok is false when it does not parse or lies outside.
// Of several ranges the first is served (no multipart/byteranges).
func parseRange(h string, size int64) (offset, length int64, ok bool) {
	spec, found := strings.CutPrefix(h, "bytes=")
	if !found || size == 0 {
		return 0, 0, false
	}
	spec, _, _ = strings.Cut(spec, ",")
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false
	}
	if first == "" { // the last n bytes
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n <= 0 {
			return 0, 0, false
		}
		n = min(n, size)
		return size - n, n, true
	}
	a, err := strconv.ParseInt(first, 10, 64)
	if err != nil || a < 0 || a >= size {
		return 0, 0, false
	}
	b := size - 1
	if last != "" {
		if b, err = strconv.ParseInt(last, 10, 64); err != nil || b < a {
			return 0, 0, false
		}
		b = min(b, size-1)
	}
	return a, b - a + 1, true
}

package messaging

import (
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	guildhall "github.com/guildhall/guildhall"
)

// pathError is Invalid Form Body (50035) with one error nested at path, in
// Discord's shape: {"errors": {"embeds": {"0": {"title": {"_errors": [...]}}}}}.
func pathError(code, message string, path ...string) *guildhall.Error {
	var v any = map[string]any{"_errors": []map[string]string{{"code": code, "message": message}}}
	for i := len(path) - 1; i >= 1; i-- {
		v = map[string]any{path[i]: v}
	}
	return &guildhall.Error{Status: 400, Code: 50035, Message: "Invalid Form Body", Errors: map[string]any{path[0]: v}}
}

func tooLong(limit int, path ...string) *guildhall.Error {
	return pathError("BASE_TYPE_MAX_LENGTH", "Must be "+strconv.Itoa(limit)+" or fewer in length.", path...)
}

// validEmbeds checks embeds against Discord's limits and normalizes them as
// Discord does: text trimmed of leading and trailing white space, type "rich",
// and what a sender cannot set (provider, video, media sizes and proxy URLs)
// dropped. An URL is http(s), or for media attachment://<filename> of a file of
// the message, which becomes that attachment's URL.
func validEmbeds(embeds []guildhall.Embed, files []guildhall.Attachment) ([]guildhall.Embed, error) {
	if len(embeds) > guildhall.MaxEmbeds {
		return nil, tooLong(guildhall.MaxEmbeds, "embeds")
	}
	out := make([]guildhall.Embed, len(embeds))
	total := 0
	for i, e := range embeds {
		at := strconv.Itoa(i)
		text := func(s *string, limit int, required bool, path ...string) error {
			*s = strings.TrimSpace(*s)
			n := utf8.RuneCountInString(*s)
			if required && n == 0 {
				return pathError("BASE_TYPE_REQUIRED", "This field is required", append([]string{"embeds", at}, path...)...)
			}
			if n > limit {
				return tooLong(limit, append([]string{"embeds", at}, path...)...)
			}
			total += n
			return nil
		}
		if err := text(&e.Title, guildhall.MaxEmbedTitle, false, "title"); err != nil {
			return nil, err
		}
		if err := text(&e.Description, guildhall.MaxEmbedDescription, false, "description"); err != nil {
			return nil, err
		}
		if len(e.Fields) > guildhall.MaxEmbedFields {
			return nil, tooLong(guildhall.MaxEmbedFields, "embeds", at, "fields")
		}
		for j := range e.Fields {
			f := &e.Fields[j]
			if err := text(&f.Name, guildhall.MaxEmbedFieldName, true, "fields", strconv.Itoa(j), "name"); err != nil {
				return nil, err
			}
			if err := text(&f.Value, guildhall.MaxEmbedFieldValue, true, "fields", strconv.Itoa(j), "value"); err != nil {
				return nil, err
			}
		}
		if e.Footer != nil {
			if err := text(&e.Footer.Text, guildhall.MaxEmbedFooter, true, "footer", "text"); err != nil {
				return nil, err
			}
			e.Footer.ProxyIconURL = ""
			if err := mediaURL(&e.Footer.IconURL, files, "embeds", at, "footer", "icon_url"); err != nil {
				return nil, err
			}
		}
		if e.Author != nil {
			if err := text(&e.Author.Name, guildhall.MaxEmbedAuthorName, true, "author", "name"); err != nil {
				return nil, err
			}
			e.Author.ProxyIconURL = ""
			if err := linkURL(e.Author.URL, "embeds", at, "author", "url"); err != nil {
				return nil, err
			}
			if err := mediaURL(&e.Author.IconURL, files, "embeds", at, "author", "icon_url"); err != nil {
				return nil, err
			}
		}
		if e.Color != nil && (*e.Color < 0 || *e.Color > 0xFFFFFF) {
			return nil, pathError("NUMBER_TYPE_MAX", "Value must be between 0 and 16777215.", "embeds", at, "color")
		}
		if err := linkURL(e.URL, "embeds", at, "url"); err != nil {
			return nil, err
		}
		for _, m := range []struct {
			media **guildhall.EmbedMedia
			name  string
		}{{&e.Image, "image"}, {&e.Thumbnail, "thumbnail"}} {
			if *m.media == nil {
				continue
			}
			media := guildhall.EmbedMedia{URL: (*m.media).URL} // sizes and proxy are Discord's to fill
			if media.URL == "" {
				return nil, pathError("BASE_TYPE_REQUIRED", "This field is required", "embeds", at, m.name, "url")
			}
			if err := mediaURL(&media.URL, files, "embeds", at, m.name, "url"); err != nil {
				return nil, err
			}
			*m.media = &media
		}
		e.Type, e.Provider, e.Video = "rich", nil, nil
		out[i] = e
	}
	if total > guildhall.MaxEmbedTotal {
		return nil, pathError("MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000", "embeds")
	}
	return out, nil
}

// linkURL checks an optional http(s) URL.
func linkURL(s string, path ...string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(s) > 2048 {
		return pathError("URL_TYPE_INVALID_URL", "Not a well formed URL.", path...)
	}
	return nil
}

// mediaURL checks an optional media URL: http(s), or attachment://<filename>
// naming a file of the message, replaced with the attachment's URL.
func mediaURL(s *string, files []guildhall.Attachment, path ...string) error {
	if name, ok := strings.CutPrefix(*s, "attachment://"); ok {
		for _, f := range files {
			if f.Filename == name {
				*s = f.URL
				return nil
			}
		}
		return pathError("URL_TYPE_INVALID_URL", "Not a well formed URL.", path...)
	}
	return linkURL(*s, path...)
}

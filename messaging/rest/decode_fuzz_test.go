package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	guildhall "github.com/guildhall/guildhall"
)

// channelBody is the richest body a route decodes (snowflakes, permission bit
// sets, nested objects, pointers).
type channelBody struct {
	Name                 string                          `json:"name"`
	Type                 *int                            `json:"type"`
	Topic                *string                         `json:"topic"`
	Position             *int                            `json:"position"`
	ParentID             *guildhall.Snowflake            `json:"parent_id"`
	PermissionOverwrites []guildhall.PermissionOverwrite `json:"permission_overwrites"`
	NSFW                 bool                            `json:"nsfw"`
	RateLimitPerUser     int                             `json:"rate_limit_per_user"`
}

// FuzzDecode: whatever the body, decode answers nil or one of Discord's client
// errors (400 Invalid JSON / Invalid Form Body, 413), never panics, and what it
// accepts survives a round trip (encode, decode again: the same value).
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"name":"general","type":0,"parent_id":"123","permission_overwrites":[{"id":"1","type":0,"allow":"1024","deny":"0"}]}`,
		`{"name":"x","parent_id":"0123"}`, `{"name":"x","parent_id":"+1"}`, `{"permission_overwrites":[{"allow":"-1"}]}`,
		`{"type":"0"}`, `[]`, `null`, `{}`, `{"name":"a"} {"name":"b"}`, `{"name":"\ud800"}`, ``, `{`, `{"position":1e400}`,
		`{"parent_id":18446744073709551616}`, `{"permission_overwrites":[{"id":"18446744073709551615","type":1,"allow":"140737488355327"}]}`,
	} {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, body []byte, optional bool) {
		if len(body) > 1<<16 {
			return
		}
		var v channelBody
		err := decodeBody(t, body, &v, optional)
		if err != nil {
			var ge *guildhall.Error
			if !errors.As(err, &ge) || (ge.Status != 400 && ge.Status != 413) || ge.Message == "" {
				t.Fatalf("decode(%q) = %v; want a 400 or 413 guildhall.Error", body, err)
			}
			return
		}
		again, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("accepted %q but cannot encode it: %v", body, err)
		}
		var w channelBody
		if err := decodeBody(t, again, &w, false); err != nil || !reflect.DeepEqual(v, w) {
			t.Fatalf("round trip of %q: %s → %+v, %v; want %+v", body, again, w, err, v)
		}
	})
}

func decodeBody(t *testing.T, body []byte, v any, optional bool) error {
	r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, 64<<10)
	return decode(r, v, optional)
}

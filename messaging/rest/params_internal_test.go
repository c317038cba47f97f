package rest

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	guildhall "github.com/guildhall/guildhall"
)

// TestParamsFirstErrorWins: a request with several bad parameters is answered
// with the first one the handler reads, and nothing after it is read (the body
// stays unread), as when each handler checked each parameter itself.
func TestParamsFirstErrorWins(t *testing.T) {
	longReason := strings.Repeat("x", maxReasonHeader+1)
	for _, c := range []struct {
		name, guild, role, reason, query, body string
		want                                   int    // Discord's error code; 0 for none
		field                                  string // the field a 50035 names
	}{
		{"all good", "1", "2", "why", "limit=5", `{}`, 0, ""},
		{"bad guild before bad role, reason, query and body", "x", "y", longReason, "limit=0", `{`, 10004, ""},
		{"bad role before bad reason", "1", "0", longReason, "limit=0", `{`, 10011, ""},
		{"bad reason before bad query", "1", "2", longReason, "limit=0", `{`, 50035, "reason"},
		{"bad query before bad body", "1", "2", "why", "limit=0", `{`, 50035, "limit"},
		{"bad body last", "1", "2", "why", "limit=5", `{`, 50109, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPatch, "/x?"+c.query, strings.NewReader(c.body))
			r.SetPathValue("guild_id", c.guild)
			r.SetPathValue("role_id", c.role)
			r.Header.Set("X-Audit-Log-Reason", c.reason)
			p := newParams(r)
			g, role, reason, limit := p.guild(), p.role(), p.reason(), p.queryInt("limit", 1, 1, 10)
			var b struct{}
			p.body(&b, false)
			if c.want == 0 {
				if p.err != nil || g != 1 || role != 2 || reason != "why" || limit != 5 {
					t.Fatalf("params = %d, %d, %q, %d, %v; want 1, 2, \"why\", 5, nil", g, role, reason, limit, p.err)
				}
				return
			}
			var e *guildhall.Error
			if !errors.As(p.err, &e) || e.Code != c.want {
				t.Fatalf("params error = %v; want Discord code %d", p.err, c.want)
			}
			if _, named := e.Errors[c.field]; c.field != "" && !named {
				t.Errorf("params error names %v; want %q", e.Errors, c.field)
			}
			if c.want != 50109 && r.Body != nil {
				if rest, _ := r.Body.Read(make([]byte, 1)); rest != 1 {
					t.Errorf("body was read after an earlier parameter failed")
				}
			}
		})
	}
}

package rest_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestParameterErrorOrder: a request with several bad parameters is answered
// with the error of the first one its route reads, over real routes and the
// real router, and changes nothing. The order is each route's own and is what
// clients have seen so far: path ids left to right, then the audit-log reason,
// then the query, then the body; except that creating a channel or an invite
// reads the body before the reason.
func TestParameterErrorOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	f := e.fixture()
	var role struct{ ID string }
	e.api.Must(t, http.StatusOK, "POST", "/guilds/"+f.guild+"/roles", f.owner.token, map[string]any{"name": "order"}, &role)
	msg := e.post(f.owner.token, f.channel, "pinned?")
	before := e.snapshot(f)

	g, c := "/guilds/"+f.guild, "/channels/"+f.channel
	badReason := "%zz" + strings.Repeat("x", 600) // not URL-encoded: the reason's own error
	badBody := []byte(`{`)
	for _, tc := range []struct {
		name         string
		method, path string
		reason       string
		body         any
		status, code int
		field        string // the field a 50035 names
	}{
		{"role id before reason and body", "PATCH", g + "/roles/x", badReason, badBody, 404, 10011, ""},
		{"reason before body", "PATCH", g + "/roles/" + role.ID, badReason, badBody, 400, 50035, "reason"},
		{"body last", "PATCH", g + "/roles/" + role.ID, "why", badBody, 400, 50109, ""},
		{"member before role", "PUT", g + "/members/x/roles/y", badReason, badBody, 404, 10007, ""},
		{"role of a member before reason", "PUT", g + "/members/" + f.member.id + "/roles/y", badReason, badBody, 404, 10011, ""},
		{"ban's user is unknown ban", "DELETE", g + "/bans/x", badReason, nil, 404, 10026, ""},
		{"new ban's user is unknown user", "PUT", g + "/bans/x", badReason, badBody, 404, 10013, ""},
		{"kicked user is unknown member", "DELETE", g + "/members/x", badReason, nil, 404, 10007, ""},
		{"overwrite id before reason", "PUT", c + "/permissions/x", badReason, badBody, 404, 0, ""},
		{"pinned message before reason", "PUT", c + "/pins/x", badReason, nil, 404, 10008, ""},
		{"unpinned message, new path", "DELETE", c + "/messages/pins/x", badReason, nil, 404, 10008, ""},
		{"pin reason", "PUT", c + "/messages/pins/" + msg.ID, badReason, nil, 400, 50035, "reason"},
		{"deleted message before reason", "DELETE", c + "/messages/x", badReason, nil, 404, 10008, ""},
		{"channel's body before its reason", "POST", g + "/channels", badReason, badBody, 400, 50109, ""},
		{"channel's reason after a good body", "POST", g + "/channels", badReason, map[string]string{"name": "x"}, 400, 50035, "reason"},
		{"invite's body before its reason", "POST", c + "/invites", badReason, []byte(`[1]`), 400, 50109, ""},
		{"guild's reason before body", "PATCH", g, badReason, badBody, 400, 50035, "reason"},
		{"channel edit's reason before body", "PATCH", c, badReason, badBody, 400, 50035, "reason"},
		{"bulk delete's body", "POST", c + "/messages/bulk-delete", "why", badBody, 400, 50109, ""},
		{"history: limit before before", "GET", c + "/messages?before=x&limit=0", "", nil, 400, 50035, "limit"},
		{"history: before before after", "GET", c + "/messages?after=y&before=x", "", nil, 400, 50035, "before"},
		{"history: after before around", "GET", c + "/messages?around=z&after=y", "", nil, 400, 50035, "after"},
		{"members: limit before after", "GET", g + "/members?after=x&limit=0", "", nil, 400, 50035, "limit"},
		{"bans: limit before before", "GET", g + "/bans?before=x&limit=0", "", nil, 400, 50035, "limit"},
		{"bans: before before after", "GET", g + "/bans?after=y&before=x", "", nil, 400, 50035, "before"},
		{"audit log: after before user_id", "GET", g + "/audit-logs?user_id=q&after=y", "", nil, 400, 50035, "after"},
		{"audit log: user_id before action_type", "GET", g + "/audit-logs?action_type=-1&user_id=q", "", nil, 400, 50035, "user_id"},
		{"my guilds: before before after and limit", "GET", "/users/@me/guilds?limit=0&after=y&before=x", "", nil, 400, 50035, "before"},
		{"my guilds: after before limit", "GET", "/users/@me/guilds?limit=0&after=y", "", nil, 400, 50035, "after"},
		{"new pins: limit", "GET", c + "/messages/pins?limit=51", "", nil, 400, 50035, "limit"},
		{"search: limit", "GET", g + "/members/search?query=o&limit=0", "", nil, 400, 50035, "limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.reason != "" {
				h.Set("X-Audit-Log-Reason", tc.reason)
			}
			st, raw := e.api.DoHeaders(t, tc.method, tc.path, f.owner.token, tc.body, h)
			d := wantError(t, st, raw, tc.status, tc.code)
			if _, named := d.Errors[tc.field]; tc.field != "" && !named {
				t.Errorf("%s %s: errors = %v; want field %q", tc.method, tc.path, d.Errors, tc.field)
			}
			if after := e.snapshot(f); after != before {
				t.Fatalf("state changed:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}
}

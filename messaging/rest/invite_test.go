package rest_test

import (
	"encoding/json"
	"net/http"
	"testing"
)

// GET /invites/{code}: the invite as Discord shows it to whoever has the code,
// with the guild's counts on request, without counting a use.
func TestGetInvite(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	f := e.fixture()
	var inv inviteJSON
	e.api.Must(t, http.StatusOK, "POST", "/channels/"+f.channel+"/invites", f.owner.token, map[string]any{"max_uses": 1}, &inv)

	var got struct {
		inviteJSON
		Guild struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"guild"`
		Channel struct {
			ID   string `json:"id"`
			Name string `json:"name"`
			Type int    `json:"type"`
		} `json:"channel"`
		ExpiresAt   *string `json:"expires_at"`
		MemberCount *int    `json:"approximate_member_count"`
	}
	// An outsider may look, with counts: the owner and the member.
	e.api.Must(t, http.StatusOK, "GET", "/invites/"+inv.Code+"?with_counts=true", f.outsider.token, nil, &got)
	if got.Code != inv.Code || got.Guild.ID != f.guild || got.Guild.Name != "Fixture" || got.Channel.ID != f.channel ||
		got.Channel.Name == "" || got.Inviter.ID != f.owner.id || got.ExpiresAt == nil || got.MemberCount == nil || *got.MemberCount != 2 {
		t.Fatalf("GET /invites/%s?with_counts=true = %+v", inv.Code, got)
	}
	// Without with_counts there are none; looking is not a use.
	raw := e.api.Must(t, http.StatusOK, "GET", "/invites/"+inv.Code, f.outsider.token, nil, nil)
	if jsonHas(raw, "approximate_member_count") || jsonHas(raw, "new_member") {
		t.Errorf("GET /invites/%s = %s; want no counts and no new_member", inv.Code, raw)
	}
	e.api.Must(t, http.StatusOK, "POST", "/invites/"+inv.Code, f.outsider.token, nil, nil)

	// Used up, unknown, or without a token: refused, nothing changes.
	for _, c := range []struct {
		name, code, token string
		status, errCode   int
	}{
		{"used up", inv.Code, f.member.token, 404, 10006},
		{"unknown", "nope", f.member.token, 404, 10006},
		{"too long", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", f.member.token, 404, 10006},
		{"no token", inv.Code, "", 401, 0},
	} {
		st, raw := e.api.Do(t, "GET", "/invites/"+c.code, c.token, nil, nil)
		if st != c.status {
			t.Errorf("%s: GET /invites/%s = %d %s; want %d", c.name, c.code, st, raw, c.status)
			continue
		}
		wantError(t, st, raw, c.status, c.errCode)
	}
}

func jsonHas(raw []byte, key string) bool {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return false
	}
	_, ok := m[key]
	return ok
}

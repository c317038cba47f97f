package rest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
)

// A DM opens only between users who share a guild (50007 otherwise); the same
// rule must hold for what goes through it after, as on Discord. Otherwise a
// member who opened a DM keeps messaging (typing at, reacting to) someone who has
// since banned them from the only guild they shared: the ban, the one tool a
// victim's moderators have, would not stop the harassment.
func TestDMNeedsASharedGuildToSend(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	f := e.fixture()
	var dm struct {
		ID string `json:"id"`
	}
	e.api.Must(t, http.StatusOK, "POST", "/users/@me/channels", f.member.token, map[string]string{"recipient_id": f.owner.id}, &dm)
	first := e.post(f.member.token, dm.ID, "hi")

	e.api.Must(t, http.StatusNoContent, "PUT", "/guilds/"+f.guild+"/bans/"+f.member.id, f.owner.token, map[string]any{}, nil)
	must(t, e.barrier.Wait(context.Background(), sf(t, f.guild)))
	before := e.streamMsgs()
	for _, c := range []struct {
		who, method, path string
		body              any
	}{
		{f.member.token, "POST", "/channels/" + dm.ID + "/messages", map[string]string{"content": "you cannot get rid of me"}},
		{f.member.token, "POST", "/channels/" + dm.ID + "/typing", nil},
		{f.owner.token, "POST", "/channels/" + dm.ID + "/messages", map[string]string{"content": "either way"}},
		{f.member.token, "PUT", reactionPath(dm.ID, first.ID, "🔥") + "/@me", nil},
	} {
		st, raw := e.api.Do(t, c.method, c.path, c.who, c.body, nil)
		wantError(t, st, raw, http.StatusForbidden, 50007)
	}
	if after := e.streamMsgs(); after != before {
		t.Errorf("refused DM sends published %d events", after-before)
	}
	// What was said stays readable to both.
	for _, tok := range []string{f.owner.token, f.member.token} {
		if h := e.history(tok, dm.ID, ""); len(h) != 1 || h[0].ID != first.ID {
			b, _ := json.Marshal(h)
			t.Errorf("DM history after the ban = %s; want the first message", b)
		}
	}

	// Sharing a guild again (unbanned, invited back), they may.
	e.api.Must(t, http.StatusNoContent, "DELETE", "/guilds/"+f.guild+"/bans/"+f.member.id, f.owner.token, nil, nil)
	var inv inviteJSON
	e.api.Must(t, http.StatusOK, "POST", "/channels/"+f.channel+"/invites", f.owner.token, map[string]any{}, &inv)
	e.api.Must(t, http.StatusOK, "POST", "/invites/"+inv.Code, f.member.token, nil, nil)
	e.post(f.member.token, dm.ID, "sorry")
}

package rest_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// A member in timeout keeps viewing channels and reading history, and does
// nothing else there: not even join a reaction others started (ADD_REACTIONS
// gates only a new emoji, and a timeout removes it, but the existing emoji's
// path asked for nothing more than READ_MESSAGE_HISTORY). On Discord a timed
// out member cannot react at all; here one could add and take back a
// reaction in a loop, each a MESSAGE_REACTION_ADD to every session of the
// channel, while a moderator had silenced them.
func TestTimedOutMemberCannotReact(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	f := e.fixture()
	m := e.post(f.owner.token, f.channel, "react to me")
	fire := url.PathEscape("🔥")
	path := "/channels/" + f.channel + "/messages/" + m.ID + "/reactions/" + fire + "/@me"
	e.api.Must(t, http.StatusNoContent, "PUT", path, f.owner.token, nil, nil)
	until := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	e.api.Must(t, http.StatusOK, "PATCH", "/guilds/"+f.guild+"/members/"+f.member.id, f.owner.token,
		map[string]any{"communication_disabled_until": until}, nil)

	must(t, e.barrier.Wait(context.Background(), sf(t, f.guild)))
	before := e.streamMsgs()
	st, raw := e.api.Do(t, "PUT", path, f.member.token, nil, nil)
	wantError(t, st, raw, http.StatusForbidden, 50013)
	// A new emoji too (that one was refused already).
	st, raw = e.api.Do(t, "PUT", "/channels/"+f.channel+"/messages/"+m.ID+"/reactions/"+url.PathEscape("👍")+"/@me", f.member.token, nil, nil)
	wantError(t, st, raw, http.StatusForbidden, 50013)
	if after := e.streamMsgs(); after != before {
		t.Errorf("refused reactions published %d events", after-before)
	}
	got := e.getMessage(f.member.token, f.channel, m.ID)
	if len(got.Reactions) != 1 || got.Reactions[0].Count != 1 || got.Reactions[0].Me {
		t.Errorf("reactions after the refusals = %+v; want the owner's 🔥 alone", got.Reactions)
	}

	// Once the timeout is lifted, the member reacts again.
	e.api.Must(t, http.StatusOK, "PATCH", "/guilds/"+f.guild+"/members/"+f.member.id, f.owner.token,
		map[string]any{"communication_disabled_until": nil}, nil)
	e.api.Must(t, http.StatusNoContent, "PUT", path, f.member.token, nil, nil)
}

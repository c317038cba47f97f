package rest_test

import (
	"net/http"
	"testing"
)

// TestPinsAndReactionsShareAPathShape: DELETE messages/pins/{id} (unpin) and
// DELETE messages/{id}/reactions (remove all reactions) are both served
// although Go's ServeMux cannot rank their patterns; a path of that shape
// that is neither answers as an unknown route.
func TestPinsAndReactionsShareAPathShape(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	f := e.fixture()
	m := e.post(f.owner.token, f.channel, "pinned and reacted")
	msgs := "/channels/" + f.channel + "/messages/"
	e.api.Must(t, http.StatusNoContent, "PUT", reactionPath(f.channel, m.ID, "🔥")+"/@me", f.member.token, nil, nil)
	e.api.Must(t, http.StatusNoContent, "PUT", msgs+"pins/"+m.ID, f.owner.token, nil, nil)
	if got := e.getMessage(f.owner.token, f.channel, m.ID); len(got.Reactions) != 1 {
		t.Fatalf("reactions before = %+v; want one", got.Reactions)
	}

	e.api.Must(t, http.StatusNoContent, "DELETE", msgs+"pins/"+m.ID, f.owner.token, nil, nil)
	var pins struct {
		Items []struct{} `json:"items"`
	}
	e.api.Must(t, http.StatusOK, "GET", msgs+"pins", f.owner.token, nil, &pins)
	if len(pins.Items) != 0 {
		t.Errorf("pins after DELETE messages/pins/{id} = %d; want 0", len(pins.Items))
	}
	if got := e.getMessage(f.owner.token, f.channel, m.ID); len(got.Reactions) != 1 {
		t.Errorf("unpinning removed the reactions: %+v", got.Reactions)
	}

	e.api.Must(t, http.StatusNoContent, "DELETE", msgs+m.ID+"/reactions", f.owner.token, nil, nil)
	if got := e.getMessage(f.owner.token, f.channel, m.ID); len(got.Reactions) != 0 {
		t.Errorf("reactions after DELETE messages/{id}/reactions = %+v; want none", got.Reactions)
	}
	// Only the member may not: MANAGE_MESSAGES for either.
	st, raw := e.api.Do(t, "DELETE", msgs+"pins/"+m.ID, f.member.token, nil, nil)
	wantError(t, st, raw, 403, 50013)

	// Neither route: unknown, and a known shape with another method: 405.
	st, raw = e.api.Do(t, "DELETE", msgs+"pinz/"+m.ID, f.owner.token, nil, nil)
	wantError(t, st, raw, 404, 0)
	st, raw = e.api.Do(t, "GET", msgs+"pinz/"+m.ID, f.owner.token, nil, nil)
	wantError(t, st, raw, 404, 0)
	st, raw = e.api.Do(t, "GET", msgs+"pins/"+m.ID, f.owner.token, nil, nil)
	wantError(t, st, raw, 405, 0)
}

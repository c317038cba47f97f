package rest_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"testing"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
)

// TestGroupDMFlood is the attack on a DM list at small scale: someone who
// shares a guild with a victim adds them to group after group. The bound on
// group DMs per creator (lowered to 3 here) answers 429 with Discord's
// rate-limit body; the victim's list shows the newest DMs first, so a real new
// DM is at the top; and the victim leaves the groups (DELETE /channels/{id}),
// after which they can neither read nor post in them and the others are told.
func TestGroupDMFlood(t *testing.T) {
	t.Parallel()
	const perHour = 3
	e := newEnv(t, envOptions{groupDMs: perHour})
	f := e.fixture()
	attacker, victim := f.owner, f.member
	accomplice := e.register("accomplice")
	friend := e.register("friend")
	var inv inviteJSON
	e.api.Must(t, http.StatusOK, "POST", "/channels/"+f.channel+"/invites", f.owner.token, map[string]any{}, &inv)
	for _, u := range []user{accomplice, friend} {
		e.api.Must(t, http.StatusOK, "POST", "/invites/"+inv.Code, u.token, nil, nil)
	}

	var groups []string
	for range perHour {
		var g dmJSON
		e.api.Must(t, http.StatusOK, "POST", "/users/@me/channels", attacker.token, map[string]any{"recipients": []string{victim.id, accomplice.id}}, &g)
		groups = append(groups, g.ID)
	}
	resp := e.raw(t, "POST", "/users/@me/channels", attacker.token, `{"recipients":["`+victim.id+`","`+accomplice.id+`"]}`)
	status, h := resp.StatusCode, resp.Header
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var limited struct {
		Message    string   `json:"message"`
		RetryAfter *float64 `json:"retry_after"`
		Global     *bool    `json:"global"`
	}
	if err := json.Unmarshal(raw, &limited); status != http.StatusTooManyRequests || err != nil || limited.RetryAfter == nil ||
		*limited.RetryAfter <= 0 || *limited.RetryAfter > 3600 || limited.Global == nil || *limited.Global || limited.Message != guildhall.ErrRateLimited.Message {
		t.Fatalf("group DM %d in an hour = %d %s; want 429 with retry_after in (0, 3600], global false", perHour+1, status, raw)
	}
	if ra, err := strconv.Atoi(h.Get("Retry-After")); err != nil || ra <= 0 || ra > 3600 {
		t.Errorf("Retry-After = %q; want whole seconds in (0, 3600]", h.Get("Retry-After"))
	}
	// The bound is on groups: a DM between two is not counted, and someone
	// else's groups are their own.
	var attackerDM dmJSON
	e.api.Must(t, http.StatusOK, "POST", "/users/@me/channels", attacker.token, map[string]string{"recipient_id": victim.id}, &attackerDM)
	var friends dmJSON
	e.api.Must(t, http.StatusOK, "POST", "/users/@me/channels", friend.token, map[string]any{"recipients": []string{victim.id, accomplice.id}}, &friends)
	var real dmJSON
	e.api.Must(t, http.StatusOK, "POST", "/users/@me/channels", friend.token, map[string]string{"recipient_id": victim.id}, &real)

	list := func(u user) []string {
		t.Helper()
		var chs []dmJSON
		e.api.Must(t, http.StatusOK, "GET", "/users/@me/channels", u.token, nil, &chs)
		var ids []string
		for _, c := range chs {
			ids = append(ids, c.ID)
		}
		return ids
	}
	want := []string{real.ID, friends.ID, attackerDM.ID}
	for _, g := range slices.Backward(groups) {
		want = append(want, g)
	}
	if got := list(victim); !slices.Equal(got, want) {
		t.Fatalf("the victim's DMs = %v; want the newest first %v (the friend's new DM on top)", got, want)
	}

	// The victim leaves the attacker's groups.
	for _, g := range groups {
		var left dmJSON
		e.api.Must(t, http.StatusOK, "DELETE", "/channels/"+g, victim.token, nil, &left)
		if left.ID != g || left.Type != guildhall.ChannelTypeGroupDM || left.recipientIDs() != attacker.id+","+accomplice.id {
			t.Errorf("DELETE /channels/%s (leave) = %+v; want the group as the victim saw it", g, left)
		}
	}
	if got, want := list(victim), []string{real.ID, friends.ID, attackerDM.ID}; !slices.Equal(got, want) {
		t.Errorf("the victim's DMs after leaving = %v; want %v", got, want)
	}
	if got := list(attacker); !slices.Contains(got, groups[0]) {
		t.Errorf("the attacker's DMs = %v; want the groups they stay in", got)
	}
	last := groups[len(groups)-1]
	ev := wantLastEvent(t, e, ghnats.UserInSubject(mustID(t, victim.id)), guildhall.EventChannelDelete)
	if ev.ChannelID.String() != last || !bytes.Contains(ev.Data, []byte(`"id":"`+last+`"`)) {
		t.Errorf("CHANNEL_DELETE to the victim = %v %s", ev.ChannelID, ev.Data)
	}
	for _, u := range []user{attacker, accomplice} {
		ev := wantLastEvent(t, e, ghnats.UserInSubject(mustID(t, u.id)), guildhall.EventChannelRecipientRemove)
		var rr guildhall.ChannelRecipientRemove
		if err := json.Unmarshal(ev.Data, &rr); err != nil || rr.ChannelID.String() != last || rr.User.ID.String() != victim.id {
			t.Errorf("CHANNEL_RECIPIENT_REMOVE to %s = %s; want channel %s, user %s", u.id, ev.Data, last, victim.id)
		}
	}

	// Left is left: no reading, posting or leaving again; the others go on.
	for _, c := range []struct{ method, path string }{
		{"GET", "/channels/" + last}, {"GET", "/channels/" + last + "/messages"},
		{"POST", "/channels/" + last + "/messages"}, {"POST", "/channels/" + last + "/typing"}, {"DELETE", "/channels/" + last},
	} {
		status, raw := e.api.Do(t, c.method, c.path, victim.token, map[string]string{"content": "x"}, nil)
		wantError(t, status, raw, http.StatusForbidden, 50001)
	}
	m := e.post(accomplice.token, last, "still here")
	if h := e.history(attacker.token, last, ""); len(h) != 1 || h[0].ID != m.ID {
		t.Errorf("the group's history after the victim left = %v; want [%s]", ids(h), m.ID)
	}
	ev = wantLastEvent(t, e, ghnats.UserInSubject(mustID(t, victim.id)), guildhall.EventChannelDelete)
	if ev.ChannelID.String() != last {
		t.Errorf("the victim's last event = %s on %v; want nothing after leaving", ev.Type, ev.ChannelID)
	}

	// Refusals: someone never in the group, a channel that does not exist, a
	// DM between two (closed on Discord, never left).
	status, raw = e.api.Do(t, "DELETE", "/channels/"+friends.ID, attacker.token, nil, nil)
	wantError(t, status, raw, http.StatusForbidden, 50001)
	status, raw = e.api.Do(t, "DELETE", "/channels/123456789", victim.token, nil, nil)
	wantError(t, status, raw, http.StatusNotFound, 10003)
	status, raw = e.api.Do(t, "DELETE", "/channels/"+real.ID, victim.token, nil, nil)
	wantError(t, status, raw, http.StatusForbidden, 50003)
	if got := list(victim); !slices.Contains(got, real.ID) {
		t.Errorf("the victim's DMs after a refused DELETE of a DM = %v; want %s still there", got, real.ID)
	}
}

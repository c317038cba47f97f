package rest_test

import (
	"bytes"
	"net/http"
	"testing"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
)

// A reply is stored with the message it answered as it was when the reply was
// posted. Every read must show the answered message as it is now, as History
// and GET message do: a pinned reply and an edited reply's MESSAGE_UPDATE too,
// or the content of a message its author or a moderator deleted (or edited)
// comes back to everyone who reads the pins, or who is online when the reply
// is edited.
func TestReferencedMessageIsCurrentEverywhere(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	f := e.fixture()
	const secret = "my password is hunter2"
	q := e.post(f.owner.token, f.channel, secret)
	status, raw, r := e.postBody(f.member.token, f.channel, map[string]any{
		"content": "you should not post that", "message_reference": map[string]any{"message_id": q.ID},
	})
	if status != http.StatusOK || r.ReferencedMessage == nil {
		t.Fatalf("reply = %d %s", status, raw)
	}
	e.api.Must(t, http.StatusNoContent, "PUT", "/channels/"+f.channel+"/messages/pins/"+r.ID, f.owner.token, nil, nil)
	e.api.Must(t, http.StatusNoContent, "DELETE", "/channels/"+f.channel+"/messages/"+q.ID, f.owner.token, nil, nil)

	// The pins, in both of Discord's routes.
	for _, path := range []string{"/channels/" + f.channel + "/messages/pins", "/channels/" + f.channel + "/pins"} {
		raw := e.api.Must(t, http.StatusOK, "GET", path, f.member.token, nil, nil)
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("GET %s after the referenced message's delete = %s; its content is gone", path, raw)
		}
		if !bytes.Contains(raw, []byte(`"referenced_message":null`)) {
			t.Errorf("GET %s = %s; want the reply's referenced_message null", path, raw)
		}
	}

	// The reply's edit: its MESSAGE_UPDATE goes to every session of the channel.
	e.api.Must(t, http.StatusOK, "PATCH", "/channels/"+f.channel+"/messages/"+r.ID, f.member.token, map[string]string{"content": "never mind"}, nil)
	ev := wantLastEvent(t, e, ghnats.GuildInSubject(mustID(t, f.guild)), guildhall.EventMessageUpdate)
	if bytes.Contains(ev.Data, []byte(secret)) {
		t.Errorf("MESSAGE_UPDATE of the reply = %s; it carries the deleted message's content", ev.Data)
	}
	if !bytes.Contains(ev.Data, []byte(`"referenced_message":null`)) {
		t.Errorf("MESSAGE_UPDATE of the reply = %s; want referenced_message null", ev.Data)
	}

	// An edit of the answered message shows in the pins too.
	q2 := e.post(f.owner.token, f.channel, "first version")
	_, _, r2 := e.postBody(f.member.token, f.channel, map[string]any{
		"content": "answer", "message_reference": map[string]any{"message_id": q2.ID},
	})
	e.api.Must(t, http.StatusNoContent, "PUT", "/channels/"+f.channel+"/messages/pins/"+r2.ID, f.owner.token, nil, nil)
	e.api.Must(t, http.StatusOK, "PATCH", "/channels/"+f.channel+"/messages/"+q2.ID, f.owner.token, map[string]string{"content": "second version"}, nil)
	var pins struct {
		Items []struct {
			Message richMessageJSON `json:"message"`
		} `json:"items"`
	}
	e.api.Must(t, http.StatusOK, "GET", "/channels/"+f.channel+"/messages/pins", f.member.token, nil, &pins)
	if len(pins.Items) == 0 || pins.Items[0].Message.ID != r2.ID || pins.Items[0].Message.ReferencedMessage == nil ||
		pins.Items[0].Message.ReferencedMessage.Content != "second version" {
		t.Errorf("pins after the answered message's edit = %+v; want %s first, answering \"second version\"", pins.Items, r2.ID)
	}
}

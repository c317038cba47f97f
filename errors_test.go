package guildhall_test

import (
	"encoding/json"
	"errors"
	"testing"

	guildhall "github.com/guildhall/guildhall"
)

// An error that crossed NATS is told apart by its status and code, never by its
// message: errors with the same Discord code but another status do not match.
func TestRemoteErrorMatchesByStatusAndCode(t *testing.T) {
	b, err := json.Marshal(guildhall.IdentifyReply{Error: guildhall.ErrUnauthorized.Remote()})
	if err != nil {
		t.Fatal(err)
	}
	var rep guildhall.IdentifyReply
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Error == nil || !errors.Is(rep.Error, guildhall.ErrUnauthorized) {
		t.Fatalf("reply %s: Error = %v; want ErrUnauthorized", b, rep.Error)
	}
	for _, other := range []*guildhall.Error{guildhall.ErrInternal, guildhall.ErrServiceBusy, guildhall.ErrNotFound, guildhall.ErrRateLimited} {
		if errors.Is(rep.Error, other) {
			t.Errorf("ErrUnauthorized over NATS matches %v", other)
		}
	}
	renamed := &guildhall.RemoteError{Status: 401, Code: 0, Message: "some other wording"}
	if !errors.Is(renamed, guildhall.ErrUnauthorized) || !errors.Is(renamed, rep.Error) {
		t.Error("a reworded message changed what the error is")
	}
	if errors.Is(guildhall.ErrUnknownGuild.Remote(), guildhall.ErrUnknownChannel) {
		t.Error("Unknown Guild matches Unknown Channel")
	}
}

package testenv

import (
	"path/filepath"
	"testing"

	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// Harness is a test's credentials: a fresh set for the roles (in Creds) and one
// more identity for the test itself, which plays several roles at once (tests
// that run the api and a gateway on one connection, or publish events as the api
// does). It may do everything except what nobody may: publish on the subjects the
// stream re-publishes to. Production has no such identity; tests of a role's
// permissions connect as that role (NATS.ConnectAs).
type Harness struct {
	Creds string
	kp    nkeys.KeyPair
	pub   string
	auth  ghnats.ServerAuth
}

// NewHarness generates the credentials in a temp dir.
func NewHarness(t testing.TB) *Harness {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "creds")
	if err := ghnats.GenerateCredentials(dir); err != nil {
		t.Fatalf("credentials: %v", err)
	}
	auth, err := ghnats.LoadServerAuth(dir)
	if err != nil {
		t.Fatalf("credentials: %v", err)
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	auth.Extra = []*server.NkeyUser{{
		Nkey: pub,
		Permissions: &server.Permissions{
			Publish: &server.SubjectPermission{Deny: []string{ghnats.SubjectEvAll}},
		},
		AllowedConnectionTypes: map[string]struct{}{jwt.ConnectionTypeStandard: {}},
	}}
	return &Harness{Creds: dir, kp: kp, pub: pub, auth: auth}
}

// Auth is what the servers are started with.
func (h *Harness) Auth() *ghnats.ServerAuth { a := h.auth; return &a }

// Options connect as the harness identity.
func (h *Harness) Options() []natsgo.Option {
	return []natsgo.Option{natsgo.Nkey(h.pub, h.kp.Sign)}
}

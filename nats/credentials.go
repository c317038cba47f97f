package nats

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// A deployment's credentials live in one directory (GenerateCredentials):
//
//	server.json   what every NATS server needs: each role's public nkey and the
//	              secret that authenticates the routes between cluster nodes
//	<role>.nk     the nkey seed of one role (api.nk, writer.nk, gateway.nk,
//	              operator.nk, leaf.nk), what a process of that role signs in with
//
// Every file is mode 0600 and the directory 0700. A machine needs only what runs
// on it: a NATS node server.json (plus leaf.nk for a leaf node), a gateway
// gateway.nk, an operator's shell operator.nk.
const serverAuthFile = "server.json"

// ErrCredentialsExist is returned by GenerateCredentials for a directory that
// already holds a credentials set.
var ErrCredentialsExist = errors.New("nats: credentials already exist")

// ServerAuth is what a NATS server knows of the deployment's identities.
type ServerAuth struct {
	// Users maps each role to its public nkey.
	Users map[Role]string `json:"users"`
	// RouteUser and RoutePassword authenticate the routes between cluster nodes.
	RouteUser     string `json:"route_user"`
	RoutePassword string `json:"route_password"`
	// LeafSeed is RoleLeaf's seed, which a leaf node's link to the hub signs in
	// with; LoadServerAuth reads it from leaf.nk when the file is there.
	LeafSeed string `json:"-"`
	// Extra users, each with its own permissions; zero value means none. Tests
	// use it for a harness identity that plays several roles at once.
	Extra []*server.NkeyUser `json:"-"`
}

// SeedFile is the file holding role's nkey seed in the credentials directory dir.
func SeedFile(dir string, role Role) string { return filepath.Join(dir, string(role)+".nk") }

// GenerateCredentials creates a new credentials set in dir (created 0700 if
// missing): one nkey user per role and a route secret. It refuses to overwrite a
// set (ErrCredentialsExist): new keys would lock out every process holding the
// old ones.
func GenerateCredentials(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, serverAuthFile)); err == nil {
		return fmt.Errorf("%w in %s", ErrCredentialsExist, dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("nats: credentials: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("nats: credentials: %w", err)
	}
	auth := ServerAuth{Users: map[Role]string{}, RouteUser: "route"}
	var secret [32]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return err
	}
	auth.RoutePassword = base64.RawURLEncoding.EncodeToString(secret[:])
	for _, role := range Roles {
		kp, err := nkeys.CreateUser()
		if err != nil {
			return fmt.Errorf("nats: credentials: %w", err)
		}
		seed, _ := kp.Seed()
		pub, _ := kp.PublicKey()
		auth.Users[role] = pub
		if err := writeSecret(SeedFile(dir, role), append(seed, '\n')); err != nil {
			return err
		}
	}
	b, err := json.MarshalIndent(auth, "", "  ")
	if err != nil {
		return err
	}
	// Written last: its presence says the set is complete.
	return writeSecret(filepath.Join(dir, serverAuthFile), append(b, '\n'))
}

// EnsureCredentials loads the credentials set in dir, generating one first if
// there is none (the embedded server's first start). created reports which.
func EnsureCredentials(dir string) (auth ServerAuth, created bool, err error) {
	if _, err := os.Stat(filepath.Join(dir, serverAuthFile)); errors.Is(err, fs.ErrNotExist) {
		if err := GenerateCredentials(dir); err != nil {
			return ServerAuth{}, false, err
		}
		created = true
	}
	auth, err = LoadServerAuth(dir)
	if err != nil {
		return ServerAuth{}, false, err
	}
	// The embedded server's processes sign in with every seed: check that each
	// still matches its public key, so a stray file fails here and not as an
	// authorization violation later.
	for _, role := range Roles {
		kp, err := readSeed(SeedFile(dir, role))
		if err != nil {
			return ServerAuth{}, false, err
		}
		pub, _ := kp.PublicKey()
		kp.Wipe()
		if pub != auth.Users[role] {
			return ServerAuth{}, false, fmt.Errorf("nats: %s does not match the %s user of %s", SeedFile(dir, role), role, filepath.Join(dir, serverAuthFile))
		}
	}
	return auth, created, nil
}

// LoadServerAuth reads server.json from the credentials directory dir, and
// leaf.nk when it is there.
func LoadServerAuth(dir string) (ServerAuth, error) {
	path := filepath.Join(dir, serverAuthFile)
	b, err := readSecret(path)
	if err != nil {
		return ServerAuth{}, fmt.Errorf("nats: credentials: %w (create a set with `guildhall nats creds`)", err)
	}
	var auth ServerAuth
	if err := json.Unmarshal(b, &auth); err != nil {
		return ServerAuth{}, fmt.Errorf("nats: %s: %w", path, err)
	}
	for _, role := range Roles {
		if !nkeys.IsValidPublicUserKey(auth.Users[role]) {
			return ServerAuth{}, fmt.Errorf("nats: %s: no valid public nkey for role %s", path, role)
		}
	}
	if auth.RouteUser == "" || len(auth.RoutePassword) < 16 {
		return ServerAuth{}, fmt.Errorf("nats: %s: no route secret", path)
	}
	if seed, err := readSecret(SeedFile(dir, RoleLeaf)); err == nil {
		auth.LeafSeed = strings.TrimSpace(string(seed))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return ServerAuth{}, err
	}
	return auth, nil
}

// users is the server's view of auth: one nkey user per role with the role's
// permissions, plus Extra.
func (a ServerAuth) users() []*server.NkeyUser {
	var out []*server.NkeyUser
	for _, role := range Roles {
		out = append(out, &server.NkeyUser{
			Nkey:                   a.Users[role],
			Permissions:            Permissions(role),
			AllowedConnectionTypes: connectionTypes(role),
		})
	}
	return append(out, a.Extra...)
}

func readSeed(path string) (nkeys.KeyPair, error) {
	b, err := readSecret(path)
	if err != nil {
		return nil, fmt.Errorf("nats: credentials: %w", err)
	}
	kp, err := nkeys.ParseDecoratedNKey(b)
	if err != nil {
		return nil, fmt.Errorf("nats: %s: %w", path, err)
	}
	return kp, nil
}

func writeSecret(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("nats: credentials: %w", err)
	}
	if err := f.Chmod(0o600); err != nil { // a stale file may have had another mode
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// readSecret reads a credentials file, warning when others may read it too.
func readSecret(path string) ([]byte, error) {
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		slog.Warn("credentials file is readable by others; chmod 600 it", "file", path, "mode", fmt.Sprintf("%#o", fi.Mode().Perm()))
	}
	return os.ReadFile(path)
}

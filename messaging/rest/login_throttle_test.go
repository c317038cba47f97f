package rest_test

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	ghnats "github.com/guildhall/guildhall/nats"
)

// Failed logins lock the account across api processes (5 free, then 1 s,
// doubling), and a client address (20 free); the right password waits too;
// a throttle that cannot be read refuses logins.
func TestLoginThrottle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b, _ := e.secondAPI(t, time.Minute, false)
	const name, pw = "victim", "correct horse battery"
	e.api.Must(t, http.StatusCreated, "POST", "/auth/register", "", map[string]string{"username": name, "password": pw}, nil)
	try := func(api interface {
		Do(testing.TB, string, string, string, any, any) (int, []byte)
	}, user, password string) int {
		st, _ := api.Do(t, "POST", "/auth/login", "", map[string]string{"username": user, "password": password}, nil)
		return st
	}
	for i := range 6 { // alternating processes: the count is shared
		api := e.api
		if i%2 == 1 {
			api = b
		}
		if st := try(api, name, "wrong guess "+strconv.Itoa(i)); st != 400 {
			t.Fatalf("wrong password %d = %d; want 400", i, st)
		}
	}
	resp := e.raw(t, "POST", "/auth/login", "", `{"username":"victim","password":"correct horse battery"}`)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("login after 6 failures = %d (Retry-After %q); want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if st := try(b, "VICTIM", pw); st != 429 {
		t.Fatalf("same account, other case, other process = %d; want 429", st)
	}
	// Another account is not locked by this one's failures.
	e.register("bystander")
	// The lock lasts 1 s; then the right password works and clears the count.
	time.Sleep(1100 * time.Millisecond)
	if st := try(b, name, pw); st != 200 {
		t.Fatalf("login after the lock = %d; want 200", st)
	}
	if st := try(e.api, name, "wrong again"); st != 400 {
		t.Fatalf("first failure after a success = %d; want 400 (count cleared)", st)
	}
}

func TestLoginThrottlePerAddress(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	for i := range 21 { // a password spray: one guess per account, many accounts
		st, _ := e.api.Do(t, "POST", "/auth/login", "", map[string]string{"username": "nobody" + strconv.Itoa(i), "password": "wrong password"}, nil)
		if st != 400 {
			t.Fatalf("guess %d = %d; want 400", i, st)
		}
	}
	st, _ := e.api.Do(t, "POST", "/auth/login", "", map[string]string{"username": "nobody99", "password": "wrong password"}, nil)
	if st != 429 {
		t.Fatalf("22nd failed login from one address = %d; want 429", st)
	}

	// Fail safe: without the bucket, logins are refused, not let through.
	if err := e.nats.JS.DeleteKeyValue(context.Background(), ghnats.BucketAPIState); err != nil {
		t.Fatal(err)
	}
	st, raw := e.api.Do(t, "POST", "/auth/login", "", map[string]string{"username": "someone", "password": "correct horse battery"}, nil)
	wantError(t, st, raw, 503, 0)
}

package rest_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/guildhall/guildhall/messaging"
)

// Usernames as Discord's current rules, passwords after NIST SP 800-63B: what is
// refused says why under its field and creates nothing.
func TestAccountRules(t *testing.T) {
	t.Parallel()
	// Every refused registration below is also tried as a login, from one
	// address: more failures than the address throttle lets through.
	e := newEnv(t, envOptions{logins: messaging.LoginLimits{AddressFree: 1000}})
	const good = "correct horse battery"
	for _, c := range []struct {
		name, username, password, field, code string
	}{
		{"upper case", "Alice", good, "username", "USERNAME_INVALID_CHARACTERS"},
		{"space", "al ice", good, "username", "USERNAME_INVALID_CHARACTERS"},
		{"hyphen", "al-ice", good, "username", "USERNAME_INVALID_CHARACTERS"},
		{"zero-width space", "ali\u200bce", good, "username", "USERNAME_INVALID_CHARACTERS"},
		{"zero-width joiner", "ali\u200dce", good, "username", "USERNAME_INVALID_CHARACTERS"},
		{"fullwidth", "ａｌｉｃｅ", good, "username", "USERNAME_INVALID_CHARACTERS"},
		{"Cyrillic a", "\u0430lice", good, "username", "USERNAME_INVALID_CHARACTERS"},
		{"bidi override", "alice\u202egnp", good, "username", "USERNAME_INVALID_CHARACTERS"},
		{"at everyone", "@everyone", good, "username", "USERNAME_INVALID_CHARACTERS"},
		{"hash", "alice#0001", good, "username", "USERNAME_INVALID_CHARACTERS"},
		{"two periods", "al..ice", good, "username", "USERNAME_INVALID_CHARACTERS"},
		{"everyone", "everyone", good, "username", "USERNAME_INVALID"},
		{"here", "here", good, "username", "USERNAME_INVALID"},
		{"system", "system", good, "username", "USERNAME_INVALID"},
		{"admin", "admin", good, "username", "USERNAME_INVALID"},
		{"clyde", "clyde", good, "username", "USERNAME_INVALID"},
		{"contains discord", "real_discord_staff", good, "username", "USERNAME_INVALID_CONTAINS"},
		{"one character", "a", good, "username", "BASE_TYPE_BAD_LENGTH"},
		{"33 characters", strings.Repeat("a", 33), good, "username", "BASE_TYPE_BAD_LENGTH"},
		{"7 characters", "newuser1", "abcdefg", "password", "BASE_TYPE_BAD_LENGTH"},
		{"257 characters", "newuser2", strings.Repeat("ab", 128) + "c", "password", "BASE_TYPE_BAD_LENGTH"},
		{"8 spaces", "newuser3", "        ", "password", "PASSWORD_TOO_WEAK"},
		{"one letter repeated", "newuser4", "zzzzzzzzzz", "password", "PASSWORD_TOO_WEAK"},
		{"password", "newuser5", "password", "password", "PASSWORD_TOO_WEAK"},
		{"common, any case", "newuser6", "PassWord1", "password", "PASSWORD_TOO_WEAK"},
		{"common", "newuser7", "iloveyou", "password", "PASSWORD_TOO_WEAK"},
		{"common digits", "newuser8", "12345678", "password", "PASSWORD_TOO_WEAK"},
		{"the username", "longusername", "LongUsername", "password", "PASSWORD_TOO_WEAK"},
	} {
		t.Run(c.name, func(t *testing.T) {
			st, raw := e.api.Do(t, "POST", "/auth/register", "", map[string]string{"username": c.username, "password": c.password}, nil)
			d := wantError(t, st, raw, 400, 50035)
			if _, ok := d.Errors[c.field]; !ok || !strings.Contains(string(raw), c.code) {
				t.Errorf("register %q/%q = %s; want %s on %s", c.username, c.password, raw, c.code, c.field)
			}
			st, _ = e.api.Do(t, "POST", "/auth/login", "", map[string]string{"username": c.username, "password": c.password}, nil)
			if st == 200 {
				t.Errorf("a refused registration of %q created an account", c.username)
			}
		})
	}
	// No composition rules; spaces, non-Latin letters and lengths past bcrypt's
	// 72 bytes are fine, and the whole of a long password counts.
	long := strings.Repeat("пароль ", 20) // 140 characters, 240 bytes
	for _, c := range []struct{ username, password string }{
		{"dot.and_under.score", "alllowercaseletters"},
		{"p1", "        x"},
		{"unicode.user", "ünïcødé pässwörd 🔑"},
		{"long.password", long},
	} {
		e.api.Must(t, http.StatusCreated, "POST", "/auth/register", "", map[string]string{"username": c.username, "password": c.password}, nil)
		e.api.Must(t, http.StatusOK, "POST", "/auth/login", "", map[string]string{"username": c.username, "password": c.password}, nil)
	}
	// Login is case-insensitive in the username; a password differing after
	// byte 72 is a different password.
	e.api.Must(t, http.StatusOK, "POST", "/auth/login", "", map[string]string{"username": "LONG.PASSWORD", "password": long}, nil)
	st, raw := e.api.Do(t, "POST", "/auth/login", "", map[string]string{"username": "long.password", "password": long[:len(long)-1] + "!"}, nil)
	wantError(t, st, raw, 400, 50035)
}

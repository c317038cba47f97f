package messaging

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"strings"
	"unicode/utf8"

	guildhall "github.com/guildhall/guildhall"
	"golang.org/x/crypto/bcrypt"
)

// Account rules.
//
// Usernames follow Discord's current (post-2023) rules: 2 to 32 characters of
// lower-case a-z, digits, "_" and ".", no "..", none of the reserved names and
// nothing containing "discord" or "clyde" (Discord's own rules; "guildhall" is
// this service's). Everything else is refused, which is what keeps out
// zero-width and bidi characters, fullwidth and Cyrillic look-alikes, spaces,
// "@", "#" and ":". Logins compare usernames case-insensitively, so accounts
// made under the older, looser rules still log in.
//
// Passwords follow NIST SP 800-63B (5.1.1.2): at least 8 characters, at most
// MaxPassword, any characters (spaces and emoji included), no composition rules,
// and not one of the common and breached passwords in commonpasswords/list.txt
// (see its README for where it comes from), nor the username, nor one character
// repeated.
const (
	MinUsername = 2
	MaxUsername = 32
	MinPassword = 8
	// MaxPassword is in characters; a password is pre-hashed with SHA-256 before
	// bcrypt, so bcrypt's 72-byte limit does not cut it short.
	MaxPassword = 256
	// maxPasswordBytes bounds what login hashes at all.
	maxPasswordBytes = 4 * MaxPassword
)

// reservedUsernames are refused outright; reservedInUsername anywhere in one.
var (
	reservedUsernames  = []string{"everyone", "here", "system", "admin", "administrator", "clyde", "discord", "guildhall"}
	reservedInUsername = []string{"discord", "clyde"}
)

func validUsername(name string) error {
	if n := utf8.RuneCountInString(name); n < MinUsername || n > MaxUsername {
		return guildhall.FieldError("username", "BASE_TYPE_BAD_LENGTH", "Must be between 2 and 32 in length.")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.') {
			return guildhall.FieldError("username", "USERNAME_INVALID_CHARACTERS",
				"Username can only contain lower-case letters a-z, digits, underscores and periods.")
		}
	}
	if strings.Contains(name, "..") {
		return guildhall.FieldError("username", "USERNAME_INVALID_CHARACTERS", "Username cannot contain two periods in a row.")
	}
	for _, r := range reservedUsernames {
		if name == r {
			return guildhall.FieldError("username", "USERNAME_INVALID", "Username is not allowed.")
		}
	}
	for _, r := range reservedInUsername {
		if strings.Contains(name, r) {
			return guildhall.FieldError("username", "USERNAME_INVALID_CONTAINS", "Username cannot contain \""+r+"\".")
		}
	}
	return nil
}

//go:embed commonpasswords/list.txt
var commonPasswordList []byte

// commonPasswords is the embedded list as a set, built at package init (3,534
// entries, about 200 KiB).
var commonPasswords = func() map[string]struct{} {
	m := make(map[string]struct{}, 4096)
	sc := bufio.NewScanner(bytes.NewReader(commonPasswordList))
	for sc.Scan() {
		if p := strings.TrimSpace(sc.Text()); p != "" {
			m[p] = struct{}{}
		}
	}
	return m
}()

var errWeakPassword = guildhall.FieldError("password", "PASSWORD_TOO_WEAK",
	"Password is too common or too easy to guess. Choose another.")

// validPassword checks a new password for the account username; field names the
// form field the error is reported under.
func validPassword(password, username, field string) error {
	n := utf8.RuneCountInString(password)
	if !utf8.ValidString(password) || n < MinPassword || n > MaxPassword {
		return guildhall.FieldError(field, "BASE_TYPE_BAD_LENGTH", "Must be between 8 and 256 in length.")
	}
	lower := strings.ToLower(password)
	if _, common := commonPasswords[lower]; common || lower == strings.ToLower(username) || lower == "guildhall" {
		return withField(errWeakPassword, field)
	}
	first, _ := utf8.DecodeRuneInString(password)
	if strings.Count(password, string(first)) == n {
		return withField(errWeakPassword, field) // "        ", "aaaaaaaa"
	}
	return nil
}

func withField(e *guildhall.Error, field string) *guildhall.Error {
	if _, ok := e.Errors[field]; ok {
		return e
	}
	for _, v := range e.Errors {
		return &guildhall.Error{Status: e.Status, Code: e.Code, Message: e.Message, Errors: map[string]any{field: v}}
	}
	return e
}

// prehashPrefix marks a password hash computed over SHA-256 of the password
// (base64, so bcrypt sees 44 bytes without NULs): every hash made since
// passwords may be longer than bcrypt's 72 bytes. Hashes without it are
// bcrypt over the password itself, as accounts made before have them.
const prehashPrefix = "gh-sha256$"

func prehash(password string) []byte {
	sum := sha256.Sum256([]byte(password))
	return []byte(base64.StdEncoding.EncodeToString(sum[:]))
}

func (s *Service) hashPassword(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword(prehash(password), s.bcryptCost)
	if err != nil {
		return "", err
	}
	return prehashPrefix + string(h), nil
}

// passwordMatches compares a password with a stored hash of either kind.
func passwordMatches(hash, password string) bool {
	if rest, ok := strings.CutPrefix(hash, prehashPrefix); ok {
		return bcrypt.CompareHashAndPassword([]byte(rest), prehash(password)) == nil
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}

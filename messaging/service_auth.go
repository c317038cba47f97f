package messaging

import (
	"container/list"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	guildhall "github.com/guildhall/guildhall"
	"golang.org/x/crypto/bcrypt"
)

// Credentials is what a client sends to register or log in.
type Credentials struct {
	Username string
	Password string
}

// Session is a freshly minted token and the user it belongs to: the body of the
// register and login answers.
type Session struct {
	Token  string              `json:"token"`
	UserID guildhall.Snowflake `json:"user_id"`
}

// Account limits.
const (
	MinUsername = 2
	MaxUsername = 32
	MinPassword = 8
	MaxPassword = 72 // bcrypt reads no further
)

// Register creates a human account and returns its first token. Bad input
// (username 2..32 characters without control characters, password 8..72 bytes)
// answers Invalid Form Body with the field's error and creates nothing; a taken
// username answers ErrUsernameTaken.
func (s *Service) Register(ctx context.Context, c Credentials) (Session, error) {
	if err := validUsername(c.Username); err != nil {
		return Session{}, err
	}
	if n := len(c.Password); n < MinPassword || n > MaxPassword {
		return Session{}, guildhall.FieldError("password", "BASE_TYPE_BAD_LENGTH", "Must be between 8 and 72 in length.")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(c.Password), s.bcryptCost)
	if err != nil {
		return Session{}, internal("hash password", err)
	}
	u := guildhall.User{ID: s.ids.Next(), Username: c.Username, Discriminator: "0"}
	if err := s.store.CreateUser(ctx, UserRecord{User: u, PasswordHash: string(hash)}); err != nil {
		if errors.Is(err, ErrConflict) {
			return Session{}, guildhall.ErrUsernameTaken
		}
		return Session{}, internal("create user", err)
	}
	return s.mintToken(ctx, u)
}

// Login checks a username and password and returns a new token. An unknown user
// and a wrong password get the same answer, ErrInvalidLogin, after the same work.
func (s *Service) Login(ctx context.Context, c Credentials) (Session, error) {
	if len(c.Username) > 4*MaxUsername || len(c.Password) > MaxPassword {
		_ = bcrypt.CompareHashAndPassword(s.dummyHash, []byte(c.Password))
		return Session{}, guildhall.ErrInvalidLogin
	}
	rec, err := s.store.UserByName(ctx, c.Username)
	switch {
	case errors.Is(err, ErrNotFound):
		_ = bcrypt.CompareHashAndPassword(s.dummyHash, []byte(c.Password))
		return Session{}, guildhall.ErrInvalidLogin
	case err != nil:
		return Session{}, internal("find user", err)
	}
	if rec.PasswordHash == "" { // a bot: tokens only
		_ = bcrypt.CompareHashAndPassword(s.dummyHash, []byte(c.Password))
		return Session{}, guildhall.ErrInvalidLogin
	}
	if bcrypt.CompareHashAndPassword([]byte(rec.PasswordHash), []byte(c.Password)) != nil {
		return Session{}, guildhall.ErrInvalidLogin
	}
	return s.mintToken(ctx, rec.User)
}

// CreateBot creates a bot account named name and returns its token. It is an
// admin operation (the CLI calls it through the responder's SubjectAPIBot).
func (s *Service) CreateBot(ctx context.Context, name string) (Session, error) {
	if err := validUsername(name); err != nil {
		return Session{}, err
	}
	u := guildhall.User{ID: s.ids.Next(), Username: name, Discriminator: "0", Bot: true}
	if err := s.store.CreateUser(ctx, UserRecord{User: u}); err != nil {
		if errors.Is(err, ErrConflict) {
			return Session{}, guildhall.ErrUsernameTaken
		}
		return Session{}, internal("create bot", err)
	}
	return s.mintToken(ctx, u)
}

// Authenticate returns the user a token belongs to, or ErrUnauthorized. It accepts
// the bare token; callers strip "Bot ".
func (s *Service) Authenticate(ctx context.Context, token string) (guildhall.User, error) {
	if token == "" || len(token) > 256 {
		return guildhall.User{}, guildhall.ErrUnauthorized
	}
	return s.authenticateHash(ctx, HashToken(token))
}

// authenticateHash returns the user of the token whose HashToken is h.
func (s *Service) authenticateHash(ctx context.Context, h string) (guildhall.User, error) {
	if u, ok := s.tokens.get(h); ok {
		return u, nil
	}
	id, err := s.store.UserByToken(ctx, h)
	if errors.Is(err, ErrNotFound) {
		return guildhall.User{}, guildhall.ErrUnauthorized
	}
	if err != nil {
		return guildhall.User{}, internal("token", err)
	}
	u, err := s.store.User(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return guildhall.User{}, guildhall.ErrUnauthorized
	}
	if err != nil {
		return guildhall.User{}, internal("token user", err)
	}
	s.tokens.put(h, u)
	return u, nil
}

// HashToken is what the store keeps of a token (guildhall.TokenHash): a stolen
// store yields no usable token.
func HashToken(token string) string { return guildhall.TokenHash(token) }

// mintToken makes a token shaped like Discord's, base64url(user id) "." random,
// and stores its hash.
func (s *Service) mintToken(ctx context.Context, u guildhall.User) (Session, error) {
	var secret [32]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return Session{}, internal("token entropy", err)
	}
	token := base64.RawURLEncoding.EncodeToString([]byte(u.ID.String())) + "." +
		base64.RawURLEncoding.EncodeToString(secret[:])
	h := HashToken(token)
	if err := s.store.PutToken(ctx, h, u.ID); err != nil {
		return Session{}, internal("put token", err)
	}
	s.tokens.put(h, u)
	return Session{Token: token, UserID: u.ID}, nil
}

func validUsername(name string) error {
	n := utf8.RuneCountInString(name)
	if n < MinUsername || n > MaxUsername {
		return guildhall.FieldError("username", "BASE_TYPE_BAD_LENGTH", "Must be between 2 and 32 in length.")
	}
	if !utf8.ValidString(name) || strings.TrimSpace(name) != name || strings.IndexFunc(name, func(r rune) bool {
		return unicode.IsControl(r) || r == utf8.RuneError
	}) >= 0 {
		return guildhall.FieldError("username", "USERNAME_INVALID_CHARACTERS", "Username cannot contain control characters or leading or trailing spaces.")
	}
	switch strings.ToLower(name) {
	case "everyone", "here":
		return guildhall.FieldError("username", "USERNAME_INVALID", "Username is not allowed.")
	}
	return nil
}

// tokenCache is a bounded LRU of token hash → user. Accounts do not change once
// created (there is no rename), so entries need no invalidation.
type tokenCache struct {
	mu    sync.Mutex
	max   int
	order *list.List // front = most recent; values are *tokenEntry
	items map[string]*list.Element
}

type tokenEntry struct {
	hash string
	user guildhall.User
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, order: list.New(), items: make(map[string]*list.Element)}
}

func (c *tokenCache) get(hash string) (guildhall.User, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[hash]
	if !ok {
		return guildhall.User{}, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*tokenEntry).user, true
}

func (c *tokenCache) put(hash string, u guildhall.User) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[hash]; ok {
		e.Value.(*tokenEntry).user = u
		c.order.MoveToFront(e)
		return
	}
	c.items[hash] = c.order.PushFront(&tokenEntry{hash: hash, user: u})
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.items, last.Value.(*tokenEntry).hash)
	}
}

package messaging

import (
	"container/list"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"sync"
	"time"

	guildhall "github.com/guildhall/guildhall"
)

// Credentials is what a client sends to register or log in.
type Credentials struct {
	Username string
	Password string
	// Addr is the client's address, for login throttling (LoginLimits).
	Addr string
}

// Session is a freshly minted token and the user it belongs to: the body of the
// register and login answers.
type Session struct {
	Token  string              `json:"token"`
	UserID guildhall.Snowflake `json:"user_id"`
}

// Register creates a human account and returns its first token. Bad input (see
// the account rules in service_accounts.go) answers Invalid Form Body with the
// field's error and creates nothing; a taken username answers ErrUsernameTaken.
func (s *Service) Register(ctx context.Context, c Credentials) (Session, error) {
	if err := validUsername(c.Username); err != nil {
		return Session{}, err
	}
	if err := validPassword(c.Password, c.Username, "password"); err != nil {
		return Session{}, err
	}
	hash, err := s.hashPassword(c.Password)
	if err != nil {
		return Session{}, internal("hash password", err)
	}
	u := guildhall.User{ID: s.ids.Next(), Username: c.Username, Discriminator: "0"}
	if err := s.store.CreateUser(ctx, UserRecord{User: u, PasswordHash: hash}); err != nil {
		if errors.Is(err, ErrConflict) {
			return Session{}, guildhall.ErrUsernameTaken
		}
		return Session{}, internal("create user", err)
	}
	return s.mintToken(ctx, u)
}

// Login checks a username and password and returns a new token. An unknown user
// and a wrong password get the same answer, ErrInvalidLogin, after the same work.
// Logins are throttled per account and per client address (LoginLimits);
// a throttled one answers *LoginThrottledError.
func (s *Service) Login(ctx context.Context, c Credentials) (Session, error) {
	rec, err := s.throttledLogin(ctx, c, func() (UserRecord, error) { return s.checkPassword(ctx, c) })
	if err != nil {
		return Session{}, err
	}
	return s.mintToken(ctx, rec.User)
}

// checkPassword returns the human account c names if c's password is its
// password, else ErrInvalidLogin after the work a bcrypt comparison costs.
func (s *Service) checkPassword(ctx context.Context, c Credentials) (UserRecord, error) {
	if len(c.Username) > 4*MaxUsername || len(c.Password) > maxPasswordBytes {
		passwordMatches(s.dummyHash, c.Password)
		return UserRecord{}, guildhall.ErrInvalidLogin
	}
	rec, err := s.store.UserByName(ctx, c.Username)
	switch {
	case errors.Is(err, ErrNotFound):
		passwordMatches(s.dummyHash, c.Password)
		return UserRecord{}, guildhall.ErrInvalidLogin
	case err != nil:
		return UserRecord{}, internal("find user", err)
	}
	if rec.PasswordHash == "" { // a bot: tokens only
		passwordMatches(s.dummyHash, c.Password)
		return UserRecord{}, guildhall.ErrInvalidLogin
	}
	if !passwordMatches(rec.PasswordHash, c.Password) {
		return UserRecord{}, guildhall.ErrInvalidLogin
	}
	return rec, nil
}

// CreateBot creates a bot account named name, owned by the operators, and
// returns its token. It is an admin operation (the CLI calls it through the
// responder's SubjectAPIBot); CreateOwnedBot gives the bot an owner.
func (s *Service) CreateBot(ctx context.Context, name string) (Session, error) {
	return s.CreateOwnedBot(ctx, name, "")
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
	gen := s.tokens.generation()
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
	s.tokens.putIf(h, u, gen)
	return u, nil
}

// HashToken is what the store keeps of a token (guildhall.TokenHash): a stolen
// store yields no usable token.
func HashToken(token string) string { return guildhall.TokenHash(token) }

// mintToken makes a token and stores its hash (see newToken).
func (s *Service) mintToken(ctx context.Context, u guildhall.User) (Session, error) {
	token, err := newToken(u)
	if err != nil {
		return Session{}, err
	}
	return s.putToken(ctx, u, token)
}

// newToken makes a token shaped like Discord's, base64url(user id) "." random
// (256 bits).
func newToken(u guildhall.User) (string, error) {
	var secret [32]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return "", internal("token entropy", err)
	}
	return base64.RawURLEncoding.EncodeToString([]byte(u.ID.String())) + "." +
		base64.RawURLEncoding.EncodeToString(secret[:]), nil
}

// putToken stores token's hash as u's and caches it.
func (s *Service) putToken(ctx context.Context, u guildhall.User, token string) (Session, error) {
	h := HashToken(token)
	if err := s.store.PutToken(ctx, h, u.ID); err != nil {
		return Session{}, internal("put token", err)
	}
	s.tokens.put(h, u)
	return Session{Token: token, UserID: u.ID}, nil
}

// tokenCache is a bounded LRU of token hash → user whose entries live at most
// ttl. Revocations (TokenRevocation, from this process or from the stream, see
// WatchRevocations) drop entries at once; the ttl bounds how long a revoked
// token still works on a process that missed its revocation. gen counts
// revocations, so that a store read that raced one is not cached (putIf).
type tokenCache struct {
	mu    sync.Mutex
	max   int
	ttl   time.Duration
	now   func() time.Time
	gen   uint64
	order *list.List // front = most recent; values are *tokenEntry
	items map[string]*list.Element
}

type tokenEntry struct {
	hash    string
	user    guildhall.User
	expires time.Time
}

func newTokenCache(max int, ttl time.Duration, now func() time.Time) *tokenCache {
	return &tokenCache{max: max, ttl: ttl, now: now, order: list.New(), items: make(map[string]*list.Element)}
}

func (c *tokenCache) get(hash string) (guildhall.User, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[hash]
	if !ok {
		return guildhall.User{}, false
	}
	te := e.Value.(*tokenEntry)
	if !c.now().Before(te.expires) {
		c.order.Remove(e)
		delete(c.items, hash)
		return guildhall.User{}, false
	}
	c.order.MoveToFront(e)
	return te.user, true
}

// generation is read before a store lookup and handed to putIf after it.
func (c *tokenCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// putIf caches u unless a revocation came since gen was read: the store read
// may have seen the token before it was deleted.
func (c *tokenCache) putIf(hash string, u guildhall.User, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	c.putLocked(hash, u)
}

func (c *tokenCache) put(hash string, u guildhall.User) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(hash, u)
}

func (c *tokenCache) putLocked(hash string, u guildhall.User) {
	expires := c.now().Add(c.ttl)
	if e, ok := c.items[hash]; ok {
		te := e.Value.(*tokenEntry)
		te.user, te.expires = u, expires
		c.order.MoveToFront(e)
		return
	}
	c.items[hash] = c.order.PushFront(&tokenEntry{hash: hash, user: u, expires: expires})
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.items, last.Value.(*tokenEntry).hash)
	}
}

// revoke drops what r revokes. A revocation of all a user's tokens walks the
// cache (revocations are rare; the cache is bounded).
func (c *tokenCache) revoke(r guildhall.TokenRevocation) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for _, h := range r.Hashes {
		if e, ok := c.items[h]; ok {
			c.order.Remove(e)
			delete(c.items, h)
		}
	}
	if !r.All {
		return
	}
	for h, e := range c.items {
		if te := e.Value.(*tokenEntry); te.user.ID == r.UserID && h != r.Keep {
			c.order.Remove(e)
			delete(c.items, h)
		}
	}
}

// clear drops everything: revocations may have been missed.
func (c *tokenCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.order.Init()
	clear(c.items)
}

package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"slices"

	guildhall "github.com/guildhall/guildhall"
	ghnats "github.com/guildhall/guildhall/nats"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Revoking tokens.
//
// A token stops working when its hash leaves the store. Every revocation is
// then published into the EVENTS stream (guildhall.TokenRevocation on
// ghnats.RevocationInSubject), after the store change:
//   - every api process drops the tokens from its token cache as it reads the
//     revocation (WatchRevocations, an ordered consumer: nothing is skipped,
//     across reconnects either), and the one that revoked drops them before it
//     answers;
//   - every gateway closes the tokens' live sessions with 4004; a RESUME or an
//     IDENTIFY with them asks the api, which no longer knows them.
//
// If the publish fails (JetStream down for the whole retry), the store change
// stands and the request succeeds: other api processes stop believing the
// token when its cache entry expires (Config.TokenCacheTTL, 1 minute by
// default), and gateways keep its sessions that are open already (they cannot
// resume or identify again). If an api process's consumer fails, its whole
// cache is dropped.
//
// Who owns a bot: the user named when it was minted (`guildhall token create
// --bot NAME --owner USER`); without an owner, the operators alone (the CLI's
// `token revoke`). Owners list their bots (GET /users/@me/bots) and revoke or
// reset their tokens. Discord differs: a bot belongs to an application, owned by
// a user or a team, and holds one token at a time, reset in the developer
// portal; here a bot may hold several tokens and minting one does not revoke
// the others.

// Errors of the token endpoints (Discord's codes).
var (
	errBotsCannot       = &guildhall.Error{Status: 403, Code: 20001, Message: "Bots cannot use this endpoint"}
	errPasswordMismatch = guildhall.FieldError("password", "PASSWORD_DOES_NOT_MATCH", "Password does not match.")
	errOwnerIsBot       = guildhall.FieldError("owner", "OWNER_INVALID", "A bot cannot own a bot.")
)

const (
	// eventTokensRevoked names revocations in metrics and logs; it is never a
	// dispatch.
	eventTokensRevoked = "TOKENS_REVOKED"
	// maxRevocationSize bounds a revocation the watcher decodes.
	maxRevocationSize = 512 << 10
)

// Logout revokes token, the one u authenticated with.
func (s *Service) Logout(ctx context.Context, u guildhall.User, token string) error {
	h := HashToken(token)
	if err := s.store.DeleteToken(ctx, h); err != nil {
		return internal("delete token", err)
	}
	s.revoked(ctx, guildhall.TokenRevocation{UserID: u.ID, Hashes: []string{h}})
	return nil
}

// ResetToken revokes every token of u and returns a new one. A human gives
// their password (a stolen token alone cannot lock its owner out); a bot's
// tokens are reset by its owner (ResetBotToken).
func (s *Service) ResetToken(ctx context.Context, u guildhall.User, password, addr string) (Session, error) {
	if u.Bot {
		return Session{}, errBotsCannot
	}
	if err := s.confirmPassword(ctx, u, password, addr); err != nil {
		if errors.Is(err, guildhall.ErrInvalidLogin) {
			return Session{}, errPasswordMismatch
		}
		return Session{}, err
	}
	return s.resetTokens(ctx, u)
}

// resetTokens revokes every token of u except the new one it returns. The new
// token is made first so that the revocation can name it as kept: a gateway
// that reads the revocation late must not close a session of the new token.
func (s *Service) resetTokens(ctx context.Context, u guildhall.User) (Session, error) {
	token, err := newToken(u)
	if err != nil {
		return Session{}, err
	}
	keep := HashToken(token)
	if _, err := s.store.DeleteUserTokens(ctx, u.ID, keep); err != nil {
		return Session{}, internal("delete tokens", err)
	}
	s.revoked(ctx, guildhall.TokenRevocation{UserID: u.ID, All: true, Keep: keep})
	return s.putToken(ctx, u, token)
}

// ChangePassword sets u's password to newPassword when oldPassword is the
// current one, and revokes every token of u but token (the one the request came
// with).
func (s *Service) ChangePassword(ctx context.Context, u guildhall.User, token, oldPassword, newPassword, addr string) error {
	if u.Bot {
		return errBotsCannot
	}
	if err := s.confirmPassword(ctx, u, oldPassword, addr); err != nil {
		if errors.Is(err, guildhall.ErrInvalidLogin) {
			return errPasswordMismatch
		}
		return err
	}
	if err := validPassword(newPassword, u.Username, "new_password"); err != nil {
		return err
	}
	hash, err := s.hashPassword(newPassword)
	if err != nil {
		return internal("hash password", err)
	}
	if err := s.store.SetPasswordHash(ctx, u.ID, hash); err != nil {
		return internal("set password", err)
	}
	keep := HashToken(token)
	if _, err := s.store.DeleteUserTokens(ctx, u.ID, keep); err != nil {
		return internal("delete tokens", err)
	}
	s.revoked(ctx, guildhall.TokenRevocation{UserID: u.ID, All: true, Keep: keep})
	return nil
}

// confirmPassword checks u's password, throttled as logins are (a stolen token
// must not become a way to guess the password).
func (s *Service) confirmPassword(ctx context.Context, u guildhall.User, password, addr string) error {
	c := Credentials{Username: u.Username, Password: password, Addr: addr}
	_, err := s.throttledLogin(ctx, c, func() (UserRecord, error) { return s.checkPassword(ctx, c) })
	return err
}

// CreateOwnedBot creates a bot account named name owned by the user named
// owner ("" for the operators) and returns its token. An admin operation, like
// CreateBot.
func (s *Service) CreateOwnedBot(ctx context.Context, name, owner string) (Session, error) {
	if err := validUsername(name); err != nil {
		return Session{}, err
	}
	var ownerID guildhall.Snowflake
	if owner != "" {
		rec, err := s.store.UserByName(ctx, owner)
		if errors.Is(err, ErrNotFound) {
			return Session{}, guildhall.ErrUnknownUser
		}
		if err != nil {
			return Session{}, internal("owner", err)
		}
		if rec.User.Bot {
			return Session{}, errOwnerIsBot
		}
		ownerID = rec.User.ID
	}
	u := guildhall.User{ID: s.ids.Next(), Username: name, Discriminator: "0", Bot: true}
	if err := s.store.CreateUser(ctx, UserRecord{User: u, OwnerID: ownerID}); err != nil {
		if errors.Is(err, ErrConflict) {
			return Session{}, guildhall.ErrUsernameTaken
		}
		return Session{}, internal("create bot", err)
	}
	return s.mintToken(ctx, u)
}

// Bots lists the bots u owns.
func (s *Service) Bots(ctx context.Context, u guildhall.User) ([]guildhall.User, error) {
	bots, err := s.store.Bots(ctx, u.ID)
	if err != nil {
		return nil, internal("bots", err)
	}
	if bots == nil {
		bots = []guildhall.User{}
	}
	return bots, nil
}

// ownedBot returns u's bot botID, or Unknown User when u owns no such bot.
func (s *Service) ownedBot(ctx context.Context, u guildhall.User, botID guildhall.Snowflake) (guildhall.User, error) {
	bots, err := s.Bots(ctx, u)
	if err != nil {
		return guildhall.User{}, err
	}
	i := slices.IndexFunc(bots, func(b guildhall.User) bool { return b.ID == botID })
	if i < 0 {
		return guildhall.User{}, guildhall.ErrUnknownUser
	}
	return bots[i], nil
}

// RevokeBotTokens revokes every token of u's bot botID.
func (s *Service) RevokeBotTokens(ctx context.Context, u guildhall.User, botID guildhall.Snowflake) error {
	bot, err := s.ownedBot(ctx, u, botID)
	if err != nil {
		return err
	}
	_, err = s.revokeAll(ctx, bot.ID)
	return err
}

// ResetBotToken revokes every token of u's bot botID and returns a new one.
func (s *Service) ResetBotToken(ctx context.Context, u guildhall.User, botID guildhall.Snowflake) (Session, error) {
	bot, err := s.ownedBot(ctx, u, botID)
	if err != nil {
		return Session{}, err
	}
	return s.resetTokens(ctx, bot)
}

// RevokeTokenHash revokes one token by its hash (the CLI hashes the token it is
// given: tokens never cross the bus). found is false when no such token exists.
func (s *Service) RevokeTokenHash(ctx context.Context, hash string) (user guildhall.Snowflake, found bool, err error) {
	uid, err := s.store.UserByToken(ctx, hash)
	if errors.Is(err, ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, internal("token", err)
	}
	if err := s.store.DeleteToken(ctx, hash); err != nil {
		return 0, false, internal("delete token", err)
	}
	s.revoked(ctx, guildhall.TokenRevocation{UserID: uid, Hashes: []string{hash}})
	return uid, true, nil
}

// RevokeUserTokens revokes every token of the account named username (an
// operator's act) and says how many there were.
func (s *Service) RevokeUserTokens(ctx context.Context, username string) (guildhall.Snowflake, int, error) {
	rec, err := s.store.UserByName(ctx, username)
	if errors.Is(err, ErrNotFound) {
		return 0, 0, guildhall.ErrUnknownUser
	}
	if err != nil {
		return 0, 0, internal("user", err)
	}
	n, err := s.revokeAll(ctx, rec.User.ID)
	return rec.User.ID, n, err
}

func (s *Service) revokeAll(ctx context.Context, user guildhall.Snowflake) (int, error) {
	removed, err := s.store.DeleteUserTokens(ctx, user, "")
	if err != nil {
		return 0, internal("delete tokens", err)
	}
	s.revoked(ctx, guildhall.TokenRevocation{UserID: user, All: true})
	return len(removed), nil
}

// revoked tells this process's cache at once and every other process through
// the stream. A failed publish is logged and counted, not returned: the store
// change stands (see the top of this file for what bounds it then).
func (s *Service) revoked(ctx context.Context, r guildhall.TokenRevocation) {
	s.tokens.revoke(r)
	data, err := json.Marshal(r)
	if err != nil {
		s.log.Error("encode token revocation", "user", r.UserID, "err", err)
		return
	}
	msg := natsgo.NewMsg(ghnats.RevocationInSubject(uint64(r.UserID)))
	msg.Data = data
	msg.Header.Set(natsgo.MsgIdHdr, s.ids.Next().String())
	_, _ = s.publishMsg(ctx, msg, guildhall.Event{Type: eventTokensRevoked, UserID: r.UserID})
}

// WatchRevocations applies every revocation published from now on to this
// process's token cache, until ctx ends. It reads them with an ordered
// consumer, which resumes where it was after a reconnect; when the consumer
// reports trouble the whole cache is dropped, since a revocation may have been
// missed. Run it beside a Service on every api process.
func (s *Service) WatchRevocations(ctx context.Context) error {
	stream, err := s.js.Stream(ctx, ghnats.StreamEvents)
	if err != nil {
		return internal("revocations: stream", err)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{ghnats.SubjectRevocationsIn},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
		// Unique per process (ordered consumers of two processes with one
		// prefix would take each other's names), and not to be guessed: see
		// ghnats.WatcherPrefix.
		NamePrefix: ghnats.WatcherPrefix(ghnats.RevocationWatcherPrefix),
	})
	if err != nil {
		return internal("revocations: consumer", err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		var r guildhall.TokenRevocation
		if len(m.Data()) > maxRevocationSize || json.Unmarshal(m.Data(), &r) != nil {
			s.log.Error("revocations: undecodable message; dropping the token cache", "subject", m.Subject())
			s.tokens.clear()
			return
		}
		s.tokens.revoke(r)
	}, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		s.log.Warn("revocations: consumer trouble; dropping the token cache", "err", err)
		s.tokens.clear()
	}))
	if err != nil {
		return internal("revocations: consume", err)
	}
	<-ctx.Done()
	cc.Stop()
	return nil
}

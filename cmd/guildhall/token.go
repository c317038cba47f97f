package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/guildhall/guildhall/messaging"
	"github.com/guildhall/guildhall/messaging/natsapi"
	ghnats "github.com/guildhall/guildhall/nats"
	natsgo "github.com/nats-io/nats.go"
)

// token create --bot NAME [--owner USER] asks a running Guildhall to mint a bot
// account over NATS (the api's admin endpoint): the embedded store belongs to
// the running process, so the CLI does not open it. token revoke revokes one
// token or every token of a user the same way.
func token(args []string) error {
	if len(args) < 1 || (args[0] != "create" && args[0] != "revoke") {
		return errors.New("usage: guildhall token create --bot NAME [--owner USER] | token revoke (--token TOKEN | --token - | --user NAME)  [--data DIR] [--nats-url URL] [--nats-creds DIR]")
	}
	if args[0] == "revoke" {
		return tokenRevoke(args[1:])
	}
	fs := flag.NewFlagSet("token create", flag.ContinueOnError)
	bot := fs.String("bot", "", "name of the bot account to create")
	owner := fs.String("owner", "", "username of the user who owns the bot: lists it (GET /users/@me/bots), revokes and resets its tokens; empty: the operators alone")
	b := busFlags(fs)
	if err := flagsFromEnv(fs, envPrefixed("GUILDHALL_"), os.LookupEnv); err != nil {
		return err
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *bot == "" {
		return errors.New("--bot NAME is required")
	}
	nc, err := b.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	req, _ := json.Marshal(natsapi.BotRequest{Name: *bot, Owner: *owner})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := nc.RequestWithContext(ctx, ghnats.SubjectAPIBot, req)
	if err != nil {
		return fmt.Errorf("ask the api: %w", err)
	}
	var rep natsapi.BotReply
	if err := json.Unmarshal(m.Data, &rep); err != nil {
		return err
	}
	if rep.Error != nil {
		return rep.Error
	}
	fmt.Printf("bot %s created: user_id %s\ntoken: %s\nuse it as: Authorization: Bot %s\n", *bot, rep.UserID, rep.Token, rep.Token)
	return nil
}

// busFlags declares how the CLI finds the deployment's NATS and signs in to it
// (as the operator, the only identity allowed on the admin subjects). Each flag
// also has its GUILDHALL_ variable; call busEnv after declaring every flag.
type bus struct {
	data, natsURL, creds *string
	tls                  ghnats.TLSFiles
}

func busFlags(fs *flag.FlagSet) *bus {
	b := &bus{
		data:    fs.String("data", "./data", "data directory of the running server, to find its NATS URL and the credentials"),
		natsURL: fs.String("nats-url", "", "NATS URL of the deployment; empty reads <data>/nats.url"),
		creds:   fs.String("nats-creds", "", "directory of the bus credentials, of which the CLI uses operator.nk; empty means <data>/creds"),
	}
	fs.StringVar(&b.tls.CA, "nats-tls-ca", "", "PEM CA that signed the NATS servers' certificates")
	fs.StringVar(&b.tls.Cert, "nats-tls-cert", "", "PEM client certificate, when the servers ask for one")
	fs.StringVar(&b.tls.Key, "nats-tls-key", "", "PEM key of --nats-tls-cert")
	return b
}

// connect signs in to the bus as the operator.
func (b *bus) connect() (*natsgo.Conn, error) {
	url := *b.natsURL
	if url == "" {
		raw, err := os.ReadFile(filepath.Join(*b.data, "nats.url"))
		if err != nil {
			return nil, fmt.Errorf("no --nats-url and no running server found in %s: start `guildhall serve` first (%w)", *b.data, err)
		}
		url = strings.TrimSpace(string(raw))
	}
	creds := *b.creds
	if creds == "" {
		creds = filepath.Join(*b.data, "creds")
	}
	opts, err := ghnats.ClientAuth{Dir: creds, TLS: b.tls}.Options(ghnats.RoleOperator)
	if err != nil {
		return nil, err
	}
	nc, err := natsgo.Connect(url, append(opts, natsgo.Name("guildhall-cli"), natsgo.Timeout(3*time.Second))...)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w (is `guildhall serve` running?)", url, err)
	}
	return nc, nil
}

// tokenRevoke revokes one token (--token, or --token - to read it from standard
// input, kept out of the process list) or every token of a user (--user). The
// token is hashed here: it never crosses the bus.
func tokenRevoke(args []string) error {
	fs := flag.NewFlagSet("token revoke", flag.ContinueOnError)
	tok := fs.String("token", "", "the token to revoke (\"Bot \" prefix allowed); - reads it from standard input")
	user := fs.String("user", "", "revoke every token of the account with this username")
	b := busFlags(fs)
	if err := flagsFromEnv(fs, envPrefixed("GUILDHALL_"), os.LookupEnv); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if (*tok == "") == (*user == "") {
		return errors.New("give one of --token TOKEN and --user NAME")
	}
	var req natsapi.RevokeRequest
	if *user != "" {
		req.Username = *user
	} else {
		t := *tok
		if t == "-" {
			b, err := io.ReadAll(io.LimitReader(os.Stdin, 4096))
			if err != nil {
				return err
			}
			t = string(b)
		}
		t = strings.TrimSpace(t)
		t = strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(t, "Bot "), "Bearer "))
		if t == "" {
			return errors.New("empty token")
		}
		req.TokenHash = messaging.HashToken(t)
	}
	nc, err := b.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	body, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := nc.RequestWithContext(ctx, ghnats.SubjectAPIRevoke, body)
	if err != nil {
		return fmt.Errorf("ask the api: %w", err)
	}
	var rep natsapi.RevokeReply
	if err := json.Unmarshal(m.Data, &rep); err != nil {
		return err
	}
	if rep.Error != nil {
		return rep.Error
	}
	if rep.Revoked == 0 && req.TokenHash != "" {
		return errors.New("no such token (revoked already?)")
	}
	fmt.Printf("revoked %d token(s) of user %s; their gateway sessions are closed with 4004\n", rep.Revoked, rep.UserID)
	return nil
}

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
		return errors.New("usage: guildhall token create --bot NAME [--owner USER] | token revoke (--token TOKEN | --token - | --user NAME)  [--nats-url URL] [--data DIR]")
	}
	if args[0] == "revoke" {
		return tokenRevoke(args[1:])
	}
	fs := flag.NewFlagSet("token create", flag.ContinueOnError)
	bot := fs.String("bot", "", "name of the bot account to create")
	owner := fs.String("owner", "", "username of the user who owns the bot: lists it (GET /users/@me/bots), revokes and resets its tokens; empty: the operators alone")
	data, natsURL := busFlags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *bot == "" {
		return errors.New("--bot NAME is required")
	}
	nc, err := connectBus(*natsURL, *data)
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

// busFlags declares how the CLI finds the deployment's NATS.
func busFlags(fs *flag.FlagSet) (data, natsURL *string) {
	data = fs.String("data", envOr("GUILDHALL_DATA", "./data"), "data directory of the running server, to find its NATS URL (env GUILDHALL_DATA)")
	natsURL = fs.String("nats-url", envOr("GUILDHALL_NATS_URL", ""), "NATS URL of the deployment (env GUILDHALL_NATS_URL)")
	return data, natsURL
}

// connectBus connects to natsURL, or to the NATS of the server running on the
// data directory data.
func connectBus(natsURL, data string) (*natsgo.Conn, error) {
	url := natsURL
	if url == "" {
		b, err := os.ReadFile(filepath.Join(data, "nats.url"))
		if err != nil {
			return nil, fmt.Errorf("no --nats-url and no running server found in %s: start `guildhall serve` first (%w)", data, err)
		}
		url = strings.TrimSpace(string(b))
	}
	nc, err := natsgo.Connect(url, natsgo.Name("guildhall-cli"), natsgo.Timeout(3*time.Second))
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
	data, natsURL := busFlags(fs)
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
	nc, err := connectBus(*natsURL, *data)
	if err != nil {
		return err
	}
	defer nc.Close()
	b, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := nc.RequestWithContext(ctx, ghnats.SubjectAPIRevoke, b)
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

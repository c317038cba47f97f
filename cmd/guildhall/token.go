package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/guildhall/guildhall/messaging/natsapi"
	ghnats "github.com/guildhall/guildhall/nats"
	natsgo "github.com/nats-io/nats.go"
)

// token create --bot NAME asks a running Guildhall to mint a bot account over NATS
// (the api's admin endpoint): the embedded store belongs to the running process,
// so the CLI does not open it.
func token(args []string) error {
	if len(args) < 1 || args[0] != "create" {
		return errors.New("usage: guildhall token create --bot NAME [--data DIR] [--nats-url URL] [--nats-creds DIR]")
	}
	fs := flag.NewFlagSet("token create", flag.ContinueOnError)
	bot := fs.String("bot", "", "name of the bot account to create")
	data := fs.String("data", "./data", "data directory of the running server, to find its NATS URL and the credentials")
	natsURL := fs.String("nats-url", "", "NATS URL of the deployment; empty reads <data>/nats.url")
	creds := fs.String("nats-creds", "", "directory of the bus credentials, of which the CLI uses operator.nk; empty means <data>/creds")
	var tlsFiles ghnats.TLSFiles
	fs.StringVar(&tlsFiles.CA, "nats-tls-ca", "", "PEM CA that signed the NATS servers' certificates")
	fs.StringVar(&tlsFiles.Cert, "nats-tls-cert", "", "PEM client certificate, when the servers ask for one")
	fs.StringVar(&tlsFiles.Key, "nats-tls-key", "", "PEM key of --nats-tls-cert")
	if err := flagsFromEnv(fs, envPrefixed("GUILDHALL_"), os.LookupEnv); err != nil {
		return err
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *bot == "" {
		return errors.New("--bot NAME is required")
	}
	url := *natsURL
	if url == "" {
		b, err := os.ReadFile(filepath.Join(*data, "nats.url"))
		if err != nil {
			return fmt.Errorf("no --nats-url and no running server found in %s: start `guildhall serve` first (%w)", *data, err)
		}
		url = strings.TrimSpace(string(b))
	}
	if *creds == "" {
		*creds = filepath.Join(*data, "creds")
	}
	// The operator's identity: the only one allowed on the admin subjects.
	opts, err := ghnats.ClientAuth{Dir: *creds, TLS: tlsFiles}.Options(ghnats.RoleOperator)
	if err != nil {
		return err
	}
	nc, err := natsgo.Connect(url, append(opts, natsgo.Name("guildhall-cli"), natsgo.Timeout(3*time.Second))...)
	if err != nil {
		return fmt.Errorf("connect %s: %w (is `guildhall serve` running?)", url, err)
	}
	defer nc.Close()
	req, _ := json.Marshal(natsapi.BotRequest{Name: *bot})
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

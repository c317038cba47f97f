package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/guildhall/guildhall/messaging/natsapi"
	ghnats "github.com/guildhall/guildhall/nats"
	natsgo "github.com/nats-io/nats.go"
	"golang.org/x/sync/errgroup"
)

// The accounts, guilds and channels a run needs, made over the public REST API as a
// client would, except the accounts themselves: registering goes through bcrypt
// (cost 10) and a per-IP limit of 10 per 10 s, so bench accounts are bot accounts
// minted through the api's admin endpoint on NATS (what `guildhall token create
// --bot` does), which skips both. How long registering takes is measured and
// reported separately (registerSample).

// seed is what a run seeded, kept in the data folder so the next run on the same
// folder skips it.
type seed struct {
	Scenario string       `json:"scenario"`
	Members  []account    `json:"members"`
	Posters  []account    `json:"posters"`
	Guilds   []benchGuild `json:"guilds"`
}

type account struct {
	Token  string `json:"token"`
	UserID string `json:"user_id"`
	Guild  int    `json:"guild"` // index into seed.Guilds
	Joined bool   `json:"joined"`
}

type benchGuild struct {
	ID      string `json:"id"`
	Channel string `json:"channel"`
	Invite  string `json:"invite"`
	Owner   int    `json:"owner"` // index into Members, or -1 when a poster owns it
}

// restClient is a small client of the REST API.
type restClient struct {
	base string
	http *http.Client
	// limited counts 429 answers (each retried after Reset-After).
	limited atomic.Int64
}

func newREST(addr string, local net.Addr, conns int) *restClient {
	d := &net.Dialer{Timeout: 10 * time.Second, LocalAddr: local}
	tr := &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, IdleConnTimeout: time.Minute}
	return &restClient{base: "http://" + addr + "/api/v10", http: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

type httpError struct {
	Status int
	Body   string
}

func (e *httpError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Status, e.Body) }

func (r *restClient) do(ctx context.Context, method, path, token string, body, out any) error {
	for attempt := 0; ; attempt++ {
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, err := http.NewRequestWithContext(ctx, method, r.base+path, rd)
		if err != nil {
			return err
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bot "+token)
		}
		resp, err := r.http.Do(req)
		if err != nil {
			return err
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests && attempt < 20 {
			r.limited.Add(1)
			wait := time.Second
			if f, err := strconv.ParseFloat(resp.Header.Get("X-RateLimit-Reset-After"), 64); err == nil {
				wait = time.Duration(f*float64(time.Second)) + 10*time.Millisecond
			}
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		if resp.StatusCode >= 300 {
			return &httpError{resp.StatusCode, string(raw)}
		}
		if out != nil && len(raw) > 0 {
			return json.Unmarshal(raw, out)
		}
		return nil
	}
}

// mintBots creates n bot accounts over NATS, conc at a time.
func mintBots(ctx context.Context, nc *natsgo.Conn, prefix string, n, conc int, progress func(int)) ([]account, error) {
	out := make([]account, n)
	var done atomic.Int64
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(conc)
	for i := range n {
		g.Go(func() error {
			req, _ := json.Marshal(natsapi.BotRequest{Name: fmt.Sprintf("%s%d", prefix, i)})
			var err error
			for attempt := 0; attempt < 5; attempt++ {
				rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				var m *natsgo.Msg
				m, err = nc.RequestWithContext(rctx, ghnats.SubjectAPIBot, req)
				cancel()
				if err != nil {
					continue
				}
				var rep natsapi.BotReply
				if err = json.Unmarshal(m.Data, &rep); err != nil {
					continue
				}
				if rep.Error != nil {
					err = rep.Error
					continue
				}
				out[i] = account{Token: rep.Token, UserID: rep.UserID.String()}
				progress(int(done.Add(1)))
				return nil
			}
			return fmt.Errorf("mint bot %d: %w", i, err)
		})
	}
	return out, g.Wait()
}

// makeGuild creates a guild owned by token and returns it with its first text
// channel and an invite without limits.
func makeGuild(ctx context.Context, r *restClient, token, name string) (benchGuild, error) {
	var g struct {
		ID string `json:"id"`
	}
	if err := r.do(ctx, "POST", "/guilds", token, map[string]string{"name": name}, &g); err != nil {
		return benchGuild{}, fmt.Errorf("create guild: %w", err)
	}
	var chs []struct {
		ID   string `json:"id"`
		Type int    `json:"type"`
	}
	if err := r.do(ctx, "GET", "/guilds/"+g.ID+"/channels", token, nil, &chs); err != nil {
		return benchGuild{}, fmt.Errorf("channels: %w", err)
	}
	bg := benchGuild{ID: g.ID}
	for _, c := range chs {
		if c.Type == 0 {
			bg.Channel = c.ID
			break
		}
	}
	if bg.Channel == "" {
		return bg, errors.New("the new guild has no text channel")
	}
	var inv struct {
		Code string `json:"code"`
	}
	if err := r.do(ctx, "POST", "/channels/"+bg.Channel+"/invites", token, map[string]any{"max_age": 0, "max_uses": 0}, &inv); err != nil {
		return bg, fmt.Errorf("invite: %w", err)
	}
	bg.Invite = inv.Code
	return bg, nil
}

// joinAll makes every account accept its guild's invite, conc at a time.
func joinAll(ctx context.Context, r *restClient, s *seed, accts []*account, conc int, progress func(int)) error {
	var done atomic.Int64
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(conc)
	for _, a := range accts {
		gd := s.Guilds[a.Guild]
		g.Go(func() error {
			if err := r.do(ctx, "POST", "/invites/"+gd.Invite, a.Token, map[string]any{}, nil); err != nil {
				return fmt.Errorf("accept invite: %w", err)
			}
			a.Joined = true
			progress(int(done.Add(1)))
			return nil
		})
	}
	return g.Wait()
}

// registerSample registers n human accounts one after another through POST
// /auth/register and returns the mean time per registration. The api limits
// registration to 10 per 10 s per client address, so each goes from its own
// source address in 127.0.0.0/8.
func registerSample(ctx context.Context, addr string, n int, runID string) (time.Duration, error) {
	var total time.Duration
	for i := range n {
		src := &net.TCPAddr{IP: net.IPv4(127, 0, 100, byte(10+i))}
		r := newREST(addr, src, 1)
		start := time.Now()
		var out struct {
			Token string `json:"token"`
		}
		err := r.do(ctx, "POST", "/auth/register", "", map[string]string{"username": fmt.Sprintf("reg%s%d", runID, i), "password": "correct horse battery"}, &out)
		total += time.Since(start)
		if err != nil {
			return 0, err
		}
	}
	return total / time.Duration(max(n, 1)), nil
}

func loadSeed(path string) (*seed, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s seed
	return &s, json.Unmarshal(b, &s)
}

func saveSeed(path string, s *seed) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// progressLine rewrites one line on stderr, at most every 200 ms.
type progressLine struct {
	mu   sync.Mutex
	last time.Time
}

func (p *progressLine) printf(force bool, format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !force && time.Since(p.last) < 200*time.Millisecond {
		return
	}
	p.last = time.Now()
	fmt.Fprintf(os.Stderr, "\r\033[K"+format, args...)
	if force {
		fmt.Fprintln(os.Stderr)
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
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

// doSeed makes (or reuses) the accounts and guilds. first is false when the
// servers were restarted for another ramp (no registration sample then).
func (r *run) doSeed(first bool) error {
	o := r.o
	path := filepath.Join(o.data, "seed.json")
	small := o.scenario == "small-rooms"
	needPosters := 0
	if !small && o.scenario != "idle" {
		// Each poster posts at most every other second: the api allows a user 5
		// messages per 5 s in a channel, and posts bunch up when it is slow.
		needPosters = 2*int(math.Ceil(o.rate)) + 2
	}
	s, err := loadSeed(path)
	if err != nil {
		s = &seed{Scenario: map[bool]string{true: "rooms-of-10", false: "one-guild"}[small]}
	}
	api := r.servers[0]
	runID := strconv.FormatInt(time.Now().Unix()%1000000, 36)
	if o.regSample > 0 && first {
		d, err := registerSample(r.ctx, api.Addr, o.regSample, runID)
		if err != nil {
			fmt.Fprintln(os.Stderr, "register sample:", err)
		} else {
			r.res.RegisterMs = float64(d.Microseconds()) / 1000
			fmt.Fprintf(os.Stderr, "POST /auth/register: %.1f ms each (bcrypt); 100,000 users would take %.0f s on one connection\n", r.res.RegisterMs, r.res.RegisterMs*100)
		}
	}
	// Bots are minted on the admin subject: only the operator's identity may.
	nc, _, err := ghnats.ConnectAs(api.NATS, "guildhall-bench", ghnats.RoleOperator, ghnats.ClientAuth{Dir: api.Creds})
	if err != nil {
		return err
	}
	defer nc.Close()
	rest := newREST(api.Addr, nil, max(64, o.seedConc))
	seedStart := time.Now()
	changed := false

	// Members.
	if n := o.sessions - len(s.Members); n > 0 {
		t0 := time.Now()
		bots, err := mintBots(r.ctx, nc, "m"+runID+"x", n, 64, func(d int) {
			r.prog.printf(d == n, "seed: minted %d/%d bot accounts", d, n)
		})
		if err != nil {
			return err
		}
		r.res.MintPerSec = float64(n) / time.Since(t0).Seconds()
		s.Members = append(s.Members, bots...)
		changed = true
	}
	if n := needPosters - len(s.Posters); n > 0 {
		bots, err := mintBots(r.ctx, nc, "p"+runID+"x", n, 16, func(int) {})
		if err != nil {
			return err
		}
		s.Posters = append(s.Posters, bots...)
		changed = true
	}
	// Guilds: one for everybody, owned by the first poster, or one per ten
	// members, owned by its first.
	var joiners []*account
	if small {
		for g := len(s.Guilds); g < len(s.Members)/10; g++ {
			owner := g * 10
			bg, err := makeGuild(r.ctx, rest, s.Members[owner].Token, fmt.Sprintf("bench room %d", g))
			if err != nil {
				return err
			}
			bg.Owner = owner
			s.Guilds = append(s.Guilds, bg)
			for i := owner; i < owner+10; i++ {
				s.Members[i].Guild = g
			}
			s.Members[owner].Joined = true
			r.prog.printf(false, "seed: %d/%d guilds", g+1, len(s.Members)/10)
			changed = true
		}
	} else if len(s.Guilds) == 0 {
		if len(s.Posters) == 0 {
			bots, err := mintBots(r.ctx, nc, "p"+runID+"x", 1, 1, func(int) {})
			if err != nil {
				return err
			}
			s.Posters = bots
		}
		bg, err := makeGuild(r.ctx, rest, s.Posters[0].Token, "bench huge room")
		if err != nil {
			return err
		}
		bg.Owner = -1
		s.Guilds = []benchGuild{bg}
		s.Posters[0].Joined = true
		changed = true
	}
	for i := range s.Members {
		if !s.Members[i].Joined {
			joiners = append(joiners, &s.Members[i])
		}
	}
	for i := range s.Posters {
		if !s.Posters[i].Joined {
			joiners = append(joiners, &s.Posters[i])
		}
	}
	if len(joiners) > 0 {
		t0 := time.Now()
		err := joinAll(r.ctx, rest, s, joiners, o.seedConc, func(d int) {
			r.prog.printf(d == len(joiners), "seed: %d/%d accepted invites (%.0f/s)", d, len(joiners), float64(d)/time.Since(t0).Seconds())
		})
		if err != nil {
			_ = saveSeed(path, s)
			return err
		}
		r.res.JoinPerSec = float64(len(joiners)) / time.Since(t0).Seconds()
		changed = true
	}
	if changed {
		r.res.SeedSeconds = time.Since(seedStart).Seconds()
		if err := saveSeed(path, s); err != nil {
			return err
		}
	}
	r.seed = s
	ch := s.Guilds[0].Channel
	posters := s.Posters
	r.limited = &rest.limited
	r.postTo = func(ctx context.Context, i int, content string) error {
		tok, channel := "", ch
		if small {
			g := i % (o.sessions / 10)
			tok, channel = s.Members[s.Guilds[g].Owner].Token, s.Guilds[g].Channel
		} else {
			tok = posters[i%len(posters)].Token
		}
		return rest.do(ctx, "POST", "/channels/"+channel+"/messages", tok, map[string]string{"content": content}, nil)
	}
	return nil
}

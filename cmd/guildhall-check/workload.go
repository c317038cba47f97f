package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	guildhall "github.com/guildhall/guildhall"
)

// user is an account of the workload, with its session's token.
type user struct {
	id     guildhall.Snowflake
	token  string
	guilds []*guild
}

// guild is a guild of the workload: its channels and members.
type guild struct {
	id       guildhall.Snowflake
	channels []guildhall.Snowflake
	members  []*user
}

// outcome is what a client knows of a request.
type outcome int

const (
	// outcomeOK: the server answered success; the change is acknowledged.
	outcomeOK outcome = iota
	// outcomeFailed: the server refused it (4xx), or no server was reached:
	// the change must not exist.
	outcomeFailed
	// outcomeUnknown: no answer (timeout, connection lost) or a 5xx: the
	// change may or may not exist.
	outcomeUnknown
)

func (o outcome) String() string {
	return [...]string{"ok", "failed", "unknown"}[o]
}

// request is one REST request's record.
type request struct {
	Start, End time.Time
	Outcome    outcome
	Status     int    // HTTP status, 0 without an answer
	Err        string // why it did not succeed
	API        int    // which api answered (the last one tried)
}

// post is one message a client sent: its content is unique in the run.
type post struct {
	request
	N       int
	User    guildhall.Snowflake
	Guild   guildhall.Snowflake
	Channel guildhall.Snowflake
	Content string
	ID      guildhall.Snowflake // when acknowledged
	// Edits by the author, in the order sent (one at a time).
	Edits []*edit
}

// edit is one PATCH of a post's content.
type edit struct {
	request
	Content string
}

// reaction is one PUT of a reaction by a member to a post.
type reaction struct {
	request
	User    guildhall.Snowflake
	Message guildhall.Snowflake
	Channel guildhall.Snowflake
	Emoji   string
}

// restClient talks to the api processes as a Discord client would, with a
// deadline per request.
type restClient struct {
	apis []string // base URLs …/api/v10
	http *http.Client
	next atomic.Uint64
}

func newRESTClient(apis []string, timeout time.Duration) *restClient {
	return &restClient{apis: apis, http: &http.Client{Timeout: timeout, Transport: &http.Transport{
		MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second,
	}}}
}

// do sends one request to api i and classifies the answer. out receives a
// 2xx body when not nil.
func (c *restClient) do(ctx context.Context, api int, method, path, token string, body, out any) request {
	r := request{Start: time.Now(), API: api}
	defer func() { r.End = time.Now() }()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.apis[api]+path, rd)
	if err != nil {
		r.Outcome, r.Err = outcomeFailed, err.Error()
		r.End = time.Now()
		return r
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		r.Err = err.Error()
		r.Outcome = outcomeUnknown
		if errors.Is(err, syscall.ECONNREFUSED) {
			r.Outcome = outcomeFailed // nothing reached an api
		}
		r.End = time.Now()
		return r
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	r.Status = resp.StatusCode
	r.End = time.Now()
	switch {
	case err != nil:
		r.Outcome, r.Err = outcomeUnknown, err.Error()
	case resp.StatusCode >= 500:
		r.Outcome, r.Err = outcomeUnknown, fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(b))
	case resp.StatusCode >= 300:
		r.Outcome, r.Err = outcomeFailed, fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(b))
	default:
		r.Outcome = outcomeOK
		if out != nil && len(b) > 0 {
			if err := json.Unmarshal(b, out); err != nil {
				r.Outcome, r.Err = outcomeUnknown, "answer: "+err.Error()
			}
		}
	}
	return r
}

// send is do on the next api in turn; a request that reached no api (refused
// connection: the process is down) goes to the other one, as a client with
// several endpoints would. The request is the same, so this is no duplicate.
func (c *restClient) send(ctx context.Context, method, path, token string, body, out any) request {
	api := int(c.next.Add(1) % uint64(len(c.apis)))
	r := c.do(ctx, api, method, path, token, body, out)
	if r.Outcome == outcomeFailed && r.Status == 0 && len(c.apis) > 1 {
		start := r.Start
		r = c.do(ctx, (api+1)%len(c.apis), method, path, token, body, out)
		r.Start = start
	}
	return r
}

// must retries a setup request until it succeeds or total passes.
func (c *restClient) must(ctx context.Context, total time.Duration, method, path, token string, body, out any) error {
	deadline := time.Now().Add(total)
	for {
		r := c.send(ctx, method, path, token, body, out)
		if r.Outcome == outcomeOK {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s %s: %s", method, path, r.Err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// workload is the clients' side of a run: the accounts, guilds and sessions it
// set up, and every post, edit and reaction it sent.
type workload struct {
	cfg       Config
	rest      *restClient
	run       string // unique prefix of this run's names and contents
	users     []*user
	guilds    []*guild
	sessions  []*session
	reactions bool // the server has reactions

	mu        sync.Mutex
	posts     []*post
	reactsLog []*reaction
	skipped   int // posts not sent: too many in flight
	inflight  sync.WaitGroup
	stopping  atomic.Bool
	loopDone  chan struct{} // closed when postLoop returns
}

// Reactions the workload adds.
var emojis = []string{"👍", "🎉", "👀"}

// setup registers the users, creates the guilds (two channels each; every user
// in the first guild, every other user in the second too) and probes for
// reactions.
func (w *workload) setup(ctx context.Context) error {
	const total = 2 * time.Minute
	for i := range w.cfg.Users {
		var r struct {
			Token  string              `json:"token"`
			UserID guildhall.Snowflake `json:"user_id"`
		}
		name := fmt.Sprintf("%su%d", w.run, i)
		if err := w.rest.must(ctx, total, "POST", "/auth/register", "", map[string]string{"username": name, "password": "guildhall-check " + name}, &r); err != nil {
			return err
		}
		w.users = append(w.users, &user{id: r.UserID, token: r.Token})
	}
	owner := w.users[0]
	for gi := range 2 {
		var g struct {
			ID guildhall.Snowflake `json:"id"`
		}
		if err := w.rest.must(ctx, total, "POST", "/guilds", owner.token, map[string]string{"name": fmt.Sprintf("%s guild %d", w.run, gi)}, &g); err != nil {
			return err
		}
		gd := &guild{id: g.ID}
		var chans []struct {
			ID   guildhall.Snowflake `json:"id"`
			Type int                 `json:"type"`
		}
		if err := w.rest.must(ctx, total, "GET", "/guilds/"+g.ID.String()+"/channels", owner.token, nil, &chans); err != nil {
			return err
		}
		for _, c := range chans {
			if c.Type == 0 {
				gd.channels = append(gd.channels, c.ID)
			}
		}
		var second struct {
			ID guildhall.Snowflake `json:"id"`
		}
		if err := w.rest.must(ctx, total, "POST", "/guilds/"+g.ID.String()+"/channels", owner.token, map[string]any{"name": "second", "type": 0}, &second); err != nil {
			return err
		}
		gd.channels = append(gd.channels, second.ID)
		var inv struct {
			Code string `json:"code"`
		}
		if err := w.rest.must(ctx, total, "POST", "/channels/"+gd.channels[0].String()+"/invites", owner.token, map[string]any{"max_uses": 0}, &inv); err != nil {
			return err
		}
		for i, u := range w.users {
			if gi == 1 && i%2 == 1 {
				continue
			}
			if u != owner {
				if err := w.rest.must(ctx, total, "POST", "/invites/"+inv.Code, u.token, nil, nil); err != nil {
					return err
				}
			}
			u.guilds = append(u.guilds, gd)
			gd.members = append(gd.members, u)
		}
		w.guilds = append(w.guilds, gd)
	}
	// Reactions, where the server has them (Discord's route answers 204).
	var m struct {
		ID guildhall.Snowflake `json:"id"`
	}
	ch := w.guilds[0].channels[0]
	if err := w.rest.must(ctx, total, "POST", "/channels/"+ch.String()+"/messages", owner.token, map[string]string{"content": w.run + " probe"}, &m); err != nil {
		return err
	}
	r := w.rest.send(ctx, "PUT", reactionPath(ch, m.ID, emojis[0]), owner.token, nil, nil)
	w.reactions = r.Outcome == outcomeOK
	return nil
}

func reactionPath(channel, message guildhall.Snowflake, emoji string) string {
	return "/channels/" + channel.String() + "/messages/" + message.String() + "/reactions/" + url.PathEscape(emoji) + "/@me"
}

// postLoop posts at cfg.Rate, open loop, until ctx ends or stop is called.
func (w *workload) postLoop(ctx context.Context, rng *rand.Rand) {
	defer close(w.loopDone)
	interval := time.Duration(float64(time.Second) / w.cfg.Rate)
	t := time.NewTicker(interval)
	defer t.Stop()
	sem := make(chan struct{}, 512)
	n := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if w.stopping.Load() {
			return
		}
		u := w.users[rng.IntN(len(w.users))]
		g := u.guilds[rng.IntN(len(u.guilds))]
		p := &post{N: n, User: u.id, Guild: g.id, Channel: g.channels[rng.IntN(len(g.channels))],
			Content: fmt.Sprintf("%s p%d", w.run, n)}
		n++
		select {
		case sem <- struct{}{}:
		default:
			w.mu.Lock()
			w.skipped++
			w.mu.Unlock()
			continue
		}
		edits := 0
		if rng.Float64() < w.cfg.EditShare {
			edits = 1 + rng.IntN(2)
		}
		react := w.reactions && rng.Float64() < w.cfg.ReactShare
		var reactor *user
		if react {
			reactor = g.members[rng.IntN(len(g.members))]
		}
		w.inflight.Add(1)
		go func() {
			defer w.inflight.Done()
			defer func() { <-sem }()
			w.send(ctx, u, p, edits, reactor)
		}()
	}
}

// send posts p, then edits it and reacts to it as chosen.
func (w *workload) send(ctx context.Context, u *user, p *post, edits int, reactor *user) {
	var m struct {
		ID guildhall.Snowflake `json:"id"`
	}
	p.request = w.rest.send(ctx, "POST", "/channels/"+p.Channel.String()+"/messages", u.token, map[string]string{"content": p.Content}, &m)
	p.ID = m.ID
	w.mu.Lock()
	w.posts = append(w.posts, p)
	w.mu.Unlock()
	if p.Outcome != outcomeOK {
		return
	}
	if reactor != nil {
		emoji := emojis[rand.IntN(len(emojis))]
		r := &reaction{User: reactor.id, Message: p.ID, Channel: p.Channel, Emoji: emoji}
		r.request = w.rest.send(ctx, "PUT", reactionPath(p.Channel, p.ID, emoji), reactor.token, nil, nil)
		w.mu.Lock()
		w.reactsLog = append(w.reactsLog, r)
		w.mu.Unlock()
	}
	for k := range edits {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(300+rand.IntN(1700)) * time.Millisecond):
		}
		if w.stopping.Load() {
			return
		}
		e := &edit{Content: fmt.Sprintf("%s edit%d", p.Content, k+1)}
		e.request = w.rest.send(ctx, "PATCH", "/channels/"+p.Channel.String()+"/messages/"+p.ID.String(), u.token, map[string]string{"content": e.Content}, nil)
		w.mu.Lock()
		p.Edits = append(p.Edits, e)
		w.mu.Unlock()
	}
}

// stop ends posting and waits for every request in flight.
func (w *workload) stop() {
	w.stopping.Store(true)
	<-w.loopDone
	w.inflight.Wait()
}

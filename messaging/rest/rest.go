// Package rest is Guildhall's REST surface: Discord's HTTP API (the subset
// Guildhall implements, with Discord's JSON shapes, error bodies and rate-limit
// headers) under /api/v9 and /api/v10, plus Guildhall's own register and login.
// It is a thin layer over messaging.Service: parse, authenticate, rate limit, call
// the service, write JSON.
package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
)

// SessionStartLimit is the session_start_limit object of GET /gateway/bot.
type SessionStartLimit struct {
	Total          int `json:"total"`
	Remaining      int `json:"remaining"`
	ResetAfter     int `json:"reset_after"` // milliseconds
	MaxConcurrency int `json:"max_concurrency"`
}

// SessionStartLimiter tells a user how many gateway sessions it may still start
// (the gateway implements it).
type SessionStartLimiter interface {
	SessionStartLimit(ctx context.Context, userID guildhall.Snowflake) SessionStartLimit
}

// PresenceCounter gives a guild's approximate online count (the presence tier
// implements it).
type PresenceCounter interface {
	ApproximatePresenceCount(ctx context.Context, guildID guildhall.Snowflake) (int, error)
}

// Config configures the REST handler. GatewayURL is required; every other field
// documents its zero value.
type Config struct {
	// GatewayURL is what GET /gateway answers, e.g. "ws://127.0.0.1:8080".
	GatewayURL string
	// Sessions answers GET /gateway/bot's session_start_limit. Zero value means
	// fixed numbers: SessionStartTotal remaining of SessionStartTotal,
	// MaxConcurrency.
	Sessions SessionStartLimiter
	// SessionStartTotal: zero value means 1000.
	SessionStartTotal int
	// MaxConcurrency: zero value means 1.
	MaxConcurrency int
	// Presence fills approximate_presence_count of GET /guilds/{id}?with_counts=true.
	// Zero value means the field is omitted.
	Presence PresenceCounter
	// MaxBodyBytes bounds request bodies; larger ones answer 413. Zero value
	// means 64 KiB.
	MaxBodyBytes int64
	// MaxUploadBytes bounds the body of a message post with files
	// (multipart/form-data, files and payload_json together); larger ones answer
	// 413 (40005). Zero value means 25 MiB, Discord's limit.
	MaxUploadBytes int64
	// PublicURL is the api's URL as clients reach it, the base of attachment
	// URLs, e.g. "https://chat.example.com". Zero value means the scheme and Host
	// of the request that uploads the file.
	PublicURL string
	// DownloadLimit bounds attachment downloads per client IP (they carry no
	// token). Zero value means 50 per second.
	DownloadLimit Limit
	// GlobalLimit bounds all requests of one user. Zero value means 50 per second
	// (Discord's global limit).
	GlobalLimit Limit
	// RouteLimit bounds one user's requests to one route and major resource (the
	// channel or guild in the path). Zero value means 10 per second.
	RouteLimit Limit
	// MessageLimit bounds one user's posts to one channel. Zero value means 5 per
	// 5 seconds (Discord's).
	MessageLimit Limit
	// AuthLimit bounds register and login per client IP (RemoteAddr; put a proxy
	// that rewrites it in front if there is one). Zero value means 10 per 10
	// seconds.
	AuthLimit Limit
	// MaxBuckets bounds the rate-limit table; past it, expired and then arbitrary
	// windows are forgotten. Zero value means 100000.
	MaxBuckets int
	// Metrics receives request counts by route and status. Zero value means
	// unregistered metrics.
	Metrics *Metrics
	// Logger for internal errors. Zero value means no logs.
	Logger *slog.Logger
	// Now is the clock. Zero value means time.Now.
	Now func() time.Time
}

// Errors of the HTTP layer that the domain does not define.
var (
	errTooLarge = &guildhall.Error{Status: http.StatusRequestEntityTooLarge, Code: 40005, Message: "Request entity too large"}
)

type handler struct {
	svc     *messaging.Service
	cfg     Config
	lim     *limiter
	metrics *Metrics
	log     *slog.Logger
	now     func() time.Time
}

// route is one endpoint: its pattern, whether it needs a token, its rate limit
// and the function that serves it.
type route struct {
	method, path string
	public       bool   // no token: rate limited per client IP, with limit if set, else AuthLimit (shared)
	major        string // path value naming the rate limit's major resource
	limit        Limit
	serve        func(r *http.Request, u guildhall.User) (int, any, error)
	maxBody      int64 // zero: Config.MaxBodyBytes
	// mux, when set, is the pattern registered instead of path, which Go's
	// ServeMux cannot rank against another route's: DELETE
	// messages/pins/{message_id} against DELETE messages/{message_id}/reactions,
	// each with a literal where the other has a wildcard. It names path's
	// wildcards alike and replaces a literal by a wildcard; requests whose
	// literals differ from path's are not this route's.
	mux string
}

// NewHandler returns the REST API, serving every route under both /api/v9 and
// /api/v10. Unknown paths answer 404 and known paths with another method 405,
// both with Discord's JSON body.
func NewHandler(svc *messaging.Service, cfg Config) http.Handler {
	h := &handler{svc: svc, cfg: cfg, metrics: cfg.Metrics, log: cfg.Logger, now: cfg.Now}
	if h.metrics == nil {
		h.metrics = NewMetrics(nil)
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.cfg.MaxBodyBytes <= 0 {
		h.cfg.MaxBodyBytes = 64 << 10
	}
	if h.cfg.MaxUploadBytes <= 0 {
		h.cfg.MaxUploadBytes = 25 << 20
	}
	h.cfg.DownloadLimit = h.cfg.DownloadLimit.or(Limit{50, time.Second})
	if h.cfg.SessionStartTotal <= 0 {
		h.cfg.SessionStartTotal = 1000
	}
	if h.cfg.MaxConcurrency <= 0 {
		h.cfg.MaxConcurrency = 1
	}
	h.cfg.GlobalLimit = h.cfg.GlobalLimit.or(Limit{50, time.Second})
	h.cfg.RouteLimit = h.cfg.RouteLimit.or(Limit{10, time.Second})
	h.cfg.MessageLimit = h.cfg.MessageLimit.or(Limit{5, 5 * time.Second})
	h.cfg.AuthLimit = h.cfg.AuthLimit.or(Limit{10, 10 * time.Second})
	if h.cfg.MaxBuckets <= 0 {
		h.cfg.MaxBuckets = 100000
	}
	h.lim = newLimiter(h.cfg.MaxBuckets)

	rl := h.cfg.RouteLimit
	routes := []route{
		{method: "POST", path: "/auth/register", public: true, serve: h.register},
		{method: "POST", path: "/auth/login", public: true, serve: h.login},
		{method: "GET", path: "/gateway", public: true, limit: rl, serve: h.gateway}, // public on Discord
		{method: "GET", path: "/gateway/bot", limit: rl, serve: h.gatewayBot},
		{method: "GET", path: "/users/@me", limit: rl, serve: h.me},
		{method: "GET", path: "/users/@me/guilds", limit: rl, serve: h.myGuilds},
		{method: "POST", path: "/guilds", limit: rl, serve: h.createGuild},
		{method: "GET", path: "/guilds/{guild_id}", major: "guild_id", limit: rl, serve: h.guild},
		{method: "GET", path: "/guilds/{guild_id}/channels", major: "guild_id", limit: rl, serve: h.guildChannels},
		{method: "POST", path: "/guilds/{guild_id}/channels", major: "guild_id", limit: rl, serve: h.createChannel},
		{method: "GET", path: "/guilds/{guild_id}/members", major: "guild_id", limit: rl, serve: h.members},
		{method: "GET", path: "/channels/{channel_id}", major: "channel_id", limit: rl, serve: h.channel},
		{method: "POST", path: "/channels/{channel_id}/invites", major: "channel_id", limit: rl, serve: h.createInvite},
		{method: "POST", path: "/invites/{code}", limit: rl, serve: h.acceptInvite},
		{method: "GET", path: "/channels/{channel_id}/messages", major: "channel_id", limit: rl, serve: h.history},
		{method: "POST", path: "/channels/{channel_id}/messages", major: "channel_id", limit: h.cfg.MessageLimit, serve: h.postMessage, maxBody: h.cfg.MaxUploadBytes},
		{method: "GET", path: "/channels/{channel_id}/messages/{message_id}", major: "channel_id", limit: rl, serve: h.getMessage},
		{method: "PATCH", path: "/channels/{channel_id}/messages/{message_id}", major: "channel_id", limit: rl, serve: h.editMessage},
		{method: "DELETE", path: "/channels/{channel_id}/messages/{message_id}", major: "channel_id", limit: rl, serve: h.deleteMessage},
		{method: "POST", path: "/channels/{channel_id}/typing", major: "channel_id", limit: rl, serve: h.typing},
	}
	routes = append(routes, h.tokenRoutes(rl)...)
	routes = append(routes, h.communityRoutes(rl)...)
	routes = append(routes, h.conversationRoutes()...)
	api := http.NewServeMux()
	guarded := map[string]string{} // mux pattern -> the route's path
	var unrouted http.Handler
	for _, rt := range routes {
		if rt.mux == "" {
			api.Handle(rt.method+" "+rt.path, h.wrap(rt))
			continue
		}
		served := h.wrap(rt)
		guarded[rt.method+" "+rt.mux] = rt.path
		api.Handle(rt.method+" "+rt.mux, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !literalsMatch(rt.path, r.URL.Path) {
				unrouted.ServeHTTP(w, r)
				return
			}
			served.ServeHTTP(w, r)
		}))
	}
	// A path that some route serves with another method answers 405, any other
	// 404. (Method-less patterns per path would conflict with the routes: a
	// literal path like members/search against GET members/{user_id}.)
	srv := served{routes: routes, api: api, guarded: guarded}
	notFound := h.fixed("unknown", guildhall.ErrNotFound)
	unrouted = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
			probe := r.Clone(r.Context())
			probe.Method = m
			if name := srv.match(probe); name != "" {
				_, path, _ := strings.Cut(name, " ")
				h.fixed(path, guildhall.ErrMethodNotAllowed).ServeHTTP(w, r)
				return
			}
		}
		notFound.ServeHTTP(w, r)
	})
	api.Handle("/", unrouted)

	root := http.NewServeMux()
	for _, v := range []string{"/api/v9", "/api/v10"} {
		root.Handle(v+"/", http.StripPrefix(v, api))
	}
	root.HandleFunc("GET /attachments/{channel_id}/{attachment_id}/{filename}", h.attachment)
	root.Handle("/", h.fixed("unknown", guildhall.ErrNotFound))
	srv.Handler = root
	return srv
}

// served is the handler NewHandler returns; it keeps the route table for the
// tests that walk every route (export_test.go).
// literalsMatch reports whether path has pattern's segments, wildcards
// ({name}) matching any.
func literalsMatch(pattern, path string) bool {
	for {
		ps, prest, pmore := strings.Cut(strings.TrimPrefix(pattern, "/"), "/")
		s, rest, more := strings.Cut(strings.TrimPrefix(path, "/"), "/")
		if pmore != more || !(strings.HasPrefix(ps, "{") || ps == s) {
			return false
		}
		if !more {
			return true
		}
		pattern, path = prest, rest
	}
}

type served struct {
	http.Handler
	routes  []route
	api     *http.ServeMux    // the routes, without the /api/v* prefix
	guarded map[string]string // see route.mux
}

// match names the route that serves a request to api ("METHOD /path" as the
// route table has it), "" for none.
func (s served) match(r *http.Request) string {
	_, pattern := s.api.Handler(r)
	if pattern == "/" {
		return ""
	}
	if p, ok := s.guarded[pattern]; ok {
		if !literalsMatch(p, r.URL.Path) {
			return ""
		}
		return r.Method + " " + p
	}
	return pattern
}

// statusWriter remembers the status for metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (h *handler) observe(route, method string, w *statusWriter, start time.Time) {
	h.metrics.Requests.WithLabelValues(route, method, strconv.Itoa(w.status)).Inc()
	h.metrics.Latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
}

// fixed answers every request with err (404 and 405).
func (h *handler) fixed(name string, err *guildhall.Error) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w := &statusWriter{ResponseWriter: rw}
		defer h.observe(name, r.Method, w, time.Now())
		writeJSON(w, err.Status, err)
	})
}

// wrap runs the steps every route shares: body limit, authentication, rate
// limits, the route, the JSON answer.
func (h *handler) wrap(rt route) http.Handler {
	bucket := bucketID(rt.method + " " + rt.path)
	name := rt.method + " " + rt.path
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		start := time.Now()
		w := &statusWriter{ResponseWriter: rw}
		defer h.observe(rt.path, r.Method, w, start)
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				h.log.Error("rest: panic", "route", name, "panic", p)
				if w.status == 0 {
					writeJSON(w, 500, guildhall.ErrInternal)
				}
			}
		}()
		limit := h.cfg.MaxBodyBytes
		if rt.maxBody > 0 {
			limit = rt.maxBody
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)

		now := h.now()
		var u guildhall.User
		if rt.public && rt.limit != (Limit{}) {
			if !h.allow(w, "ip:"+clientIP(r)+":"+name, rt.limit, bucket, now, false) {
				return
			}
		} else if rt.public {
			// Register and login share one bucket per client IP.
			if !h.allow(w, "ip:"+clientIP(r), h.cfg.AuthLimit, bucketID("auth"), now, false) {
				return
			}
		} else {
			var err error
			u, err = h.svc.Authenticate(r.Context(), bareToken(r.Header.Get("Authorization")))
			if err != nil {
				h.writeError(w, r, err)
				return
			}
			uid := u.ID.String()
			if !h.allow(w, "g:"+uid, h.cfg.GlobalLimit, "", now, true) {
				return
			}
			key := "r:" + uid + ":" + name
			if rt.major != "" {
				// Keyed by the parsed id: a non-canonical spelling (000<id>, +<id>)
				// is the resource's 404 here and never a bucket of its own.
				id, err := pathID(r, rt.major, unknownMajor(rt.major))
				if err != nil {
					h.writeError(w, r, err)
					return
				}
				key += ":" + id.String()
			}
			if !h.allow(w, key, rt.limit, bucket, now, false) {
				return
			}
		}
		status, body, err := rt.serve(r, u)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		if status == http.StatusNoContent || body == nil {
			w.WriteHeader(status)
			return
		}
		writeJSON(w, status, body)
	})
}

// allow takes one request from a rate-limit bucket and writes the headers; over
// the limit it answers 429 and returns false. The global bucket only speaks when
// it refuses.
func (h *handler) allow(w http.ResponseWriter, key string, lim Limit, bucket string, now time.Time, global bool) bool {
	if lim.unlimited() {
		return true
	}
	remaining, reset, ok := h.lim.take(key, lim, now)
	if !global {
		setRateHeaders(w.Header(), lim, remaining, reset, now, bucket)
	}
	if ok {
		return true
	}
	after := reset.Sub(now)
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(after.Seconds()))))
	if global {
		w.Header().Set("X-RateLimit-Global", "true")
		w.Header().Set("X-RateLimit-Scope", "global")
	} else {
		w.Header().Set("X-RateLimit-Scope", "user")
	}
	writeJSON(w, http.StatusTooManyRequests, rateLimited{
		Message: guildhall.ErrRateLimited.Message, RetryAfter: math.Max(0.001, math.Round(after.Seconds()*1000)/1000), Global: global,
	})
	return false
}

func (h *handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var lt *messaging.LoginThrottledError
	if errors.As(err, &lt) {
		writeThrottled(w, lt.RetryAfter)
		return
	}
	var rl *messaging.RateLimitedError
	if errors.As(err, &rl) {
		writeThrottled(w, rl.RetryAfter)
		return
	}
	var ge *guildhall.Error
	if !errors.As(err, &ge) {
		if r.Context().Err() != nil {
			ge = guildhall.ErrServiceBusy // the client went away; nobody reads this
		} else {
			h.log.Error("rest: internal error", "method", r.Method, "path", r.URL.Path, "err", err)
			ge = guildhall.ErrInternal
		}
	}
	if ge.RetryAfter != nil { // slowmode: Discord's 429 headers too
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(*ge.RetryAfter))))
		w.Header().Set("X-RateLimit-Scope", "user")
	}
	writeJSON(w, ge.Status, ge)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = 500, []byte(`{"message":"500: Internal Server Error","code":0}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// bareToken accepts "Bot <token>", "Bearer <token>" and a bare token.
func bareToken(h string) string {
	h = strings.TrimSpace(h)
	for _, p := range []string{"Bot ", "Bearer "} {
		if len(h) > len(p) && strings.EqualFold(h[:len(p)], p) {
			return strings.TrimSpace(h[len(p):])
		}
	}
	return h
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// decode reads a JSON body into v. Bad JSON answers 50109, a value of the wrong
// type 50035 naming the field, a body over the limit 413. An empty body is bad
// JSON unless optional.
func decode(r *http.Request, v any, optional bool) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errTooLarge
		}
		return guildhall.ErrInvalidJSON
	}
	return decodeJSON(body, v, optional)
}

// decodeJSON is decode of a body already read.
func decodeJSON(body []byte, v any, optional bool) error {
	if len(bytes.TrimSpace(body)) == 0 {
		if optional {
			return nil
		}
		return guildhall.ErrInvalidJSON
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te):
			field := te.Field
			if field == "" {
				return guildhall.ErrInvalidJSON // the body is not an object
			}
			return guildhall.FieldError(field, "BASE_TYPE_INVALID", "Value of type "+te.Value+" is not valid here.")
		case errors.As(err, &se), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
			return guildhall.ErrInvalidJSON
		default: // a field's own decoder refused (a snowflake, permissions)
			return &guildhall.Error{Status: 400, Code: 50035, Message: "Invalid Form Body"}
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return guildhall.ErrInvalidJSON // trailing data
	}
	return nil
}

// unknownMajor is the 404 of a rate limit's major resource.
func unknownMajor(param string) *guildhall.Error {
	switch param {
	case "guild_id":
		return guildhall.ErrUnknownGuild
	case "channel_id":
		return guildhall.ErrUnknownChannel
	}
	return guildhall.ErrNotFound
}

// pathID parses a snowflake path value in its canonical spelling (see
// guildhall.ParseSnowflake); anything else is unknown (notFound).
func pathID(r *http.Request, name string, notFound *guildhall.Error) (guildhall.Snowflake, error) {
	id, err := guildhall.ParseSnowflake(r.PathValue(name))
	if err != nil || id == 0 {
		return 0, notFound
	}
	return id, nil
}

// queryID parses an optional snowflake query parameter.
func queryID(r *http.Request, name string) (guildhall.Snowflake, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	id, err := guildhall.ParseSnowflake(v)
	if err != nil {
		return 0, guildhall.FieldError(name, "NUMBER_TYPE_COERCE", "Value \""+truncate(v, 32)+"\" is not snowflake.")
	}
	return id, nil
}

// queryInt parses an optional integer query parameter within [lo, hi].
func queryInt(r *http.Request, name string, def, lo, hi int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, guildhall.FieldError(name, "NUMBER_TYPE_COERCE", "Value \""+truncate(v, 32)+"\" is not int.")
	}
	if n < lo || n > hi {
		return 0, guildhall.FieldError(name, "NUMBER_TYPE_MAX", "Must be between "+strconv.Itoa(lo)+" and "+strconv.Itoa(hi)+".")
	}
	return n, nil
}

func queryBool(r *http.Request, name string) bool {
	b, _ := strconv.ParseBool(r.URL.Query().Get(name))
	return b
}

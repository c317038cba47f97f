package rest

import (
	"net/http"
	"slices"
	"time"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
)

// JSON shapes that exist only on the REST surface (Discord's).

// meUser is GET /users/@me: the user with the account fields Discord adds.
type meUser struct {
	guildhall.User
	MFAEnabled  bool    `json:"mfa_enabled"`
	Locale      string  `json:"locale"`
	Verified    bool    `json:"verified"`
	Email       *string `json:"email"`
	Flags       int     `json:"flags"`
	PublicFlags int     `json:"public_flags"`
	PremiumType int     `json:"premium_type"`
	Banner      *string `json:"banner"`
	AccentColor *int    `json:"accent_color"`
}

// guildObject is Discord's guild object.
type guildObject struct {
	guildhall.Guild
	Roles                       []guildhall.Role     `json:"roles"`
	Emojis                      []struct{}           `json:"emojis"`
	Stickers                    []struct{}           `json:"stickers"`
	Features                    []string             `json:"features"`
	Splash                      *string              `json:"splash"`
	DiscoverySplash             *string              `json:"discovery_splash"`
	Banner                      *string              `json:"banner"`
	Description                 *string              `json:"description"`
	AFKChannelID                *guildhall.Snowflake `json:"afk_channel_id"`
	AFKTimeout                  int                  `json:"afk_timeout"`
	SystemChannelID             *guildhall.Snowflake `json:"system_channel_id"`
	VerificationLevel           int                  `json:"verification_level"`
	DefaultMessageNotifications int                  `json:"default_message_notifications"`
	ExplicitContentFilter       int                  `json:"explicit_content_filter"`
	MFALevel                    int                  `json:"mfa_level"`
	PremiumTier                 int                  `json:"premium_tier"`
	NSFWLevel                   int                  `json:"nsfw_level"`
	PreferredLocale             string               `json:"preferred_locale"`
	ApproximateMemberCount      *int                 `json:"approximate_member_count,omitempty"`
	ApproximatePresenceCount    *int                 `json:"approximate_presence_count,omitempty"`
}

func newGuildObject(st guildhall.GuildState) guildObject {
	g := st.Guild
	g.MemberCount = 0 // not part of the REST guild object; see with_counts
	roles := st.Roles
	if roles == nil {
		roles = []guildhall.Role{}
	}
	return guildObject{
		Guild: g, Roles: roles, Emojis: []struct{}{}, Stickers: []struct{}{}, Features: []string{},
		AFKTimeout: 300, PreferredLocale: "en-US",
	}
}

// partialGuild is an entry of GET /users/@me/guilds.
type partialGuild struct {
	ID          guildhall.Snowflake   `json:"id"`
	Name        string                `json:"name"`
	Icon        *string               `json:"icon"`
	Banner      *string               `json:"banner"`
	Owner       bool                  `json:"owner"`
	Permissions guildhall.Permissions `json:"permissions"`
	Features    []string              `json:"features"`
}

// inviteGuild and inviteChannel are the partial objects an invite shows.
type inviteGuild struct {
	ID                guildhall.Snowflake `json:"id"`
	Name              string              `json:"name"`
	Icon              *string             `json:"icon"`
	Splash            *string             `json:"splash"`
	Banner            *string             `json:"banner"`
	Description       *string             `json:"description"`
	Features          []string            `json:"features"`
	VerificationLevel int                 `json:"verification_level"`
	NSFWLevel         int                 `json:"nsfw_level"`
}

type inviteChannel struct {
	ID   guildhall.Snowflake `json:"id"`
	Name string              `json:"name"`
	Type int                 `json:"type"`
}

// inviteObject is Discord's invite object with metadata.
type inviteObject struct {
	Type      int             `json:"type"`
	Code      string          `json:"code"`
	Guild     inviteGuild     `json:"guild"`
	Channel   inviteChannel   `json:"channel"`
	Inviter   *guildhall.User `json:"inviter,omitempty"`
	Uses      int             `json:"uses"`
	MaxUses   int             `json:"max_uses"`
	MaxAge    int             `json:"max_age"`
	Temporary bool            `json:"temporary"`
	CreatedAt time.Time       `json:"created_at"`
	ExpiresAt *time.Time      `json:"expires_at"`
	NewMember *bool           `json:"new_member,omitempty"`
}

func newInviteObject(info messaging.InviteInfo) inviteObject {
	o := inviteObject{
		Code:      info.Invite.Code,
		Guild:     inviteGuild{ID: info.Guild.ID, Name: info.Guild.Name, Icon: info.Guild.Icon, Features: []string{}},
		Channel:   inviteChannel{ID: info.Channel.ID, Name: info.Channel.Name, Type: info.Channel.Type},
		Uses:      info.Invite.Uses,
		MaxUses:   info.Invite.MaxUses,
		MaxAge:    info.Invite.MaxAge,
		CreatedAt: info.Invite.CreatedAt,
		ExpiresAt: info.Invite.ExpiresAt,
	}
	if info.Inviter.ID != 0 {
		inviter := info.Inviter
		o.Inviter = &inviter
	}
	return o
}

// Routes.

type credentialsBody struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

func (h *handler) register(r *http.Request, _ guildhall.User) (int, any, error) {
	var b credentialsBody
	if err := decode(r, &b, false); err != nil {
		return 0, nil, err
	}
	s, err := h.svc.Register(r.Context(), messaging.Credentials{Username: b.Username, Password: b.Password})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, s, nil
}

func (h *handler) login(r *http.Request, _ guildhall.User) (int, any, error) {
	var b credentialsBody
	if err := decode(r, &b, false); err != nil {
		return 0, nil, err
	}
	s, err := h.svc.Login(r.Context(), messaging.Credentials{Username: b.Username, Password: b.Password, Addr: clientIP(r)})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, s, nil
}

func (h *handler) gateway(r *http.Request, _ guildhall.User) (int, any, error) {
	return http.StatusOK, map[string]string{"url": h.cfg.GatewayURL}, nil
}

func (h *handler) gatewayBot(r *http.Request, u guildhall.User) (int, any, error) {
	limit := SessionStartLimit{
		Total: h.cfg.SessionStartTotal, Remaining: h.cfg.SessionStartTotal,
		ResetAfter: int((24 * time.Hour).Milliseconds()), MaxConcurrency: h.cfg.MaxConcurrency,
	}
	if h.cfg.Sessions != nil {
		limit = h.cfg.Sessions.SessionStartLimit(r.Context(), u.ID)
	}
	guilds, err := h.svc.UserGuilds(r.Context(), u)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, struct {
		URL               string            `json:"url"`
		Shards            int               `json:"shards"`
		SessionStartLimit SessionStartLimit `json:"session_start_limit"`
	}{h.cfg.GatewayURL, recommendedShards(len(guilds)), limit}, nil
}

// guildsPerShard is how many guilds one shard is recommended for, as Discord
// recommends: one shard per 1,000 guilds.
const guildsPerShard = 1000

// recommendedShards is GET /gateway/bot's shards for a bot in n guilds: at
// least 1.
func recommendedShards(n int) int { return max(1, (n+guildsPerShard-1)/guildsPerShard) }

func (h *handler) me(r *http.Request, u guildhall.User) (int, any, error) {
	return http.StatusOK, meUser{User: u, Locale: "en-US", Verified: true}, nil
}

func (h *handler) myGuilds(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	before, after, limit := p.queryID("before"), p.queryID("after"), p.queryInt("limit", 200, 1, 200)
	if p.err != nil {
		return 0, nil, p.err
	}
	gs, err := h.svc.UserGuilds(r.Context(), u)
	if err != nil {
		return 0, nil, err
	}
	out := make([]partialGuild, 0, min(len(gs), limit))
	for _, g := range gs { // ascending by id
		if (before != 0 && g.Guild.ID >= before) || g.Guild.ID <= after {
			continue
		}
		out = append(out, partialGuild{
			ID: g.Guild.ID, Name: g.Guild.Name, Icon: g.Guild.Icon, Owner: g.Owner,
			Permissions: g.Permissions, Features: []string{},
		})
	}
	if len(out) > limit {
		if before != 0 && after == 0 {
			out = out[len(out)-limit:] // the ones just before `before`
		} else {
			out = out[:limit]
		}
	}
	return http.StatusOK, out, nil
}

func (h *handler) createGuild(r *http.Request, u guildhall.User) (int, any, error) {
	var b struct {
		Name string `json:"name"`
	}
	if err := decode(r, &b, false); err != nil {
		return 0, nil, err
	}
	st, err := h.svc.CreateGuild(r.Context(), u, b.Name)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, newGuildObject(st), nil
}

func (h *handler) guild(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	id := p.guild()
	if p.err != nil {
		return 0, nil, p.err
	}
	st, err := h.svc.Guild(r.Context(), u, id)
	if err != nil {
		return 0, nil, err
	}
	o := newGuildObject(st)
	if queryBool(r, "with_counts") {
		n := st.Guild.MemberCount
		o.ApproximateMemberCount = &n
		if h.cfg.Presence != nil {
			if online, err := h.cfg.Presence.ApproximatePresenceCount(r.Context(), id); err == nil {
				o.ApproximatePresenceCount = &online
			} else {
				h.log.Warn("rest: presence count", "guild", id, "err", err)
			}
		}
	}
	return http.StatusOK, o, nil
}

func (h *handler) guildChannels(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	if id := p.guild(); p.err == nil {
		return ok(h.svc.GuildChannels(r.Context(), u, id))
	}
	return 0, nil, p.err
}

func (h *handler) createChannel(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	id := p.guild()
	var b struct {
		Name                 string                          `json:"name"`
		Type                 *int                            `json:"type"`
		Topic                *string                         `json:"topic"`
		Position             *int                            `json:"position"`
		ParentID             *guildhall.Snowflake            `json:"parent_id"`
		PermissionOverwrites []guildhall.PermissionOverwrite `json:"permission_overwrites"`
		NSFW                 bool                            `json:"nsfw"`
		RateLimitPerUser     int                             `json:"rate_limit_per_user"`
	}
	p.body(&b, false)
	reason := p.reason()
	if p.err != nil {
		return 0, nil, p.err
	}
	nc := messaging.NewChannel{
		Name: b.Name, Type: guildhall.ChannelTypeGuildText, Topic: b.Topic, Position: b.Position,
		ParentID: b.ParentID, PermissionOverwrites: b.PermissionOverwrites, NSFW: b.NSFW,
		RateLimitPerUser: b.RateLimitPerUser, Reason: reason,
	}
	if b.Type != nil {
		nc.Type = *b.Type
	}
	ch, err := h.svc.CreateChannel(r.Context(), u, id, nc)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, ch, nil
}

func (h *handler) members(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	id, limit, after := p.guild(), p.queryInt("limit", 1, 1, 1000), p.queryID("after")
	if p.err != nil {
		return 0, nil, p.err
	}
	ms, err := h.svc.Members(r.Context(), u, id, after, limit)
	if err != nil {
		return 0, nil, err
	}
	for i := range ms {
		ms[i].GuildID = 0 // Discord's member objects here carry no guild_id
		if ms[i].Roles == nil {
			ms[i].Roles = []guildhall.Snowflake{}
		}
	}
	return http.StatusOK, ms, nil
}

func (h *handler) channel(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	id := p.channel()
	if p.err != nil {
		return 0, nil, p.err
	}
	ch, err := h.svc.Channel(r.Context(), u, id)
	if err != nil {
		return h.channelOrDM(r, u, id, err)
	}
	return http.StatusOK, ch, nil
}

func (h *handler) createInvite(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	id := p.channel()
	var b struct {
		MaxAge    *int `json:"max_age"`
		MaxUses   int  `json:"max_uses"`
		Temporary bool `json:"temporary"`
		Unique    bool `json:"unique"`
	}
	p.body(&b, true)
	reason := p.reason()
	if p.err != nil {
		return 0, nil, p.err
	}
	info, err := h.svc.CreateInvite(r.Context(), u, id, messaging.NewInvite{MaxAge: b.MaxAge, MaxUses: b.MaxUses, Reason: reason})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, newInviteObject(info), nil
}

func (h *handler) acceptInvite(r *http.Request, u guildhall.User) (int, any, error) {
	// A body is allowed (Discord's clients send {}) and ignored; reading it
	// enforces the size limit.
	if err := decode(r, &struct{}{}, true); err != nil {
		return 0, nil, err
	}
	info, joined, err := h.svc.AcceptInvite(r.Context(), u, r.PathValue("code"))
	if err != nil {
		return 0, nil, err
	}
	o := newInviteObject(info)
	o.NewMember = &joined
	return http.StatusOK, o, nil
}

func (h *handler) history(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	id := p.channel()
	q := messaging.HistoryQuery{
		Limit: p.queryInt("limit", 50, 1, 100), Before: p.queryID("before"), After: p.queryID("after"),
		Around: p.queryID("around"),
	}
	if p.err != nil {
		return 0, nil, p.err
	}
	if q.After == 0 && r.URL.Query().Get("after") != "" {
		q.After = 1 // after=0: from the oldest; no message has id 0 or 1
	}
	given := slices.DeleteFunc([]string{"before", "after", "around"}, func(k string) bool { return !r.URL.Query().Has(k) })
	if len(given) > 1 {
		return 0, nil, guildhall.FieldError(given[1], "BASE_TYPE_INVALID", "Only one of before, after and around may be given.")
	}
	return ok(h.svc.History(r.Context(), u, id, q))
}

func messageIDs(r *http.Request) (channel, message guildhall.Snowflake, err error) {
	p := newParams(r)
	if channel, message = p.channel(), p.message(); p.err != nil {
		return 0, 0, p.err
	}
	return channel, message, nil
}

func (h *handler) getMessage(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	if ch, id := p.channel(), p.message(); p.err == nil {
		return ok(h.svc.GetMessage(r.Context(), u, ch, id))
	}
	return 0, nil, p.err
}

func (h *handler) deleteMessage(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	if ch, id, reason := p.channel(), p.message(), p.reason(); p.err == nil {
		return noContent(h.svc.DeleteMessageReason(r.Context(), u, ch, id, reason))
	}
	return 0, nil, p.err
}

func (h *handler) typing(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	if id := p.channel(); p.err == nil {
		return noContent(h.svc.Typing(r.Context(), u, id))
	}
	return 0, nil, p.err
}

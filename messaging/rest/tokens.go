package rest

import (
	"net/http"

	guildhall "github.com/guildhall/guildhall"
)

// tokenRoutes: logout, token reset, password change, and an owner's bots (see
// messaging/service_tokens.go). Discord keeps the first three private (its
// clients use POST /auth/logout and PATCH /users/@me with password and
// new_password); its bots are reset in the developer portal.
func (h *handler) tokenRoutes(rl Limit) []route {
	return []route{
		{method: "POST", path: "/auth/logout", limit: rl, serve: h.logout},
		{method: "POST", path: "/auth/token/reset", limit: rl, serve: h.resetToken},
		{method: "PATCH", path: "/users/@me", limit: rl, serve: h.changePassword},
		{method: "GET", path: "/users/@me/bots", limit: rl, serve: h.myBots},
		{method: "DELETE", path: "/users/@me/bots/{bot_id}/tokens", limit: rl, serve: h.revokeBotTokens},
		{method: "POST", path: "/users/@me/bots/{bot_id}/token/reset", limit: rl, serve: h.resetBotToken},
	}
}

func (h *handler) logout(r *http.Request, u guildhall.User) (int, any, error) {
	if err := decode(r, &struct{}{}, true); err != nil {
		return 0, nil, err
	}
	if err := h.svc.Logout(r.Context(), u, bareToken(r.Header.Get("Authorization"))); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

func (h *handler) resetToken(r *http.Request, u guildhall.User) (int, any, error) {
	var b struct {
		Password string `json:"password"`
	}
	if err := decode(r, &b, true); err != nil {
		return 0, nil, err
	}
	s, err := h.svc.ResetToken(r.Context(), u, b.Password, clientIP(r))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, s, nil
}

// changePassword is PATCH /users/@me with password and new_password, the one
// change of the account Guildhall has; it answers the user object.
func (h *handler) changePassword(r *http.Request, u guildhall.User) (int, any, error) {
	var b struct {
		Password    string  `json:"password"`
		NewPassword *string `json:"new_password"`
	}
	if err := decode(r, &b, false); err != nil {
		return 0, nil, err
	}
	if b.NewPassword == nil {
		return 0, nil, guildhall.FieldError("new_password", "BASE_TYPE_REQUIRED", "This field is required")
	}
	if err := h.svc.ChangePassword(r.Context(), u, bareToken(r.Header.Get("Authorization")), b.Password, *b.NewPassword, clientIP(r)); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, meUser{User: u, Locale: "en-US", Verified: true}, nil
}

func (h *handler) myBots(r *http.Request, u guildhall.User) (int, any, error) {
	bots, err := h.svc.Bots(r.Context(), u)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, bots, nil
}

func (h *handler) revokeBotTokens(r *http.Request, u guildhall.User) (int, any, error) {
	id, err := pathID(r, "bot_id", guildhall.ErrUnknownUser)
	if err != nil {
		return 0, nil, err
	}
	if err := h.svc.RevokeBotTokens(r.Context(), u, id); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

func (h *handler) resetBotToken(r *http.Request, u guildhall.User) (int, any, error) {
	id, err := pathID(r, "bot_id", guildhall.ErrUnknownUser)
	if err != nil {
		return 0, nil, err
	}
	if err := decode(r, &struct{}{}, true); err != nil {
		return 0, nil, err
	}
	s, err := h.svc.ResetBotToken(r.Context(), u, id)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, s, nil
}

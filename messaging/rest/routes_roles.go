package rest

import (
	"net/http"

	guildhall "github.com/guildhall/guildhall"
	"github.com/guildhall/guildhall/messaging"
)

// The roles of a guild over REST: list, create, modify, reorder, delete.

// ---- roles

type roleBody struct {
	Name        *string                `json:"name"`
	Permissions *guildhall.Permissions `json:"permissions"`
	Color       *int                   `json:"color"`
	Hoist       *bool                  `json:"hoist"`
	Mentionable *bool                  `json:"mentionable"`
}

func (b roleBody) params() messaging.RoleParams {
	return messaging.RoleParams{Name: b.Name, Permissions: b.Permissions, Color: b.Color, Hoist: b.Hoist, Mentionable: b.Mentionable}
}

func (h *handler) roles(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	if id := p.guild(); p.err == nil {
		return ok(h.svc.GuildRoles(r.Context(), u, id))
	}
	return 0, nil, p.err
}

func (h *handler) role(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	if g, id := p.guild(), p.role(); p.err == nil {
		return ok(h.svc.GuildRole(r.Context(), u, g, id))
	}
	return 0, nil, p.err
}

func (h *handler) createRole(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	id, reason := p.guild(), p.reason()
	var b roleBody
	if p.body(&b, true); p.err != nil {
		return 0, nil, p.err
	}
	return ok(h.svc.CreateRole(r.Context(), u, id, b.params(), reason))
}

func (h *handler) modifyRole(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	g, id, reason := p.guild(), p.role(), p.reason()
	var b roleBody
	if p.body(&b, true); p.err != nil {
		return 0, nil, p.err
	}
	return ok(h.svc.ModifyRole(r.Context(), u, g, id, b.params(), reason))
}

func (h *handler) reorderRoles(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	id, reason := p.guild(), p.reason()
	var b []struct {
		ID       guildhall.Snowflake `json:"id"`
		Position *int                `json:"position"`
	}
	if p.body(&b, false); p.err != nil {
		return 0, nil, p.err
	}
	moves := make([]messaging.RolePosition, len(b))
	for i, m := range b {
		moves[i] = messaging.RolePosition{ID: m.ID, Position: m.Position}
	}
	return ok(h.svc.ReorderRoles(r.Context(), u, id, moves, reason))
}

func (h *handler) deleteRole(r *http.Request, u guildhall.User) (int, any, error) {
	p := newParams(r)
	if g, id, reason := p.guild(), p.role(), p.reason(); p.err == nil {
		return noContent(h.svc.DeleteRole(r.Context(), u, g, id, reason))
	}
	return 0, nil, p.err
}

package rest

import (
	"net/http"

	guildhall "github.com/guildhall/guildhall"
)

// params reads a request's parameters (path ids, the audit-log reason, query
// values, the JSON body) in the order a handler asks for them. The first one
// that fails is kept in err and every later read is skipped, so a handler
// checks err once, after its last read, and the error answered is the first
// bad parameter's, as bufio.Scanner keeps its first error.
type params struct {
	r   *http.Request
	err error
}

func newParams(r *http.Request) *params { return &params{r: r} }

// id is the snowflake path value name; anything else answers notFound.
func (p *params) id(name string, notFound *guildhall.Error) guildhall.Snowflake {
	if p.err != nil {
		return 0
	}
	var id guildhall.Snowflake
	id, p.err = pathID(p.r, name, notFound)
	return id
}

// guild and channel are the two ids nearly every route starts with.
func (p *params) guild() guildhall.Snowflake {
	return p.id("guild_id", guildhall.ErrUnknownGuild)
}

func (p *params) channel() guildhall.Snowflake {
	return p.id("channel_id", guildhall.ErrUnknownChannel)
}

// message, role, user and overwrite are the other path ids. What an unknown
// user_id answers depends on the route (unknown member, ban or user).
func (p *params) message() guildhall.Snowflake {
	return p.id("message_id", guildhall.ErrUnknownMessage)
}

func (p *params) role() guildhall.Snowflake {
	return p.id("role_id", guildhall.ErrUnknownRole)
}

func (p *params) user(unknown *guildhall.Error) guildhall.Snowflake {
	return p.id("user_id", unknown)
}

func (p *params) overwrite() guildhall.Snowflake {
	return p.id("overwrite_id", guildhall.ErrNotFound)
}

// reason is the audit-log reason (see auditReason).
func (p *params) reason() string {
	if p.err != nil {
		return ""
	}
	var reason string
	reason, p.err = auditReason(p.r)
	return reason
}

// queryID is an optional snowflake query parameter, 0 when absent.
func (p *params) queryID(name string) guildhall.Snowflake {
	if p.err != nil {
		return 0
	}
	var id guildhall.Snowflake
	id, p.err = queryID(p.r, name)
	return id
}

// queryInt is an optional integer query parameter within [lo, hi], def when
// absent.
func (p *params) queryInt(name string, def, lo, hi int) int {
	if p.err != nil {
		return 0
	}
	var n int
	n, p.err = queryInt(p.r, name, def, lo, hi)
	return n
}

// body decodes the JSON body into v (see decode); it is not read once an
// earlier parameter failed.
func (p *params) body(v any, optional bool) {
	if p.err != nil {
		return
	}
	p.err = decode(p.r, v, optional)
}

// noContent ends a handler whose service call answers nothing: 204, or the
// call's error.
func noContent(err error) (int, any, error) {
	if err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

// ok ends a handler that answers the service call's result as it is: 200, or
// the call's error.
func ok[T any](v T, err error) (int, any, error) {
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, v, nil
}

package guildhall

import "fmt"

// Error is a client-facing error in Discord's JSON shape: {"code": N, "message": "..."}
// with the HTTP status it is sent with. Gateway errors use close codes instead (see
// package gateway).
type Error struct {
	Status  int    `json:"-"`
	Code    int    `json:"code"`
	Message string `json:"message"`
	// Errors carries per-field details for Invalid Form Body, as Discord does.
	Errors map[string]any `json:"errors,omitempty"`
	// RetryAfter is set on a 429 (seconds), with Global, as Discord's rate-limit
	// body has them.
	RetryAfter *float64 `json:"retry_after,omitempty"`
	Global     *bool    `json:"global,omitempty"`
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s (code %d)", e.Status, e.Message, e.Code) }

// Is matches errors with the same code, so errors.Is(err, ErrUnknownChannel) works on
// copies.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Status == e.Status
}

// RemoteError is an error that crosses NATS: what the api answers a gateway or a
// tool in a reply's Error field. Like JetStream's API errors (a status class and a
// stable err_code), it carries Status, the HTTP status the error has on the REST
// surface, and Code, Discord's JSON error code: together they identify the error,
// and errors.Is matches them against this package's errors
// (errors.Is(rep.Error, ErrUnauthorized)). Message is for people and logs; no
// caller compares it.
type RemoteError struct {
	Status  int    `json:"status"`
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("%d %s (code %d)", e.Status, e.Message, e.Code)
}

// Is matches an *Error or a *RemoteError with the same status and code.
func (e *RemoteError) Is(target error) bool {
	switch t := target.(type) {
	case *Error:
		return t.Status == e.Status && t.Code == e.Code
	case *RemoteError:
		return t.Status == e.Status && t.Code == e.Code
	}
	return false
}

// Remote is e as it crosses NATS.
func (e *Error) Remote() *RemoteError {
	return &RemoteError{Status: e.Status, Code: e.Code, Message: e.Message}
}

// Discord's JSON error codes used by Guildhall.
var (
	ErrUnauthorized     = &Error{Status: 401, Code: 0, Message: "401: Unauthorized"}
	ErrNotFound         = &Error{Status: 404, Code: 0, Message: "404: Not Found"}
	ErrMethodNotAllowed = &Error{Status: 405, Code: 0, Message: "405: Method Not Allowed"}
	ErrUnknownChannel   = &Error{Status: 404, Code: 10003, Message: "Unknown Channel"}
	ErrUnknownGuild     = &Error{Status: 404, Code: 10004, Message: "Unknown Guild"}
	ErrUnknownInvite    = &Error{Status: 404, Code: 10006, Message: "Unknown Invite"}
	ErrUnknownMember    = &Error{Status: 404, Code: 10007, Message: "Unknown Member"}
	ErrUnknownMessage   = &Error{Status: 404, Code: 10008, Message: "Unknown Message"}
	ErrUnknownUser      = &Error{Status: 404, Code: 10013, Message: "Unknown User"}
	ErrMissingAccess    = &Error{Status: 403, Code: 50001, Message: "Missing Access"}
	ErrCannotEditOthers = &Error{Status: 403, Code: 50005, Message: "Cannot edit a message authored by another user"}
	ErrEmptyMessage     = &Error{Status: 400, Code: 50006, Message: "Cannot send an empty message"}
	ErrMissingPerms     = &Error{Status: 403, Code: 50013, Message: "Missing Permissions"}
	ErrInvalidFormBody  = &Error{Status: 400, Code: 50035, Message: "Invalid Form Body"}
	ErrInvalidJSON      = &Error{Status: 400, Code: 50109, Message: "The request body contains invalid JSON."}
	ErrRateLimited      = &Error{Status: 429, Code: 0, Message: "You are being rate limited."}
	ErrUsernameTaken    = &Error{Status: 400, Code: 50035, Message: "Invalid Form Body", Errors: map[string]any{"username": map[string]any{"_errors": []map[string]string{{"code": "USERNAME_ALREADY_TAKEN", "message": "Username is unavailable. Try adding numbers or characters."}}}}}
	ErrInvalidLogin     = &Error{Status: 400, Code: 50035, Message: "Invalid Form Body", Errors: map[string]any{"login": map[string]any{"_errors": []map[string]string{{"code": "INVALID_LOGIN", "message": "Login or password is invalid."}}}}}
	ErrServiceBusy      = &Error{Status: 503, Code: 0, Message: "Service temporarily unavailable, try again"}
	ErrInternal         = &Error{Status: 500, Code: 0, Message: "500: Internal Server Error"}
)

// Discord's codes for running a community: roles, members, bans, pins, invites.
var (
	ErrUnknownRole      = &Error{Status: 404, Code: 10011, Message: "Unknown Role"}
	ErrUnknownBan       = &Error{Status: 404, Code: 10026, Message: "Unknown Ban"}
	ErrMaxPins          = &Error{Status: 400, Code: 30003, Message: "Maximum number of pins reached for the channel (50)"}
	ErrMaxRoles         = &Error{Status: 400, Code: 30005, Message: "Maximum number of guild roles reached (250)"}
	ErrMaxInvites       = &Error{Status: 400, Code: 30016, Message: "Maximum number of invites reached (1000)"}
	ErrBanned           = &Error{Status: 403, Code: 40007, Message: "The user is banned from this guild."}
	ErrBulkDeleteCount  = &Error{Status: 400, Code: 50016, Message: "Provided too few or too many messages to delete. Must provide at least 2 and fewer than 100 messages to delete."}
	ErrInvalidRole      = &Error{Status: 400, Code: 50028, Message: "Invalid Role"}
	ErrBulkDeleteTooOld = &Error{Status: 400, Code: 50034, Message: "You can only bulk delete messages that are under 14 days old."}
	ErrInvalidGuild     = &Error{Status: 400, Code: 50055, Message: "Invalid Guild"}
	ErrFailedToBan      = &Error{Status: 400, Code: 500000, Message: "Failed to ban users"}
)

// Slowmode answers a post inside a channel's rate_limit_per_user: 429 with
// Discord's code 20016 and how long to wait (the body's retry_after, in seconds,
// and the Retry-After header).
func Slowmode(retryAfter float64) *Error {
	global := false
	return &Error{Status: 429, Code: 20016, Message: "This action cannot be performed due to slowmode rate limit.", RetryAfter: &retryAfter, Global: &global}
}

// FieldError returns Invalid Form Body with one field's error, in Discord's nested
// shape {"errors": {"field": {"_errors": [{"code", "message"}]}}}.
func FieldError(field, code, message string) *Error {
	return &Error{Status: 400, Code: 50035, Message: "Invalid Form Body", Errors: map[string]any{
		field: map[string]any{"_errors": []map[string]string{{"code": code, "message": message}}},
	}}
}

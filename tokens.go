package guildhall

// TokenRevocation says which tokens of a user stop working: those whose hashes
// (the SHA-256 of the token, hex, as the store keeps them) are listed, and with
// All every token of the user except Keep. The api publishes one into the
// EVENTS stream after it removed the tokens from the store (logout, token
// reset, password change, a bot's owner or an operator revoking), so that every
// api process drops them from its token cache and every gateway closes their
// sessions with 4004. It never carries a token itself.
type TokenRevocation struct {
	UserID Snowflake `json:"user_id"`
	Hashes []string  `json:"token_hashes,omitempty"`
	All    bool      `json:"all,omitempty"`
	Keep   string    `json:"keep,omitempty"`
}

// Revokes reports whether the token with hash, of user, is revoked.
func (r TokenRevocation) Revokes(user Snowflake, hash string) bool {
	if user != r.UserID {
		return false
	}
	if r.All && hash != r.Keep {
		return true
	}
	for _, h := range r.Hashes {
		if h == hash {
			return true
		}
	}
	return false
}

package natsapi

import (
	"context"
	"encoding/json"

	guildhall "github.com/guildhall/guildhall"
)

// RevokeRequest asks ghnats.SubjectAPIRevoke to revoke one token, named by its
// hash (guildhall's token hash: SHA-256, hex; the CLI hashes the token, which
// never crosses the bus), or every token of the account named Username.
type RevokeRequest struct {
	TokenHash string `json:"token_sha256,omitempty"`
	Username  string `json:"username,omitempty"`
}

// RevokeReply says whose tokens went and how many, or Error. Revoked 0 with no
// error: there was no such token.
type RevokeReply struct {
	UserID  guildhall.Snowflake    `json:"user_id,omitempty"`
	Revoked int                    `json:"revoked"`
	Error   *guildhall.RemoteError `json:"error,omitempty"`
}

func (r *Responder) revoke(ctx context.Context, data []byte) any {
	var req RevokeRequest
	if err := json.Unmarshal(data, &req); err != nil {
		return RevokeReply{Error: guildhall.ErrInvalidJSON.Remote()}
	}
	switch {
	case req.TokenHash != "" && req.Username == "":
		if !guildhall.ValidTokenHash(req.TokenHash) {
			return RevokeReply{Error: guildhall.FieldError("token_sha256", "BASE_TYPE_BAD_LENGTH", "A SHA-256 in hex.").Remote()}
		}
		user, found, err := r.svc.RevokeTokenHash(ctx, req.TokenHash)
		if err != nil {
			return RevokeReply{Error: r.replyError("revoke token", err)}
		}
		if !found {
			return RevokeReply{}
		}
		r.log.Info("token revoked", "user_id", user)
		return RevokeReply{UserID: user, Revoked: 1}
	case req.Username != "" && req.TokenHash == "":
		user, n, err := r.svc.RevokeUserTokens(ctx, req.Username)
		if err != nil {
			return RevokeReply{Error: r.replyError("revoke tokens", err)}
		}
		r.log.Info("tokens revoked", "user_id", user, "count", n)
		return RevokeReply{UserID: user, Revoked: n}
	}
	return RevokeReply{Error: guildhall.FieldError("username", "BASE_TYPE_REQUIRED", "One of token_sha256 and username.").Remote()}
}

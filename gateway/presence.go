package gateway

import "encoding/json"

// Presence and member-list hooks of the gateway (op 3 PRESENCE_UPDATE, op 8
// REQUEST_GUILD_MEMBERS, and a session's start and end). See package presence.

// sessionStarted runs after IDENTIFY succeeded, with the identify's presence field.
func (g *Gateway) sessionStarted(s *Session, presence json.RawMessage) {}

// sessionEnded runs when an identified session's connection closed.
func (g *Gateway) sessionEnded(s *Session) {}

// presenceUpdate handles op 3.
func (g *Gateway) presenceUpdate(s *Session, d json.RawMessage) {}

// requestGuildMembers handles op 8.
func (g *Gateway) requestGuildMembers(s *Session, d json.RawMessage) {}

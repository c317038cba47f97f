package nats

// Token revocations (guildhall.TokenRevocation) travel in the EVENTS stream on a
// subject kind of their own, so that they are durable and ordered, and that only
// what the stream re-published is believed: api processes read them with an
// ordered consumer on SubjectRevocationsIn (nothing is lost across reconnects),
// gateways subscribe to SubjectRevocationsEv. Neither the writer (guild events
// only) nor a session's replay (its guilds' and its user's subjects) sees them.
const (
	// SubjectRevocationsIn filters every revocation in the stream.
	SubjectRevocationsIn = subjectIn + "rv.*"
	// SubjectRevocationsEv is where the stream re-publishes them.
	SubjectRevocationsEv = subjectOut + "rv.*"
)

// RevocationInSubject is where the api publishes a revocation of user's tokens.
func RevocationInSubject(user uint64) string { return subjectIn + "rv." + itoa(user) }

// SubjectAPIRevoke is the operators' endpoint that revokes tokens (`guildhall
// token revoke`): an admin subject, like SubjectAPIBot.
const SubjectAPIRevoke = SubjectAPI + "admin.token.revoke"

// RevocationWatcherPrefix names the ordered consumer each api process reads
// revocations with ({prefix}_{n}): long-lived ephemeral consumers that are not
// replays.
const RevocationWatcherPrefix = "revocations"

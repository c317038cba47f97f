// Package natsapi is the api's NATS request-reply transport, beside the REST
// transport (package rest): what gateways and the CLI ask the api over NATS, so
// that gateways never open the store.
//
//   - responder.go: identify, guild snapshots and bot accounts (Responder, over
//     messaging.Service); replay.go and tick.go: what gateways may not do on
//     the stream themselves (create a replay consumer, publish a tick);
//   - members.go: pages and prefix queries of a guild's members for op 8
//     (MembersResponder, over the store);
//   - endpoints.go: what both share: a queue group, bounded concurrency, a
//     timeout per request, errors in the reply, answers on inboxes only
//     (ghnats.ValidReply).
//
// The subjects are declared in package nats (ghnats.SubjectAPI*); the request and
// reply types gateways use live in the root package.
package natsapi

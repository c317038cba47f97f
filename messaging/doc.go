// Package messaging is the storage and message side of Guildhall: the message service
// that validates, authorizes, assigns snowflakes and publishes events to JetStream
// (service.go), the projection of the event stream it authorizes from without the
// store (projection.go), the beacon that repeats quiet guilds' last sequences for
// gateways (beacon.go), the writer that persists the stream into the store
// (writer.go), history reads, and the Store interface (store.go) with its two
// implementations: the embedded bbolt store (package bolt, the default) and CQL for
// ScyllaDB/Cassandra (package cql).
//
// Guilds, one file each: service_access.go (who may see and do what),
// service_guild.go, service_channels.go, service_members.go, service_invites.go,
// and service_gateway.go (what gateways ask for: Identify, GuildSnapshot).
//
// Conversations, one file each: service_conversation.go (a guild channel or a DM,
// one path for both), service_mentions.go, service_embeds.go,
// service_reactions.go, service_attachments.go with files.go (the object store)
// and sweeper.go (deletes the files no message holds, run by the writer role),
// service_dm.go (how DM events travel), service_readstate.go; the store's side is
// ConversationStore (store_conversations.go).
package messaging

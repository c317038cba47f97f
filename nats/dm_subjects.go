package nats

// DMInSubject is where the api publishes the log copy of an event of DM channel
// id: the copy the writer persists (participants receive theirs on their user
// subjects). TEMPORARY home until nats/subjects.go lands with the gateway rebuild.
func DMInSubject(id uint64) string { return subjectIn + "d." + itoa(id) }

// SubjectInDM matches every DM log subject (the writer's second filter).
const SubjectInDM = "gh.in.d.*"

// ObjectChunkSubject is the subject of the chunks of the object with nuid in
// object store bucket (JetStream's layout: $O.<bucket>.C.<nuid>), for reading
// an object chunk by chunk with direct gets.
func ObjectChunkSubject(bucket, nuid string) string { return "$O." + bucket + ".C." + nuid }

// EphemeralUserSubject carries what user id alone receives and nothing stores:
// typing in a DM.
func EphemeralUserSubject(id uint64) string { return SubjectEphemeral + "u." + itoa(id) }

package nats

import "testing"

// Every subject a builder makes parses back to its kind and id (or node); what
// no builder makes does not parse.
func TestParseSubject(t *testing.T) {
	const id = 1234567890123456789
	for _, tc := range []struct {
		subject string
		want    Subject
	}{
		{GuildInSubject(id), Subject{Kind: SubjectGuildIn, ID: id}},
		{UserInSubject(id), Subject{Kind: SubjectUserIn, ID: id}},
		{TickInSubject("gw-1"), Subject{Kind: SubjectTickIn, Node: "gw-1"}},
		{GuildEventSubject(id), Subject{Kind: SubjectGuildEvent, ID: id}},
		{UserEventSubject(id), Subject{Kind: SubjectUserEvent, ID: id}},
		{TickEventSubject("gw-1"), Subject{Kind: SubjectTickEvent, Node: "gw-1"}},
		{TickEventSubject("42"), Subject{Kind: SubjectTickEvent, Node: "42"}},
		{EphemeralGuildSubject(id), Subject{Kind: SubjectEphemeralGuild, ID: id}},
		{EphemeralUserSubject(id), Subject{Kind: SubjectEphemeralUser, ID: id}},
	} {
		got, ok := ParseSubject(tc.subject)
		if !ok || got != tc.want {
			t.Errorf("ParseSubject(%q) = %+v, %v; want %+v", tc.subject, got, ok, tc.want)
		}
	}
	for _, bad := range []string{
		"", "gh.", "gh.ev.", "gh.ev.g.", "gh.ev.g.x", "gh.ev.g.1.2", "gh.ev.x.1", "gh.ev.t.",
		"gh.eph.u.", "gh.eph.u.x", "gh.eph.t.gw", DMInSubject(id) + ".x", SubjectPresenceCounts, SubjectAPIIdentify, KickSubject("gw"),
		"gh.ev.g.-1", "gh.ev.g.18446744073709551616", "other.ev.g.1",
	} {
		if got, ok := ParseSubject(bad); ok {
			t.Errorf("ParseSubject(%q) = %+v, true; want false", bad, got)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = ParseSubject("gh.ev.g.1234567890123456789") }); n != 0 {
		t.Errorf("ParseSubject allocates %v times; want 0", n)
	}
}

func TestKVSubjects(t *testing.T) {
	s := KVSubject(BucketPresence, "u.42")
	if s != "$KV.gh_presence.u.42" {
		t.Errorf("KVSubject = %q", s)
	}
	if key, ok := KVKey(BucketPresence, s); !ok || key != "u.42" {
		t.Errorf("KVKey(%q) = %q, %v; want u.42", s, key, ok)
	}
	for _, bad := range []string{"$KV.gh_presence.", "$KV.gh_sessions.u.42", "gh.ev.g.1"} {
		if key, ok := KVKey(BucketPresence, bad); ok {
			t.Errorf("KVKey(%q) = %q, true; want false", bad, key)
		}
	}
	if got := KVDirectGetSubject(BucketPresence); got != "$JS.API.DIRECT.GET.KV_gh_presence" {
		t.Errorf("KVDirectGetSubject = %q", got)
	}
	if got := SubjectToken("a.b *c>\td"); got != "a_b__c__d" {
		t.Errorf("SubjectToken = %q", got)
	}
}

package guildhall

import (
	"encoding/json"
	"testing"
	"time"
)

func TestSnowflakeLayout(t *testing.T) {
	at := time.Date(2026, 11, 27, 12, 0, 0, 123e6, time.UTC)
	g := NewSnowflakeGenerator(3, 17)
	g.now = func() time.Time { return at }
	a, b := g.Next(), g.Next()
	if got := a.Time(); !got.Equal(at.Truncate(time.Millisecond)) {
		t.Errorf("Time() = %v; want %v", got, at)
	}
	if w, p := (a>>17)&31, (a>>12)&31; w != 3 || p != 17 {
		t.Errorf("worker, process = %d, %d; want 3, 17", w, p)
	}
	if a&0xFFF != 0 || b&0xFFF != 1 || b <= a {
		t.Errorf("increments = %d, %d; want 0, 1", a&0xFFF, b&0xFFF)
	}
	// Discord's documented example: 175928847299117063 is 2016-04-30 11:18:25.796 UTC.
	if got := Snowflake(175928847299117063).Time(); !got.Equal(time.Date(2016, 4, 30, 11, 18, 25, 796e6, time.UTC)) {
		t.Errorf("Discord's example decodes to %v", got)
	}
}

func TestSnowflakeUniqueUnderPressure(t *testing.T) {
	g := NewSnowflakeGeneratorForNode(1023)
	seen := make(map[Snowflake]bool, 20000)
	var last Snowflake
	for range 20000 { // more than 4096 in one millisecond: the generator must wait
		id := g.Next()
		if seen[id] || id <= last {
			t.Fatalf("id %d repeated or not increasing (last %d)", id, last)
		}
		seen[id], last = true, id
	}
}

func TestSnowflakeClockStepsBack(t *testing.T) {
	now := time.Now()
	g := NewSnowflakeGenerator(0, 0)
	g.now = func() time.Time { return now }
	a := g.Next()
	now = now.Add(-time.Second)
	if b := g.Next(); b <= a {
		t.Fatalf("after the clock stepped back: %d <= %d", b, a)
	}
}

func TestSnowflakeJSON(t *testing.T) {
	var v struct {
		ID Snowflake `json:"id"`
	}
	if err := json.Unmarshal([]byte(`{"id":"175928847299117063"}`), &v); err != nil || v.ID != 175928847299117063 {
		t.Fatalf("unmarshal string = %d, %v", v.ID, err)
	}
	if err := json.Unmarshal([]byte(`{"id":175928847299117063}`), &v); err != nil || v.ID != 175928847299117063 {
		t.Fatalf("unmarshal number = %d, %v", v.ID, err)
	}
	if err := json.Unmarshal([]byte(`{"id":"x1"}`), &v); err == nil {
		t.Fatal("unmarshal of x1 succeeded")
	}
	b, _ := json.Marshal(v)
	if string(b) != `{"id":"175928847299117063"}` {
		t.Fatalf("marshal = %s", b)
	}
	if s, b := Snowflake(0).Bucket(), BucketStart(3); s != 0 || b.Bucket() != 3 || (b-1).Bucket() != 2 {
		t.Fatalf("buckets: %d %d %d", s, b.Bucket(), (b - 1).Bucket())
	}
}

func TestChannelPermissions(t *testing.T) {
	guild := Guild{ID: 1, OwnerID: 10}
	roles := []Role{{ID: 1, Permissions: DefaultEveryonePermissions}, {ID: 2, Name: "staff"}}
	staffOnly := Channel{ID: 5, PermissionOverwrites: []PermissionOverwrite{
		{ID: 1, Type: OverwriteRole, Deny: PermViewChannel},
		{ID: 2, Type: OverwriteRole, Allow: PermViewChannel},
		{ID: 30, Type: OverwriteMember, Allow: PermViewChannel},
	}}
	state := GuildState{Guild: guild, Roles: roles, Channels: []Channel{staffOnly}}
	cases := []struct {
		user  Snowflake
		roles []Snowflake
		want  bool
	}{
		{10, nil, true},            // owner
		{20, nil, false},           // plain member
		{21, []Snowflake{2}, true}, // staff role
		{30, nil, true},            // member overwrite
	}
	for _, c := range cases {
		if got := state.CanView(staffOnly, c.user, c.roles); got != c.want {
			t.Errorf("CanView(user %d, roles %v) = %v; want %v", c.user, c.roles, got, c.want)
		}
	}
}

package guildhall

import (
	"encoding/json"
	"strconv"
	"testing"
)

// One id has one spelling: anything String would not write is refused, so a
// path, a rate-limit key or a JSON field cannot name the same id twice.
func TestParseSnowflakeCanonical(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Snowflake
		ok   bool
	}{
		{"0", 0, true},
		{"1", 1, true},
		{"175928847299117063", 175928847299117063, true},
		{"18446744073709551615", 1<<64 - 1, true},
		{"18446744073709551616", 0, false}, // 2^64
		{"99999999999999999999", 0, false},
		{"000175928847299117063", 0, false},
		{"0175928847299117063", 0, false},
		{"00", 0, false},
		{"+175928847299117063", 0, false},
		{"-1", 0, false},
		{" 1", 0, false},
		{"1 ", 0, false},
		{"1e3", 0, false},
		{"0x10", 0, false},
		{"１２３", 0, false}, // fullwidth digits
		{"", 0, false},
		{"123456789012345678901", 0, false},
	} {
		got, err := ParseSnowflake(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseSnowflake(%q) = %d, %v; want %d, ok %v", c.in, got, err, c.want, c.ok)
		}
	}
	// JSON bodies and gateway payloads go through the same rule.
	var s Snowflake
	for _, in := range []string{`"0123"`, `"+123"`, `"12 "`, `1.0`, `-5`, `"1e3"`} {
		if err := json.Unmarshal([]byte(in), &s); err == nil {
			t.Errorf("json.Unmarshal(%s) into a Snowflake = %d; want an error", in, s)
		}
	}
	for in, want := range map[string]Snowflake{`"123"`: 123, `123`: 123, `null`: 0} {
		s = 7
		if err := json.Unmarshal([]byte(in), &s); err != nil || s != want {
			t.Errorf("json.Unmarshal(%s) = %d, %v; want %d", in, s, err, want)
		}
	}
}

// FuzzParseSnowflake: whatever parses is the canonical spelling of its value,
// and agrees with strconv on the value.
func FuzzParseSnowflake(f *testing.F) {
	for _, s := range []string{"0", "1", "175928847299117063", "18446744073709551615", "18446744073709551616",
		"000123", "+1", "-0", " 1", "1e3", "", "0x1f", "١٢٣"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseSnowflake(s)
		if err != nil {
			if u, perr := strconv.ParseUint(s, 10, 64); perr == nil && strconv.FormatUint(u, 10) == s {
				t.Fatalf("ParseSnowflake(%q) refused the canonical spelling of %d", s, u)
			}
			return
		}
		if v.String() != s {
			t.Fatalf("ParseSnowflake(%q) = %d, whose spelling is %q", s, v, v.String())
		}
		var j Snowflake
		if err := json.Unmarshal([]byte(`"`+s+`"`), &j); err != nil || j != v {
			t.Fatalf("JSON %q = %d, %v; want %d", s, j, err, v)
		}
	})
}

package etf

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// Terms as erlpack (Discord's ETF library) writes and reads them, byte for byte:
// the server's side of each, and what a client's term reads as.
func TestETFTerms(t *testing.T) {
	for _, c := range []struct {
		json, etf string // etf in hex, after the version byte 83
	}{
		{`null`, "73036e696c"},
		{`true`, "730474727565"},
		{`false`, "730566616c7365"},
		{`7`, "6107"},
		{`255`, "61ff"},
		{`256`, "6200000100"},
		{`-1`, "62ffffffff"},
		{`2147483648`, "6e040000000080"},
		{`-2147483649`, "6e040101000080"},
		{`18446744073709551615`, "6e0800ffffffffffffffff"},
		{`1.5`, "463ff8000000000000"},
		{`"hé"`, "6d0000000368c3a9"},
		{`[]`, "6a"},
		{`[1,"a"]`, "6c0000000261016d00000001616a"},
		{`{"op":10,"d":{"heartbeat_interval":41250}}`, "7400000002" + "73026f70" + "610a" + "730164" + "7400000001" + "7312" + hex.EncodeToString([]byte("heartbeat_interval")) + "62" + "0000a122"},
	} {
		got, err := Encode(nil, []byte(c.json))
		if err != nil {
			t.Errorf("Encode(%s): %v", c.json, err)
			continue
		}
		if want := "83" + c.etf; hex.EncodeToString(got) != want {
			t.Errorf("Encode(%s) = %x; want %s", c.json, got, want)
		}
		back, err := Decode(got)
		if err != nil || !sameJSON(t, back, []byte(c.json)) {
			t.Errorf("DecodeClient(%x) = %s, %v; want %s", got, back, err, c.json)
		}
	}
}

// What a client sends: string keys (binaries), snowflakes as integers or
// strings, any of Erlang's number forms; atom keys are refused, as Discord
// refuses them (4002), and so is anything malformed.
func TestETFClientTerms(t *testing.T) {
	bin := func(s string) string {
		return "6d" + hex.EncodeToString([]byte{0, 0, 0, byte(len(s))}) + hex.EncodeToString([]byte(s))
	}
	for _, c := range []struct {
		name, etf, json string
	}{
		{"identify with binary keys", "7400000002" + bin("op") + "6102" + bin("d") + "7400000001" + bin("token") + bin("abc"), `{"op":2,"d":{"token":"abc"}}`},
		{"a snowflake as a small big", "7400000001" + bin("guild_id") + "6e0800" + "1581e97df4102211", `{"guild_id":1234567890123456789}`},
		{"a negative small big", "6e080100000000000000" + "80", `-9223372036854775808`},
		{"an old float", "63" + hex.EncodeToString([]byte("1.50000000000000000000e+00\x00\x00\x00\x00\x00")), `1.5`},
		{"a byte string", "6b0003616263", `"abc"`},
		{"a tuple", "680261016161", `[1,97]`},
		{"nil atom", "73036e696c", `null`},
		{"an atom value", "7305" + hex.EncodeToString([]byte("hello")), `"hello"`},
	} {
		got, err := DecodeClient(mustHex(t, "83"+c.etf))
		if err != nil {
			t.Errorf("%s: DecodeClient: %v", c.name, err)
			continue
		}
		if !sameJSON(t, got, []byte(c.json)) {
			t.Errorf("%s: DecodeClient = %s; want %s", c.name, got, c.json)
		}
	}
	for _, c := range []struct{ name, etf string }{
		{"atom key", "7400000001" + "73026f70" + "6102"},
		{"no version", ""},
		{"wrong version", ""},
		{"truncated binary", "6d00000005616263"},
		{"count past the end", "6cffffffff6a"},
		{"improper list", "6c00000001610161"},
		{"big int over 64 bits", "6e09" + "00" + "010203040506070809"},
		{"trailing bytes", "61016101"},
		{"a pid", "67"},
		{"invalid utf-8 binary", "6d00000001ff"},
		{"NaN", "467ff8000000000001"},
		{"too deep", strings.Repeat("6c00000001", 40) + "6a" + strings.Repeat("6a", 40)},
	} {
		raw := mustHex(t, "83"+c.etf)
		if c.name == "no version" {
			raw = nil
		}
		if c.name == "wrong version" {
			raw = mustHex(t, "826102")
		}
		if got, err := DecodeClient(raw); err == nil {
			t.Errorf("%s: DecodeClient(%x) = %s; want an error", c.name, raw, got)
		}
	}
}

// Every dispatch shape the server sends survives the trip through ETF.
func TestETFRoundTripPayloads(t *testing.T) {
	for _, p := range []string{
		`{"op":0,"t":"READY","s":41,"d":{"v":10,"user":{"id":"1234567890123456789","username":"bot","bot":true,"avatar":null},"guilds":[{"id":"99","unavailable":true}],"session_id":"ab","shard":[0,2],"private_channels":[],"user_settings":{}}}`,
		`{"op":0,"t":"MESSAGE_CREATE","s":7,"d":{"id":"1","content":"héllo <b>&amp;</b> \"quoted\" \u2028","embeds":[],"tts":false,"nonce":123456789012,"edited_timestamp":null}}`,
		`{"op":11,"d":null}`,
		`{"op":9,"d":false}`,
		`{"op":0,"t":"PRESENCE_UPDATE","s":3,"d":{"activities":[{"name":"chess","type":0,"created_at":1767225600123}],"since":-1.25e-3}}`,
		// Conversations' and the community's shapes: READY's DMs and read states,
		// a reply with files, embeds, mentions and reactions, reactions, DMs,
		// acks, pins, bulk deletes, bans, timeouts.
		`{"op":0,"t":"READY","s":40,"d":{"v":10,"private_channels":[{"id":"5","type":1,"last_message_id":null,"recipients":[{"id":"8","username":"bob","avatar":null}],"flags":0}],"read_state":{"version":0,"partial":false,"entries":[{"id":"5","last_message_id":"6","mention_count":2}]}}}`,
		`{"op":0,"t":"MESSAGE_CREATE","s":8,"d":{"id":"10","channel_id":"2","guild_id":"3","author":{"id":"8","username":"bob"},"content":"<@7> 🔥","timestamp":"2026-11-30T12:00:00.123Z","edited_timestamp":null,"tts":false,"mention_everyone":false,"mentions":[{"id":"7","username":"al"}],"mention_roles":["4"],"attachments":[{"id":"11","filename":"pic.png","content_type":"image/png","size":10485760,"url":"http://h/attachments/2/11/pic.png?hm=ab","proxy_url":"http://h/attachments/2/11/pic.png?hm=ab","height":21,"width":37}],"embeds":[{"title":"t","type":"rich","color":16711680,"fields":[{"name":"a","value":"b","inline":true}],"image":{"url":"attachment://pic.png"}}],"pinned":false,"type":19,"flags":4096,"components":[],"reactions":[{"count":2,"count_details":{"burst":0,"normal":2},"me":true,"me_burst":false,"burst_colors":[],"emoji":{"id":null,"name":"👍🏽"}}],"member":{"roles":[],"joined_at":"2026-11-01T00:00:00Z","communication_disabled_until":null},"message_reference":{"message_id":"9","channel_id":"2","guild_id":"3"},"referenced_message":null}}`,
		`{"op":0,"t":"MESSAGE_REACTION_ADD","s":9,"d":{"user_id":"7","channel_id":"2","message_id":"10","guild_id":"3","emoji":{"id":null,"name":"🔥"},"message_author_id":"8","burst":false,"burst_colors":[],"type":0}}`,
		`{"op":0,"t":"CHANNEL_CREATE","s":12,"d":{"id":"5","type":3,"last_message_id":"6","recipients":[],"name":"group","owner_id":"7","flags":0}}`,
		`{"op":0,"t":"MESSAGE_ACK","s":13,"d":{"channel_id":"2","message_id":"10","version":1796040000000000}}`,
		`{"op":0,"t":"CHANNEL_PINS_UPDATE","s":14,"d":{"guild_id":"3","channel_id":"2","last_pin_timestamp":null}}`,
		`{"op":0,"t":"MESSAGE_DELETE_BULK","s":15,"d":{"ids":["10","11"],"channel_id":"2","guild_id":"3"}}`,
		`{"op":0,"t":"GUILD_MEMBER_UPDATE","s":16,"d":{"guild_id":"3","user":{"id":"7"},"roles":["4"],"nick":null,"communication_disabled_until":"2026-12-01T00:00:00Z"}}`,
	} {
		e, err := Encode(nil, []byte(p))
		if err != nil {
			t.Fatalf("Encode(%s): %v", p, err)
		}
		back, err := Decode(e)
		if err != nil || !sameJSON(t, back, []byte(p)) {
			t.Errorf("round trip of %s = %s, %v", p, back, err)
		}
	}
	if _, err := Encode(nil, []byte(`{"a":`)); err == nil {
		t.Error("Encode of broken JSON: no error")
	}
}

// FuzzETFDecode: whatever a client sends, the decoder returns valid JSON or an
// error, never panics, and never makes more than a bounded amount of output.
func FuzzETFDecode(f *testing.F) {
	for _, s := range []string{
		"83740000000273026f70610273016474000000016d00000005746f6b656e6d00000003616263",
		"836c00000002610161026a", "836e080001000000000000", "8363" + hex.EncodeToString([]byte("1.5")),
		"836b0003616263", "83680261016a", "8374000000016d000000016161", "83" + strings.Repeat("6c00000001", 35) + "6a",
	} {
		b, _ := hex.DecodeString(s)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 4096 { // the gateway reads no bigger payload
			return
		}
		out, err := DecodeClient(in)
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("DecodeClient(%x) = %q: not JSON", in, out)
		}
		// Latin-1 byte strings can double in size, escapes up to six times.
		if len(out) > 6*len(in)+16 {
			t.Fatalf("DecodeClient(%x): %d bytes of JSON from %d", in, len(out), len(in))
		}
		// What the decoder accepted, the encoder writes back to an equal value.
		again, err := Encode(nil, out)
		if err != nil {
			t.Fatalf("Encode(%s): %v", out, err)
		}
		back, err := Decode(again)
		if err != nil || !sameJSON(t, back, out) {
			t.Fatalf("re-encoding %s gives %s, %v", out, back, err)
		}
	})
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("hex %q: %v", s, err)
	}
	return b
}

func sameJSON(t testing.TB, a, b []byte) bool {
	t.Helper()
	var x, y any
	da, db := json.NewDecoder(bytes.NewReader(a)), json.NewDecoder(bytes.NewReader(b))
	da.UseNumber()
	db.UseNumber()
	if da.Decode(&x) != nil || db.Decode(&y) != nil {
		return false
	}
	return reflect.DeepEqual(normNumbers(x), normNumbers(y))
}

// normNumbers makes 1.5 and 1.50 equal: numbers compare by value.
func normNumbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		if f, err := v.Float64(); err == nil {
			return f
		}
		return string(v)
	case []any:
		for i := range v {
			v[i] = normNumbers(v[i])
		}
	case map[string]any:
		for k := range v {
			v[k] = normNumbers(v[k])
		}
	}
	return v
}

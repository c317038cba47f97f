package gateway

import (
	"testing"
	"time"
	"unicode/utf8"

	"github.com/guildhall/guildhall/testenv"
)

// FuzzClientPayload sends each input as one client frame to a real gateway (no
// api behind it) and requires an answer from Discord's protocol: a payload
// (a heartbeat ACK, INVALID_SESSION) or a close with a gateway close code
// (4000–4014; WebSocket's own 1007 for text that is not UTF-8), within a few
// seconds. A panic, a dropped connection without a
// close code or silence fails it. The gateway decodes the frame, its opcode and
// the opcode's payload (IDENTIFY, RESUME, presence, member requests) exactly as
// for any client.
func FuzzClientPayload(f *testing.F) {
	for _, s := range []string{
		`{"op":1,"d":null}`, `{"op":1,"d":251}`,
		`{"op":2,"d":{"token":"x","intents":513,"properties":{"os":"linux"}}}`,
		`{"op":2,"d":{"token":"x","intents":-1}}`, `{"op":2,"d":{"token":"","shard":[0]}}`,
		`{"op":6,"d":{"token":"x","session_id":"abc","seq":0}}`, `{"op":6,"d":{"session_id":""}}`,
		`{"op":3,"d":{"status":"online","since":null,"activities":[],"afk":false}}`,
		`{"op":8,"d":{"guild_id":"0123","query":"","limit":0}}`, `{"op":8,"d":{"guild_id":["1","+2"],"user_ids":["1"]}}`,
		`{"op":99}`, `{"op":"1"}`, `{"d":{}}`, `[]`, `{`, `null`, ``, "\xff\xfe", `{"op":1e400}`,
	} {
		f.Add([]byte(s))
	}
	_, url := startGatewayNoAPI(f, Config{
		HeartbeatInterval: time.Hour, APITimeout: 300 * time.Millisecond,
		Limits: LimitsConfig{MaxConnsPerAddr: -1},
	})
	f.Fuzz(func(t *testing.T, payload []byte) {
		c, err := testenv.TryDialGateway(t, url)
		if err != nil {
			// The machine, not the input: a skip locally, a failure in CI.
			testenv.Unavailable(t, "dial: "+err.Error())
		}
		defer c.Drop()
		c.WaitFor(t, "op:10", 5*time.Second)
		if err := c.SendRaw(payload); err != nil {
			return // the client library refused to send it (not UTF-8 text)
		}
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if c.Closed() {
				code, _ := c.WaitClose(time.Second)
				switch {
				case code >= 4000 && code <= 4014:
				case code == 1007 && !utf8.Valid(payload): // WebSocket: text that is not UTF-8
				case code == 1009 && len(payload) > 16<<10: // WebSocket: larger than the read bound
				default:
					t.Fatalf("payload %q: closed with %d; want a gateway close code", payload, code)
				}
				return
			}
			if len(c.All()) > 1 { // HELLO and an answer
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatalf("payload %q: no answer and no close in 5 s", payload)
	})
}

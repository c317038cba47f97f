package presence

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// What others receive of a client's activities is Discord's activity object,
// whatever the client sent: libraries decode it with fixed types.
func TestParseUpdateActivities(t *testing.T) {
	now := time.UnixMilli(1767225600123)
	for _, c := range []struct {
		name, in, want string
	}{
		{"a game, created_at stamped as integer milliseconds",
			`[{"name":"chess","type":0}]`, `[{"name":"chess","type":0,"created_at":1767225600123}]`},
		{"a client's created_at in another shape is replaced",
			`[{"name":"chess","type":0,"created_at":"2026-01-01T00:00:00Z"}]`, `[{"name":"chess","type":0,"created_at":1767225600123}]`},
		{"type defaults to playing", `[{"name":"chess"}]`, `[{"name":"chess","type":0,"created_at":1767225600123}]`},
		{"a stream keeps an http URL",
			`[{"name":"live","type":1,"url":"https://example.org/live"}]`, `[{"name":"live","type":1,"url":"https://example.org/live","created_at":1767225600123}]`},
		{"a URL outside a stream is dropped", `[{"name":"song","type":2,"url":"https://example.org"}]`, `[{"name":"song","type":2,"created_at":1767225600123}]`},
		{"a custom status without a name gets Discord's",
			`[{"type":4,"state":"away for lunch","emoji":{"name":"🍕"}}]`, `[{"name":"Custom Status","type":4,"created_at":1767225600123,"state":"away for lunch","emoji":{"name":"🍕"}}]`},
		{"rich presence fields that fit are kept",
			`[{"name":"chess","type":0,"details":"ranked","state":"move 12","timestamps":{"start":1767225000000},"assets":{"large_image":"x"},"application_id":"1"}]`,
			`[{"name":"chess","type":0,"created_at":1767225600123,"state":"move 12","details":"ranked","timestamps":{"start":1767225000000}}]`},
		{"invalid activities are dropped, valid ones kept",
			`[1,"x",{"type":0},{"name":"","type":0},{"name":"a","type":9},{"name":"a","type":"0"},{"name":7},{"name":"a","state":5},{"name":"ok","type":5}]`,
			`[{"name":"ok","type":5,"created_at":1767225600123}]`},
		{"decorations that are not Discord's are dropped alone",
			`[{"name":"a","timestamps":{"start":"soon"},"emoji":{"name":7}},{"name":"b","emoji":{"name":"x","id":"nope"}}]`,
			`[{"name":"a","type":0,"created_at":1767225600123},{"name":"b","type":0,"created_at":1767225600123,"emoji":{"name":"x"}}]`},
		{"what discordgo's UpdateGameStatus sends",
			`[{"name":"chess","type":0,"created_at":"0001-01-01T00:00:00Z","timestamps":{},"emoji":{"id":"","name":"","roles":null,"user":null,"require_colons":false,"managed":false,"animated":false,"available":false},"party":{},"assets":{},"secrets":{}}]`,
			`[{"name":"chess","type":0,"created_at":1767225600123}]`},
		{"too long a name is invalid", `[{"name":"` + strings.Repeat("é", 129) + `"}]`, `null`},
		{"at most MaxActivities", `[{"name":"1"},{"name":"2"},{"name":"3"},{"name":"4"},{"name":"5"},{"name":"6"},{"name":"7"},{"name":"8"},{"name":"9"}]`,
			`[{"name":"1","type":0,"created_at":1767225600123},{"name":"2","type":0,"created_at":1767225600123},{"name":"3","type":0,"created_at":1767225600123},{"name":"4","type":0,"created_at":1767225600123},{"name":"5","type":0,"created_at":1767225600123},{"name":"6","type":0,"created_at":1767225600123},{"name":"7","type":0,"created_at":1767225600123},{"name":"8","type":0,"created_at":1767225600123}]`},
		{"none", `[]`, `null`},
		{"null", `null`, `null`},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := `{"status":"online","activities":` + c.in + `}`
			u, err := parseUpdate([]byte(in), now)
			if err != nil {
				t.Fatalf("parseUpdate(%s): %v", in, err)
			}
			got := string(u.Activities)
			if got == "" {
				got = "null"
			}
			if got != c.want {
				t.Errorf("parseUpdate(%s).Activities = %s; want %s", in, got, c.want)
			}
		})
	}
	for _, bad := range []string{`{"activities":{"name":"x"}}`, `{"activities":"chess"}`, `{"activities":3}`} {
		if _, err := parseUpdate([]byte(bad), now); err == nil {
			t.Errorf("parseUpdate(%s) = nil error; want ErrInvalidUpdate", bad)
		}
	}
	// What a library decodes: every field with its type.
	u, _ := parseUpdate([]byte(`{"activities":[{"name":"chess","type":1,"url":"http://x.y/z","timestamps":{"start":5,"end":9}}]}`), now)
	var back []struct {
		Name       string `json:"name"`
		Type       int    `json:"type"`
		URL        string `json:"url"`
		CreatedAt  int64  `json:"created_at"`
		Timestamps struct {
			Start, End int64
		} `json:"timestamps"`
	}
	if err := json.Unmarshal(u.Activities, &back); err != nil || len(back) != 1 || back[0].CreatedAt != now.UnixMilli() || back[0].Timestamps.End != 9 {
		t.Errorf("activities %s decode to %+v, %v", u.Activities, back, err)
	}
}

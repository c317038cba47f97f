package rest

import "testing"

func TestRecommendedShards(t *testing.T) {
	for _, c := range []struct{ guilds, want int }{{0, 1}, {1, 1}, {1000, 1}, {1001, 2}, {2500, 3}, {150000, 150}} {
		if got := recommendedShards(c.guilds); got != c.want {
			t.Errorf("recommendedShards(%d) = %d; want %d", c.guilds, got, c.want)
		}
	}
}

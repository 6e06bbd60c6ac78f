package workflow

import (
	"testing"
	"time"
)

func TestDeadline(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	// 23:30 UTC on 2 June is already 3 June in Paris: the default counts
	// from the local day, and ends at local midnight.
	now := time.Date(2026, 6, 2, 23, 30, 0, 0, time.UTC)
	for _, tt := range []struct {
		name   string
		given  Day
		want   time.Time
		passed bool
	}{
		{"default", Day{}, time.Date(2026, 7, 4, 0, 0, 0, 0, paris), false},
		{"given", Day{2026, 7, 15}, time.Date(2026, 7, 16, 0, 0, 0, 0, paris), false},
		{"today is not passed", Day{2026, 6, 3}, time.Date(2026, 6, 4, 0, 0, 0, 0, paris), false},
		{"yesterday in Paris", Day{2026, 6, 2}, time.Date(2026, 6, 3, 0, 0, 0, 0, paris), true},
	} {
		got, passed := Deadline(now, 30, paris, tt.given)
		if !got.Equal(tt.want) || passed != tt.passed {
			t.Errorf("%s: Deadline = %v, %v; want %v, %v", tt.name, got, passed, tt.want, tt.passed)
		}
	}
}

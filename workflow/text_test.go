package workflow

import (
	"strings"
	"testing"
)

func TestClip(t *testing.T) {
	for _, tc := range []struct {
		s    string
		n    int
		want string
	}{
		{"", 3, ""},
		{"abc", 3, "abc"},
		{"abcd", 3, "ab…"},
		{"été", 3, "été"},
		{"étés", 3, "ét…"},
		{"ééé", 2, "é…"},
		{"a", 1, "a"},
		{"ab", 1, "…"},
		{strings.Repeat("é", 10_000_000), 250, strings.Repeat("é", 249) + "…"},
	} {
		if got := Clip(tc.s, tc.n); got != tc.want {
			t.Errorf("Clip(%.20q, %d) = %.20q (%d bytes), want %.20q", tc.s, tc.n, got, len(got), tc.want)
		}
	}
}

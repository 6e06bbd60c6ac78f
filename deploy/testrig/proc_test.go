package testrig

import "testing"

// FreeLoopbackPorts gives distinct ports, free to listen on, below the
// ephemeral range that outgoing connections draw from.
func TestFreeLoopbackPorts(t *testing.T) {
	ports, err := FreeLoopbackPorts(20)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	low := ephemeralLow()
	for _, p := range ports {
		if seen[p] {
			t.Errorf("port %d given twice", p)
		}
		seen[p] = true
		if p < minTestPort || p >= low {
			t.Errorf("port %d outside [%d, %d)", p, minTestPort, low)
		}
		l, err := listenLoopback(p)
		if err != nil {
			t.Errorf("port %d: %v", p, err)
			continue
		}
		l.Close()
	}
}

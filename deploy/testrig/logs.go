package testrig

import (
	"bytes"
	"log/slog"
	"sync"
)

// Logs is a structured log, at debug level, that a test reads while the code under test
// writes it: to wait for an event, or to check that no secret was ever logged.
type Logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Logger writes text records to l.
func (l *Logs) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String is everything logged so far.
func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

package testenv

import (
	"context"
	"log/slog"
	"strings"
	"sync"
)

// Warnings is a slog.Handler that keeps the warnings and errors logged,
// each as "message: err", for tests that check a failure is reported
// with its cause. Use it as slog.New(w).
type Warnings struct {
	mu   sync.Mutex
	seen []string
}

// Enabled takes warnings and errors.
func (w *Warnings) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

// Handle keeps the record's message and its "err" attribute.
func (w *Warnings) Handle(_ context.Context, r slog.Record) error {
	line := r.Message
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			line += ": " + a.Value.String()
		}
		return true
	})
	w.mu.Lock()
	w.seen = append(w.seen, line)
	w.mu.Unlock()
	return nil
}

// WithAttrs returns w: attributes other than "err" are not kept.
func (w *Warnings) WithAttrs([]slog.Attr) slog.Handler { return w }

// WithGroup returns w.
func (w *Warnings) WithGroup(string) slog.Handler { return w }

// Lines returns the warnings kept so far.
func (w *Warnings) Lines() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.seen...)
}

// Contains reports whether a warning contains sub.
func (w *Warnings) Contains(sub string) bool {
	for _, l := range w.Lines() {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}

// Package ratelog keeps a flood of one log message from flooding the log:
// a slog.Handler that passes at most Burst records of each message per
// Interval and counts the rest, which the next record of that message
// reports (attribute "suppressed").
package ratelog

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Defaults of Options.
const (
	DefaultBurst    = 10
	DefaultInterval = 10 * time.Second
	// maxKeys bounds the messages tracked at once; past it, the oldest
	// window is forgotten (its suppressed count is lost, not its records').
	maxKeys = 4096
)

// Options configure a Handler. Zero values mean the defaults.
type Options struct {
	Burst    int           // records of one message per Interval; default DefaultBurst
	Interval time.Duration // default DefaultInterval
	// MinLevel: records below it (debug, say) are not limited.
	MinLevel slog.Level
	Now      func() time.Time // tests; default time.Now
}

// Handler limits the records of each message (by level and text).
type Handler struct {
	next  slog.Handler
	opts  Options
	state *state // shared by the handlers WithAttrs and WithGroup derive
}

type state struct {
	mu      sync.Mutex
	windows map[key]*window
}

type key struct {
	level slog.Level
	msg   string
}

type window struct {
	start      time.Time
	passed     int
	suppressed int
}

// New wraps next.
func New(next slog.Handler, opts Options) *Handler {
	if opts.Burst <= 0 {
		opts.Burst = DefaultBurst
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Handler{next: next, opts: opts, state: &state{windows: map[key]*window{}}}
}

func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < h.opts.MinLevel {
		return h.next.Handle(ctx, r)
	}
	k := key{r.Level, r.Message}
	now := h.opts.Now()
	s := h.state
	s.mu.Lock()
	w := s.windows[k]
	if w == nil {
		if len(s.windows) >= maxKeys {
			s.forgetOldest()
		}
		w = &window{start: now}
		s.windows[k] = w
	}
	if now.Sub(w.start) >= h.opts.Interval {
		w.start, w.passed = now, 0
	}
	if w.passed >= h.opts.Burst {
		w.suppressed++
		s.mu.Unlock()
		return nil
	}
	w.passed++
	suppressed := w.suppressed
	w.suppressed = 0
	s.mu.Unlock()
	if suppressed > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("suppressed", suppressed))
	}
	return h.next.Handle(ctx, r)
}

// forgetOldest drops the window that started first; the caller holds mu.
func (s *state) forgetOldest() {
	var oldest key
	var t time.Time
	for k, w := range s.windows {
		if t.IsZero() || w.start.Before(t) {
			oldest, t = k, w.start
		}
	}
	delete(s.windows, oldest)
}

func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &Handler{next: h.next.WithAttrs(attrs), opts: h.opts, state: h.state}
}

func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name), opts: h.opts, state: h.state}
}

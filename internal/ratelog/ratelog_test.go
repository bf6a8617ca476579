package ratelog_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/myno-bridge/myno/internal/ratelog"
)

func TestFloodOfOneMessage(t *testing.T) {
	var out bytes.Buffer
	now := time.Unix(0, 0)
	log := slog.New(ratelog.New(slog.NewTextHandler(&out, nil), ratelog.Options{Burst: 3, Interval: time.Second, Now: func() time.Time { return now }}))
	for i := range 100000 {
		log.Warn("incomplete description dropped", "uuid", i)
		log.Info("other message", "i", i%2) // its own budget
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d lines, want 3 of each message:\n%s", len(lines), out.String())
	}
	now = now.Add(time.Second)
	out.Reset()
	log.Warn("incomplete description dropped", "uuid", "next")
	if got := out.String(); !strings.Contains(got, "suppressed=99997") || !strings.Contains(got, "uuid=next") {
		t.Errorf("after the interval: %q, want the record and suppressed=99997", got)
	}
	// Debug records are not limited below MinLevel.
	out.Reset()
	dlog := slog.New(ratelog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}), ratelog.Options{Burst: 1, MinLevel: slog.LevelInfo, Now: func() time.Time { return now }}))
	for range 5 {
		dlog.Debug("d")
	}
	if n := strings.Count(out.String(), "msg=d"); n != 5 {
		t.Errorf("%d debug lines, want 5", n)
	}
	// Derived loggers share the budget.
	out.Reset()
	base := slog.New(ratelog.New(slog.NewTextHandler(&out, nil), ratelog.Options{Burst: 2, Now: func() time.Time { return now }}))
	for i := range 10 {
		base.With("conn", i).Warn("refused")
	}
	if n := strings.Count(out.String(), "msg=refused"); n != 2 {
		t.Errorf("%d lines through With, want 2", n)
	}
}

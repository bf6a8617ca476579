package testenv

import (
	"log/slog"
	"os"
)

// Logger is the logger for code under test: silent, so that test output
// stays readable, unless MYNO_TEST_LOG is set, which logs to stderr at
// debug level.
func Logger() *slog.Logger {
	if os.Getenv("MYNO_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

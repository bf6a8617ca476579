package netconf_test

import (
	"io"
	"log/slog"
	"os"
)

// discardLogger keeps test output readable; MYNO_TEST_LOG=1 shows the logs.
func discardLogger() *slog.Logger {
	if os.Getenv("MYNO_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// Package devicetest starts virtual devices for tests of other packages:
// made, enabled (EnableMUP, EnableMUPv1, EnableE2E…), connected and
// bootstrapped, and closed with the test.
package devicetest

import (
	"context"
	"testing"
	"time"

	"github.com/myno-bridge/myno/devices"
)

// Boot makes a device from cfg, runs enable on it, connects it and
// bootstraps it within 20 s; it is closed when the test ends.
func Boot(t testing.TB, cfg devices.Config, enable ...func(*devices.Device) error) *devices.Device {
	t.Helper()
	d, err := devices.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range enable {
		if err := e(d); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := d.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	if err := d.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	return d
}

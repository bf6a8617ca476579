package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mup"
)

// myno device --cert --key --ca runs a device with the E2E channel, and
// myno e2e renew (static mode here; the demo test uses the default
// ephemeral one) replaces its credentials files.
func TestE2ERenewCommand(t *testing.T) {
	url, registered := acceptingBroker(t)
	dir := filepath.Join(t.TempDir(), "ca")
	for _, args := range [][]string{
		{"ca", "init", "--dir", dir},
		{"ca", "issue", "--dir", dir, "--name", "mgr-1", "--role", "manager"},
		{"ca", "issue", "--dir", dir, "--name", "cli-e2e-1", "--role", "device"},
	} {
		if code, out, errOut := runMyno(t, args...); code != 0 {
			t.Fatalf("%v: %d %s %s", args, code, out, errOut)
		}
	}
	desc := filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", "led-color.jsonld")
	certFile, keyFile := filepath.Join(dir, "cli-e2e-1.crt"), filepath.Join(dir, "cli-e2e-1.key")
	device := []string{"device", "--description", desc, "--mqtt-url", url, "--telemetry-interval", "0"}

	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--uuid", "cli-e2e-1", "--cert", certFile}, "go together"},
		{[]string{"--uuid", "someone-else", "--cert", certFile, "--key", keyFile, "--ca", filepath.Join(dir, "ca.crt")}, `is for "cli-e2e-1"`},
		{[]string{"--uuid", "cli-e2e-1", "--count", "2", "--cert", certFile, "--key", keyFile, "--ca", filepath.Join(dir, "ca.crt")}, "not for a fleet"},
	} {
		if code, _, errOut := runMyno(t, append(device, tc.args...)...); code != 2 || !strings.Contains(errOut, tc.msg) {
			t.Errorf("%v: exit %d, %s", tc.args, code, errOut)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"myno"}, append(device, "--uuid", "cli-e2e-1", "--cert", certFile, "--key", keyFile,
			"--ca", filepath.Join(dir, "ca.crt"))...), &out, &errOut)
	}()
	select {
	case <-registered:
	case <-time.After(20 * time.Second):
		t.Fatalf("device not registered:\n%s", errOut.String())
	}
	before, _ := mup.ReadCertificate(certFile)
	code, table, renewErr := runMyno(t, "e2e", "renew", "--ca-dir", dir, "--cert", filepath.Join(dir, "mgr-1.crt"), "--key", filepath.Join(dir, "mgr-1.key"),
		"--mqtt-url", url, "--device", "cli-e2e-1", "--mode", "static")
	after, err := mup.ReadCertificate(certFile)
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 || after.Equal(before) || !regexp.MustCompile(`cli-e2e-1\s+renewed\s+`+after.SerialNumber.Text(16)+`\s+\S+\s+2 msgs`).MatchString(table) {
		t.Fatalf("renew: exit %d\n%s\n%s\ndevice:\n%s", code, table, renewErr, errOut.String())
	}
	if info, err := os.Stat(keyFile); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("renewed key file: %v %v", err, info)
	}
	if !strings.Contains(errOut.String(), "e2e credentials renewed") {
		t.Errorf("the device did not log the renewal:\n%s", errOut.String())
	}
	// Bad manager credentials are a usage error.
	if code, _, errOut := runMyno(t, "e2e", "renew", "--ca-dir", dir, "--cert", certFile, "--key", keyFile, "--mqtt-url", url, "--device", "x"); code != 2 ||
		!strings.Contains(errOut, "role") {
		t.Errorf("device credentials as a manager: exit %d %s", code, errOut)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("device exit %d:\n%s", code, errOut.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("device did not stop")
	}
}

// With no broker at --mqtt-url, myno e2e renew gives up at
// --mqtt-connect-timeout with the cause first ("connection refused"),
// not a bare "context deadline exceeded", having warned at each attempt.
func TestE2ERenewNamesTheBrokersFailure(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	for _, args := range [][]string{
		{"ca", "init", "--dir", dir},
		{"ca", "issue", "--dir", dir, "--name", "mgr-1", "--role", "manager"},
	} {
		if code, out, errOut := runMyno(t, args...); code != 0 {
			t.Fatalf("%v: %d %s %s", args, code, out, errOut)
		}
	}
	dead := "mqtt://127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	code, _, errOut := runMyno(t, "e2e", "renew", "--ca-dir", dir, "--cert", filepath.Join(dir, "mgr-1.crt"), "--key", filepath.Join(dir, "mgr-1.key"),
		"--device", "nobody", "--mqtt-url", dead, "--mqtt-connect-timeout", "1s", "--log-level", "warn", "--quiet")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if !regexp.MustCompile(`myno: e2e renew: broker: mqtt connect ` + regexp.QuoteMeta(dead) + `: .*connection refused \(gave up after \d+ attempts: context deadline exceeded\)`).MatchString(errOut) {
		t.Errorf("the error does not lead with the cause:\n%s", errOut)
	}
	if !strings.Contains(errOut, `level=WARN msg="mqtt connect failed; retrying" broker=`+dead+" attempt=1 err=") {
		t.Errorf("the failed attempts are not warnings:\n%s", errOut)
	}
}

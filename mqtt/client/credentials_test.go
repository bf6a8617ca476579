package client_test

import (
	"strings"
	"testing"

	"github.com/myno-bridge/myno/mqtt/client"
)

// A password never shows in a redacted URL; a URL without one is kept.
func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"mqtt://dev:secret@127.0.0.1:1883": "mqtt://dev:xxxxx@127.0.0.1:1883",
		"mqtts://broker:8883":              "mqtts://broker:8883",
		"mqtt://%zz":                       "(unparsable URL)",
	} {
		if got := client.Redact(in); got != want || strings.Contains(got, "secret") {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// LoadTLS: nothing given is no TLS configuration; a certificate needs its
// key; missing or non-PEM files are errors that name the file's role.
func TestLoadTLSErrors(t *testing.T) {
	if cfg, err := client.LoadTLS("", "", ""); cfg != nil || err != nil {
		t.Fatalf("empty: %v %v", cfg, err)
	}
	for _, tc := range []struct{ ca, cert, key, want string }{
		{"", "cert.pem", "", "both"},
		{"", "", "key.pem", "both"},
		{"/nonexistent/ca.pem", "", "", "broker CA"},
		{"", "/nonexistent/c.pem", "/nonexistent/k.pem", "client certificate"},
	} {
		if _, err := client.LoadTLS(tc.ca, tc.cert, tc.key); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("LoadTLS(%q, %q, %q): %v, want %q", tc.ca, tc.cert, tc.key, err, tc.want)
		}
	}
}

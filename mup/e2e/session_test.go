package e2e

import (
	"bytes"
	"errors"
	"testing"
)

func TestSession(t *testing.T) {
	key := bytes.Repeat([]byte{3}, KeySize)
	mgr, _ := NewSession(key, true)
	dev, _ := NewSession(key, false)
	const topic = "myno/e2e/manager-1/device-1/update"
	m1, _ := mgr.Seal(topic, []byte("new certificate and key"))
	m2, _ := mgr.Seal(topic, []byte("firmware key"))
	if got, err := dev.Open(topic, m1); err != nil || string(got) != "new certificate and key" {
		t.Fatalf("first: %q %v", got, err)
	}
	// A forged sequence number does not authenticate and moves nothing.
	forged := bytes.Clone(m2)
	forged[7] = 0x7f
	if _, err := dev.Open(topic, forged); !errors.Is(err, ErrOpen) {
		t.Errorf("forged sequence: %v", err)
	}
	if got, err := dev.Open(topic, m2); err != nil || string(got) != "firmware key" {
		t.Fatalf("second: %q %v", got, err)
	}
	for name, tc := range map[string]struct {
		s     *Session
		topic string
		msg   []byte
		want  error
	}{
		"replay":                     {dev, topic, m1, ErrReplay},
		"replay of the newest":       {dev, topic, m2, ErrReplay},
		"other topic":                {func() *Session { s, _ := NewSession(key, false); return s }(), topic + "/status", m1, ErrOpen},
		"reflected to its sender":    {func() *Session { s, _ := NewSession(key, true); return s }(), topic, m1, ErrOpen},
		"too short":                  {dev, topic, []byte{1, 2}, ErrOpen},
		"later message, other topic": {dev, "x", func() []byte { m, _ := mgr.Seal(topic, []byte("z")); return m }(), ErrOpen},
	} {
		if _, err := tc.s.Open(tc.topic, tc.msg); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	// Device to manager works the same way.
	st, _ := dev.Seal(topic+"/status", []byte("installed"))
	if got, err := mgr.Open(topic+"/status", st); err != nil || string(got) != "installed" {
		t.Errorf("status: %q %v", got, err)
	}
}

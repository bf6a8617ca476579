package testenv

import (
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/myno-bridge/myno/mqtt/broker"
)

// Embedded is the project's embedded broker (package mqtt/broker) on a
// random loopback port, which a test can restart on the same port. It is
// closed when the test ends.
type Embedded struct {
	t    testing.TB
	cfg  broker.Config
	addr string
	url  string

	mu  sync.Mutex
	cur *broker.Broker
}

// StartEmbedded starts the embedded broker with cfg (Listen, Logger and
// Access are filled in when empty; Access with broker.OpenAccess) and hooks, again after each restart.
func StartEmbedded(t testing.TB, cfg broker.Config, hooks ...mqtt.Hook) *Embedded {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = Logger()
	}
	if cfg.Access == nil {
		// Tests of other things than access control: every client, every
		// topic (the mqtt/broker and bridge tests cover the access control).
		cfg.Access = broker.OpenAccess{}
	}
	// Through Config.Hooks the hooks are in place before the first client
	// connects, also after a restart.
	cfg.Hooks = append(cfg.Hooks, hooks...)
	e := &Embedded{t: t, cfg: cfg}
	e.cur = e.start(cfg.Listen)
	e.addr, e.url = e.cur.Addr(), e.cur.URL()
	t.Cleanup(func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.cur.Close()
	})
	return e
}

// start retries for a while: after a restart the port can still be held
// by the closing listener.
func (e *Embedded) start(listen string) *broker.Broker {
	e.t.Helper()
	cfg := e.cfg
	cfg.Listen = listen
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := broker.Start(cfg)
		if err == nil {
			return b
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("embedded broker on %s: %v", listen, err)
		}
		time.Sleep(20 * time.Millisecond) // the port is not free yet; nothing to wait on
	}
}

// URL is the mqtt:// URL; it stays the same across restarts.
func (e *Embedded) URL() string { return e.url }

// Addr is host:port.
func (e *Embedded) Addr() string { return e.addr }

// Broker is the running broker.
func (e *Embedded) Broker() *broker.Broker {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cur
}

// Restart closes the broker and starts it again on the same port, with
// the same data directory (retained messages and sessions survive when
// cfg.DataDir is set).
func (e *Embedded) Restart() {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cur.Close()
	e.cur = e.start(e.addr)
}

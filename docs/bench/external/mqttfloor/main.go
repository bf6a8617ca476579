// Command mqttfloor measures what a broker allows a firmware transfer,
// for docs/bench/external/firmware.sh (make bench-external, issue 17):
// the floors against which `myno update`'s transfer phase is judged. Two
// MQTT 5 clients of this process (the project's mqtt/client, as myno
// update uses it) talk through the broker, which is another process:
//
//	mqttfloor echo -url mqtt://127.0.0.1:1883 &
//	mqttfloor rtt -url mqtt://127.0.0.1:1883 -runs 500 -echo external
//	    one broker round trip: a 4-byte QoS 0 publish, echoed at QoS 0 by
//	    the other client (a slice and its ack, in stop-and-wait); with
//	    -echo external the echo is `mqttfloor echo`, another process, as
//	    the device is another process than the Update Server
//	mqttfloor raw -url mqtt://127.0.0.1:1883 -slices 147 -size 604 -runs 20
//	    the raw-publish ceiling: the slices published at QoS 1 to a
//	    subscriber, with no application acks, until it has them all
//
// Credentials: -user-a/-password-file-a and -user-b/-password-file-b (the
// client identifiers are the user names), or none for an anonymous broker.
// It prints one JSON line: the median, min and max in microseconds.
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/myno-bridge/myno/mqtt/client"
)

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "rtt" && os.Args[1] != "raw" && os.Args[1] != "echo") {
		fmt.Fprintln(os.Stderr, "usage: mqttfloor rtt|raw|echo [flags]; mqttfloor rtt -h")
		os.Exit(2)
	}
	mode := os.Args[1]
	fs := flag.NewFlagSet(mode, flag.ExitOnError)
	url := fs.String("url", "mqtt://127.0.0.1:1883", "broker URL")
	userA := fs.String("user-a", "", "user name (and client identifier) of the publishing client; empty: anonymous")
	passA := fs.String("password-file-a", "", "password file of -user-a")
	userB := fs.String("user-b", "", "user name (and client identifier) of the subscribing client")
	passB := fs.String("password-file-b", "", "password file of -user-b")
	runs := fs.Int("runs", 20, "measurements")
	nSlices := fs.Int("slices", 147, "raw: slices per transfer (87,800 B at 600 B)")
	size := fs.Int("size", 604, "raw: bytes per slice (600 and MUP's 4-byte index)")
	timeout := fs.Duration("timeout", 30*time.Second, "the whole run (echo: until SIGTERM or SIGINT)")
	echo := fs.String("echo", "local", "rtt: who echoes: local (a second client of this process) or external (mqttfloor echo)")
	_ = fs.Parse(os.Args[2:])
	if mode == "echo" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		if err := runEcho(ctx, *url, login{*userB, *passB, "mqttfloor-b"}); err != nil {
			fmt.Fprintln(os.Stderr, "mqttfloor:", err)
			os.Exit(1)
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	var err error
	var samples []time.Duration
	switch mode {
	case "rtt":
		samples, err = measureRTT(ctx, *url, login{*userA, *passA, "mqttfloor-a"}, login{*userB, *passB, "mqttfloor-b"}, *runs, *echo == "external")
	case "raw":
		samples, err = measureRaw(ctx, *url, login{*userA, *passA, "mqttfloor-a"}, login{*userB, *passB, "mqttfloor-b"}, *runs, *nSlices, *size)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mqttfloor:", err)
		os.Exit(1)
	}
	slices.Sort(samples)
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	out, _ := json.Marshal(map[string]any{"mode": mode, "runs": len(samples),
		"median_us": us(samples[len(samples)/2]), "min_us": us(samples[0]), "max_us": us(samples[len(samples)-1])})
	fmt.Println(string(out))
}

// login is one client's identity; an empty user is anonymous, with
// fallbackID as its client identifier.
type login struct{ user, passwordFile, fallbackID string }

func dial(ctx context.Context, url string, l login, on func(client.Message)) (client.Transport, error) {
	cfg := client.Config{URL: url, ClientID: l.fallbackID, Protocol: client.MQTT5, OnMessage: on,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if l.user != "" {
		pw, err := os.ReadFile(l.passwordFile)
		if err != nil {
			return nil, fmt.Errorf("password of %s: %w", l.user, err)
		}
		cfg.ClientID = l.user
		cfg.Credentials = client.Credentials{Username: l.user, Password: strings.TrimSpace(string(pw))}
	}
	tr, err := client.Dial(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("client %s: %w", cfg.ClientID, err)
	}
	return tr, nil
}

// runEcho answers every ping with a pong until ctx ends; it says "ready"
// on stdout once subscribed.
func runEcho(ctx context.Context, url string, l login) error {
	pings := make(chan []byte, 1)
	b, err := dial(ctx, url, l, func(m client.Message) { pings <- m.Payload })
	if err != nil {
		return err
	}
	defer b.Close(context.Background())
	if err := b.Subscribe(ctx, "bench/floor/ping"); err != nil {
		return err
	}
	fmt.Println("ready")
	echoPings(ctx, b, pings)
	return nil
}

// echoPings publishes each ping back as a pong, from its own goroutine:
// OnMessage must not block.
func echoPings(ctx context.Context, b client.Transport, pings <-chan []byte) {
	for {
		select {
		case p := <-pings:
			_ = b.Publish(ctx, client.Message{Topic: "bench/floor/pong", Payload: p}, 0)
		case <-ctx.Done():
			return
		}
	}
}

// measureRTT times runs ping-pongs between a and an echo through the
// broker: b of this process, or, when external, a running mqttfloor echo.
func measureRTT(ctx context.Context, url string, la, lb login, runs int, external bool) ([]time.Duration, error) {
	pongs := make(chan struct{}, 1)
	a, err := dial(ctx, url, la, func(client.Message) { pongs <- struct{}{} })
	if err != nil {
		return nil, err
	}
	defer a.Close(context.Background())
	if err := a.Subscribe(ctx, "bench/floor/pong"); err != nil {
		return nil, err
	}
	if !external {
		pings := make(chan []byte, 1)
		b, err := dial(ctx, url, lb, func(m client.Message) { pings <- m.Payload })
		if err != nil {
			return nil, err
		}
		defer b.Close(context.Background())
		if err := b.Subscribe(ctx, "bench/floor/ping"); err != nil {
			return nil, err
		}
		ectx, stopEcho := context.WithCancel(ctx)
		echoDone := make(chan struct{})
		defer func() { stopEcho(); <-echoDone }()
		go func() {
			defer close(echoDone)
			echoPings(ectx, b, pings)
		}()
	}
	ping := []byte{0, 0, 0, 0}
	var samples []time.Duration
	for i := -runs / 10; i < runs; i++ { // the first tenth warms up
		start := time.Now()
		if err := a.Publish(ctx, client.Message{Topic: "bench/floor/ping", Payload: ping}, 0); err != nil {
			return nil, err
		}
		select {
		case <-pongs:
		case <-ctx.Done():
			return nil, fmt.Errorf("round trip %d: %w", i, ctx.Err())
		}
		if i >= 0 {
			samples = append(samples, time.Since(start))
		}
	}
	return samples, nil
}

// measureRaw times runs transfers of n slices of size bytes, published by
// a at QoS 1, until b has them all.
func measureRaw(ctx context.Context, url string, la, lb login, runs, n, size int) ([]time.Duration, error) {
	if n <= 0 || size <= 0 {
		return nil, errors.New("-slices and -size must be positive")
	}
	got := make(chan struct{}, n)
	b, err := dial(ctx, url, lb, func(client.Message) { got <- struct{}{} })
	if err != nil {
		return nil, err
	}
	defer b.Close(context.Background())
	if err := b.Subscribe(ctx, "bench/floor/raw"); err != nil {
		return nil, err
	}
	a, err := dial(ctx, url, la, nil)
	if err != nil {
		return nil, err
	}
	defer a.Close(context.Background())
	payloads := make([][]byte, n)
	for i := range payloads {
		payloads[i] = make([]byte, size)
		rand.Read(payloads[i])
	}
	var samples []time.Duration
	for r := -1; r < runs; r++ { // one transfer warms up
		start := time.Now()
		for _, p := range payloads {
			if err := a.Publish(ctx, client.Message{Topic: "bench/floor/raw", Payload: p}, 1); err != nil {
				return nil, err
			}
		}
		for i := range payloads {
			select {
			case <-got:
			case <-ctx.Done():
				return nil, fmt.Errorf("transfer %d: %d of %d slices arrived: %w", r, i, n, ctx.Err())
			}
		}
		if r >= 0 {
			samples = append(samples, time.Since(start))
		}
	}
	return samples, nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/myno-bridge/myno/console"
	"github.com/myno-bridge/myno/mup/e2e"
)

// defaultConsoleAddr is where myno console and the demo's console listen.
const defaultConsoleAddr = "127.0.0.1:8080"

func consoleCommand() *cli.Command {
	return withConfigFile(&cli.Command{
		Name:  "console",
		Usage: "serve the web console: devices, their functions and firmware updates in a browser",
		Description: "A NETCONF client of one or more bridges (--bridge, repeated) in a browser. Users log in with their\n" +
			"NETCONF credentials; the bridges decide what they may do, and the console shows only that.\n" +
			"With --key it runs updates too (MUP and MUP v1), with the Update Server's MQTT credentials.\n" +
			"Serve it over HTTPS with --tls-cert and --tls-key when it is reached from another machine.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "listen", Value: defaultConsoleAddr, Usage: "HTTP(S) `ADDRESS`", Sources: cli.EnvVars("MYNO_CONSOLE_LISTEN")},
			&cli.StringSliceFlag{Name: "bridge", Value: []string{defaultNetconfAddr}, Usage: "bridge NETCONF `ADDRESS`; repeat for several", Sources: cli.EnvVars("MYNO_NETCONF_ADDR")},
			&cli.StringFlag{Name: "metrics-listen", Usage: "`ADDRESS` of /metrics (Prometheus: updates, their phases, E2E handshakes) on a listener of its own, " +
				"unauthenticated: bind it to loopback (\"\": off)", Sources: cli.EnvVars("MYNO_CONSOLE_METRICS_LISTEN")},
			&cli.StringFlag{Name: "history", Usage: "`FILE` that keeps the update history across restarts (JSON lines)", Sources: cli.EnvVars("MYNO_CONSOLE_HISTORY")},
			&cli.StringFlag{Name: "tls-cert", Usage: "certificate `FILE` (PEM): serve HTTPS", Sources: cli.EnvVars("MYNO_CONSOLE_TLS_CERT")},
			&cli.StringFlag{Name: "tls-key", Usage: "key `FILE` (PEM) of --tls-cert", Sources: cli.EnvVars("MYNO_CONSOLE_TLS_KEY")},
			&cli.StringFlag{Name: "key", Usage: "Update Server key `FILE` (PEM or MUP v1 hex): enables updates", Sources: cli.EnvVars("MYNO_UPDATE_SERVER_KEY")},
			&cli.StringFlag{Name: "vendor-key", Usage: "vendor key `FILE`: the update page may sign uploaded images itself (labs: keep the vendor key offline otherwise)", Sources: cli.EnvVars("MYNO_VENDOR_KEY")},
			&cli.StringFlag{Name: "mqtt-url", Value: defaultBrokerURL, Usage: "broker `URL` for the slices", Sources: cli.EnvVars("MYNO_MQTT_URL")},
			&cli.StringFlag{Name: "device-ca", Usage: "CA certificate `FILE` that checks device receipts (default <ca-dir>/ca.crt, when it exists)", Sources: cli.EnvVars("MYNO_DEVICE_CA")},
			&cli.BoolFlag{Name: "e2e", Usage: "add the E2E page, which renews devices' certificates and keys through the broker (needs --ca-dir with ca.key, and the manager's certificate)", Sources: cli.EnvVars("MYNO_CONSOLE_E2E")},
			&cli.StringFlag{Name: "ca-dir", Value: defaultCADir, Usage: "E2E CA `DIR` (ca.crt, ca.key; devices' <uuid>.crt are shown)", Sources: cli.EnvVars("MYNO_CA_DIR")},
			&cli.StringFlag{Name: "e2e-cert", Usage: "manager certificate `FILE` (default <ca-dir>/manager.crt)", Sources: cli.EnvVars("MYNO_E2E_CERT")},
			&cli.StringFlag{Name: "e2e-key", Usage: "manager key `FILE` (default <ca-dir>/manager.key)", Sources: cli.EnvVars("MYNO_E2E_KEY")},
			&cli.StringFlag{Name: "e2e-prefix", Value: e2e.DefaultPrefix, Usage: "E2E topic `PREFIX`", Sources: cli.EnvVars("MYNO_E2E_PREFIX")},
			logLevelFlag("info"),
		}, append(hostKeyFlags(), mqttAuthFlags()...)...),
		Action: runConsole,
	})
}

func runConsole(ctx context.Context, cmd *cli.Command) error {
	log := newLogger(cmd)
	hostKey, err := hostKeyCallback(cmd, cmd.Root().ErrWriter)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("console: %w", err)}
	}
	cfg := console.Config{Bridges: cmd.StringSlice("bridge"), HostKey: hostKey, Logger: log, HistoryFile: cmd.String("history"),
		MetricsListen: cmd.String("metrics-listen")}
	if f := cmd.String("key"); f != "" {
		if cfg.Update.ServerKey, err = readSigningKey(f); err != nil {
			return &exitError{code: 2, err: fmt.Errorf("console: --key: %w", err)}
		}
		if cfg.Update.Credentials, err = mqttCredentials(cmd); err != nil {
			return &exitError{code: 2, err: fmt.Errorf("console: %w", err)}
		}
		cfg.Update.MQTTURL = cmd.String("mqtt-url")
		if f := cmd.String("vendor-key"); f != "" {
			if cfg.Update.VendorKey, err = readSigningKey(f); err != nil {
				return &exitError{code: 2, err: fmt.Errorf("console: --vendor-key: %w", err)}
			}
		}
		if cfg.Update.DeviceCA, err = deviceCA(cmd); err != nil {
			return &exitError{code: 2, err: fmt.Errorf("console: %w", err)}
		}
	}
	if cmd.Bool("e2e") {
		creds, err := mqttCredentials(cmd)
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("console: %w", err)}
		}
		m, tr, err := startManager(ctx, managerOptions{caDir: cmd.String("ca-dir"), certFile: cmd.String("e2e-cert"), keyFile: cmd.String("e2e-key"), withCAKey: true,
			prefix: cmd.String("e2e-prefix"), mode: string(e2e.Ephemeral), validity: 365 * 24 * time.Hour, mqttURL: cmd.String("mqtt-url"), credentials: creds}, log)
		if err != nil {
			return prefixed("console --e2e", err)
		}
		defer tr.Close(context.Background())
		cfg.E2E = console.E2ESettings{Manager: m, CertDir: cmd.String("ca-dir")}
	}
	certFile, keyFile := cmd.String("tls-cert"), cmd.String("tls-key")
	if (certFile == "") != (keyFile == "") {
		return &exitError{code: 2, err: errors.New("console: --tls-cert and --tls-key go together")}
	}
	cfg.Secure = certFile != ""
	ln, err := net.Listen("tcp", cmd.String("listen"))
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("console: %w", err)}
	}
	scheme := "http"
	if cfg.Secure {
		scheme = "https"
	}
	c, err := console.New(cfg)
	if err != nil {
		ln.Close()
		code := 2
		if _, listen := errors.AsType[*net.OpError](err); listen { // --metrics-listen
			code = 1
		}
		return &exitError{code: code, err: err}
	}
	fmt.Fprintf(cmd.Root().Writer, "MYNO console on %s://%s/\n", scheme, ln.Addr())
	if addr := c.MetricsAddr(); addr != "" {
		fmt.Fprintf(cmd.Root().Writer, "Console metrics on http://%s/metrics (no login)\n", addr)
	}
	return serveConsole(ctx, c, ln, certFile, keyFile, log)
}

// serveConsole serves a console on ln until ctx ends, then shuts it down.
func serveConsole(ctx context.Context, c *console.Console, ln net.Listener, certFile, keyFile string, log *slog.Logger) error {
	defer c.Close()
	// Requests (pages listening to /events) end when base does, at shutdown.
	base, stop := context.WithCancel(context.Background())
	defer stop()
	// IdleTimeout ends kept-alive connections nobody uses; the event
	// streams are long requests, so there is no whole-request timeout.
	srv := &http.Server{Handler: c.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext: func(net.Listener) context.Context { return base }}
	served := make(chan error, 1)
	go func() {
		if certFile != "" {
			served <- srv.ServeTLS(ln, certFile, keyFile)
			return
		}
		served <- srv.Serve(ln)
	}()
	select {
	case err := <-served:
		return &exitError{code: 1, err: fmt.Errorf("console: %w", err)}
	case <-ctx.Done():
	}
	stop()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	<-served
	return nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/mup"
	"github.com/myno-bridge/myno/mup/e2e"
	"github.com/myno-bridge/myno/mup/e2e/manager"
)

// e2eCommand is the manager side of the E2E channel: myno e2e renew.
func e2eCommand() *cli.Command {
	return &cli.Command{
		Name:  "e2e",
		Usage: "the manager side of the E2E channel through the broker (certificates, ECDH, sealed updates)",
		Commands: []*cli.Command{{
			Name: "renew",
			Usage: "renew devices' certificates and keys over the E2E channel: handshake, then the new certificate and " +
				"private key sealed under the E2E key; each device reports an authenticated status",
			Flags: append([]cli.Flag{
				&cli.StringSliceFlag{Name: "device", Usage: "device `UUID` (repeat for several)", Required: true},
				&cli.StringFlag{Name: "ca-dir", Value: defaultCADir, Usage: "CA `DIR` with ca.crt and ca.key (issues the new certificates)", Sources: cli.EnvVars("MYNO_CA_DIR")},
				&cli.StringFlag{Name: "cert", Usage: "manager certificate `FILE` (role manager; default <ca-dir>/manager.crt)", Sources: cli.EnvVars("MYNO_E2E_CERT")},
				&cli.StringFlag{Name: "key", Usage: "manager key `FILE` (default <ca-dir>/manager.key)", Sources: cli.EnvVars("MYNO_E2E_KEY")},
				&cli.StringFlag{Name: "mqtt-url", Value: defaultBrokerURL, Usage: "broker `URL` (mqtt:// or mqtts://)", Sources: cli.EnvVars("MYNO_MQTT_URL")},
				&cli.StringFlag{Name: "prefix", Value: e2e.DefaultPrefix, Usage: "E2E topic `PREFIX` (no '$': reserved for brokers)", Sources: cli.EnvVars("MYNO_E2E_PREFIX")},
				&cli.StringFlag{Name: "mode", Value: string(e2e.Ephemeral), Usage: "key agreement: ephemeral (forward secrecy) or static (the paper's)", Sources: cli.EnvVars("MYNO_E2E_MODE")},
				&cli.IntFlag{Name: "parallel", Value: manager.DefaultRenewParallel, Usage: "devices renewed at once"},
				&cli.DurationFlag{Name: "timeout", Value: manager.DefaultRenewTimeout, Usage: "per device, handshake plus renewal"},
				&cli.DurationFlag{Name: "validity", Value: 365 * 24 * time.Hour, Usage: "validity of the new certificates"},
				&cli.BoolFlag{Name: "quiet", Usage: "no progress bar"},
				logLevelFlag("warn"),
			}, mqttAuthFlags()...),
			Action: runRenew,
		}},
	}
}

// managerOptions say where a manager's credentials are and how it talks.
type managerOptions struct {
	caDir, certFile, keyFile string
	withCAKey                bool // renewals issue certificates
	prefix, mode             string
	validity                 time.Duration
	mqttURL                  string
	credentials              client.Credentials
	connectTimeout           time.Duration // --mqtt-connect-timeout
}

// startManager loads the manager's credentials, connects to the broker and
// subscribes; the caller closes the transport.
func startManager(ctx context.Context, o managerOptions, log *slog.Logger) (*manager.Manager, client.Transport, error) {
	if o.certFile == "" {
		o.certFile = filepath.Join(o.caDir, "manager.crt")
	}
	if o.keyFile == "" {
		o.keyFile = filepath.Join(o.caDir, "manager.key")
	}
	cfg := manager.Config{Prefix: o.prefix, Mode: e2e.Mode(o.mode), RenewValidity: o.validity, Logger: log}
	loads := []func() error{
		func() (err error) { cfg.CA, err = mup.ReadCertificate(filepath.Join(o.caDir, "ca.crt")); return },
		func() (err error) { cfg.Cert, err = mup.ReadCertificate(o.certFile); return },
		func() (err error) { cfg.Key, err = mup.ReadKey(o.keyFile); return },
	}
	if o.withCAKey {
		loads = append(loads, func() (err error) { cfg.CAKey, err = mup.ReadKey(filepath.Join(o.caDir, "ca.key")); return })
	}
	for _, load := range loads {
		if err := load(); err != nil {
			return nil, nil, &exitError{code: 2, err: err}
		}
	}
	m, err := manager.New(cfg)
	if err != nil {
		return nil, nil, &exitError{code: 2, err: err}
	}
	if o.connectTimeout <= 0 {
		o.connectTimeout = defaultMQTTConnectTimeout
	}
	dctx, cancel := context.WithTimeout(ctx, o.connectTimeout)
	defer cancel()
	tr, err := client.Dial(dctx, client.Config{URL: o.mqttURL, ClientID: fmt.Sprintf("myno-e2e-%s-%x", m.Name(), e2e.NewRequestID()[:6]),
		Protocol: client.MQTT5, Logger: log, Credentials: o.credentials,
		// The manager is where every device's ready and status arrive: it
		// keeps no QoS 1 state at the broker and relies on its own resends
		// and timeouts instead.
		AtMostOnce: true, OnMessage: m.HandleMessage})
	if err != nil {
		return nil, nil, &exitError{code: 1, err: fmt.Errorf("broker: %w", err)}
	}
	if err := m.Start(dctx, tr); err != nil {
		tr.Close(context.Background())
		return nil, nil, &exitError{code: 1, err: err}
	}
	return m, tr, nil
}

func runRenew(ctx context.Context, cmd *cli.Command) error {
	log := newLogger(cmd)
	creds, err := mqttCredentials(cmd)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("e2e renew: %w", err)}
	}
	m, tr, err := startManager(ctx, managerOptions{caDir: cmd.String("ca-dir"), certFile: cmd.String("cert"), keyFile: cmd.String("key"), withCAKey: true,
		prefix: cmd.String("prefix"), mode: cmd.String("mode"), validity: cmd.Duration("validity"),
		mqttURL: cmd.String("mqtt-url"), credentials: creds, connectTimeout: cmd.Duration("mqtt-connect-timeout")}, log)
	if err != nil {
		return prefixed("e2e renew", err)
	}
	defer tr.Close(context.Background())
	targets := cmd.StringSlice("device")
	var bar *progress
	if !cmd.Bool("quiet") {
		bar = newProgress(cmd.Root().ErrWriter, len(targets), "renewing", false)
	}
	results := m.RenewAll(ctx, manager.RenewAllConfig{Devices: targets, Parallel: int(cmd.Int("parallel")), Timeout: cmd.Duration("timeout"),
		OnResult: func(manager.RenewResult) {
			if bar != nil {
				bar.Add(1)
			}
		}})
	w := tabwriter.NewWriter(cmd.Root().Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "DEVICE\tRESULT\tSERIAL\tNOT AFTER\tHANDSHAKE\tRENEWAL\tDETAIL")
	failed := 0
	for _, r := range results {
		serial, notAfter, renewal := "-", "-", "-"
		handshake := r.Handshake.String()
		if r.Renewal != nil {
			serial, notAfter = r.Renewal.Cert.SerialNumber.Text(16), r.Renewal.Cert.NotAfter.UTC().Format(time.DateOnly)
			renewal = r.Renewal.Phase.String()
		}
		if r.Err != nil {
			failed++
			fmt.Fprintf(w, "%s\tfailed\t%s\t%s\t%s\t%s\t%v\n", r.Device, "-", "-", handshake, renewal, r.Err)
			continue
		}
		fmt.Fprintf(w, "%s\trenewed\t%s\t%s\t%s\t%s\t\n", r.Device, serial, notAfter, handshake, renewal)
	}
	w.Flush()
	if failed > 0 {
		return &exitError{code: 1, err: fmt.Errorf("e2e renew: %d of %d devices not renewed", failed, len(results))}
	}
	return nil
}

// prefixed puts what failed in front of an exitError's message.
func prefixed(what string, err error) error {
	var ee *exitError
	if errors.As(err, &ee) {
		return &exitError{code: ee.code, err: fmt.Errorf("%s: %w", what, ee.err)}
	}
	return &exitError{code: 1, err: fmt.Errorf("%s: %w", what, err)}
}

// e2eDeviceFlags give myno device its E2E credentials.
func e2eDeviceFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "cert", Usage: "E2E device certificate `FILE` (role device, common name = --uuid); renewals replace it", Sources: cli.EnvVars("MYNO_DEVICE_CERT")},
		&cli.StringFlag{Name: "key", Usage: "E2E device key `FILE` (PEM, 0600); renewals replace it", Sources: cli.EnvVars("MYNO_DEVICE_KEY")},
		&cli.StringFlag{Name: "ca", Usage: "E2E CA certificate `FILE` that certifies managers", Sources: cli.EnvVars("MYNO_DEVICE_CA")},
		&cli.StringFlag{Name: "e2e-prefix", Value: e2e.DefaultPrefix, Usage: "E2E topic `PREFIX`", Sources: cli.EnvVars("MYNO_E2E_PREFIX")},
	}
}

// e2eDeviceConfig reads the E2E flags; nil when none is given.
func e2eDeviceConfig(cmd *cli.Command) (*devices.E2EConfig, error) {
	cert, key, ca := cmd.String("cert"), cmd.String("key"), cmd.String("ca")
	if cert == "" && key == "" && ca == "" {
		return nil, nil
	}
	if cert == "" || key == "" || ca == "" {
		return nil, errors.New("device: --cert, --key and --ca go together")
	}
	return loadE2EDevice(cert, key, ca, cmd.String("e2e-prefix"))
}

func loadE2EDevice(certFile, keyFile, caFile, prefix string) (*devices.E2EConfig, error) {
	cfg := &devices.E2EConfig{Prefix: prefix, CertFile: certFile, KeyFile: keyFile}
	var err error
	if cfg.CA, err = mup.ReadCertificate(caFile); err != nil {
		return nil, err
	}
	if cfg.Cert, err = mup.ReadCertificate(certFile); err != nil {
		return nil, err
	}
	if cfg.Key, err = mup.ReadKey(keyFile); err != nil {
		return nil, err
	}
	return cfg, nil
}

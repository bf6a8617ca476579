package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v3"

	"github.com/myno-bridge/myno/bridge/mqttc"
	"github.com/myno-bridge/myno/devices"
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
			Flags: []cli.Flag{
				&cli.StringSliceFlag{Name: "device", Usage: "device `UUID` (repeat for several)", Required: true},
				&cli.StringFlag{Name: "ca-dir", Value: "ca", Usage: "CA `DIR` with ca.crt and ca.key (issues the new certificates)", Sources: cli.EnvVars("MYNO_CA_DIR")},
				&cli.StringFlag{Name: "cert", Usage: "manager certificate `FILE` (role manager; default <ca-dir>/manager.crt)", Sources: cli.EnvVars("MYNO_E2E_CERT")},
				&cli.StringFlag{Name: "key", Usage: "manager key `FILE` (default <ca-dir>/manager.key)", Sources: cli.EnvVars("MYNO_E2E_KEY")},
				&cli.StringFlag{Name: "mqtt-url", Value: "mqtt://127.0.0.1:1883", Usage: "broker `URL` (mqtt:// or mqtts://)", Sources: cli.EnvVars("MYNO_MQTT_URL")},
				&cli.StringFlag{Name: "mqtt-username", Usage: "broker user name", Sources: cli.EnvVars("MYNO_MQTT_USERNAME")},
				&cli.StringFlag{Name: "mqtt-password", Usage: "broker password", Sources: cli.EnvVars("MYNO_MQTT_PASSWORD")},
				&cli.StringFlag{Name: "prefix", Value: e2e.DefaultPrefix, Usage: "E2E topic `PREFIX` (no '$': reserved for brokers)", Sources: cli.EnvVars("MYNO_E2E_PREFIX")},
				&cli.StringFlag{Name: "mode", Value: string(e2e.Ephemeral), Usage: "key agreement: ephemeral (forward secrecy) or static (the paper's)", Sources: cli.EnvVars("MYNO_E2E_MODE")},
				&cli.IntFlag{Name: "parallel", Value: 8, Usage: "devices renewed at once"},
				&cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "per device, handshake plus renewal"},
				&cli.DurationFlag{Name: "validity", Value: 365 * 24 * time.Hour, Usage: "validity of the new certificates"},
				&cli.BoolFlag{Name: "quiet", Usage: "no progress bar"},
				&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error", Value: "warn", Sources: cli.EnvVars("MYNO_LOG_LEVEL")},
			},
			Action: runRenew,
		}},
	}
}

func runRenew(ctx context.Context, cmd *cli.Command) error {
	log := newLogger(cmd)
	dir := cmd.String("ca-dir")
	certFile, keyFile := cmd.String("cert"), cmd.String("key")
	if certFile == "" {
		certFile = filepath.Join(dir, "manager.crt")
	}
	if keyFile == "" {
		keyFile = filepath.Join(dir, "manager.key")
	}
	var cfg manager.Config
	var err error
	for _, load := range []func() error{
		func() (err error) { cfg.CA, err = mup.ReadCertificate(filepath.Join(dir, "ca.crt")); return },
		func() (err error) { cfg.CAKey, err = mup.ReadKey(filepath.Join(dir, "ca.key")); return },
		func() (err error) { cfg.Cert, err = mup.ReadCertificate(certFile); return },
		func() (err error) { cfg.Key, err = mup.ReadKey(keyFile); return },
	} {
		if err := load(); err != nil {
			return &exitError{code: 2, err: fmt.Errorf("e2e renew: %w", err)}
		}
	}
	cfg.Prefix, cfg.Mode, cfg.RenewValidity, cfg.Logger = cmd.String("prefix"), e2e.Mode(cmd.String("mode")), cmd.Duration("validity"), log
	m, err := manager.New(cfg)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("e2e renew: %w", err)}
	}
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	tr, err := mqttc.Dial(dctx, mqttc.Config{URL: cmd.String("mqtt-url"), ClientID: fmt.Sprintf("myno-e2e-%s-%x", m.Name(), e2e.NewRequestID()[:6]),
		Protocol: mqttc.MQTT5, Logger: log, Username: cmd.String("mqtt-username"), Password: cmd.String("mqtt-password"),
		// The manager is where every device's ready and status arrive: it
		// keeps no QoS 1 state at the broker and relies on its own resends
		// and timeouts instead.
		AtMostOnce: true, OnMessage: m.HandleMessage})
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("e2e renew: broker: %w", err)}
	}
	defer tr.Close(context.Background())
	if err := m.Start(dctx, tr); err != nil {
		return &exitError{code: 1, err: fmt.Errorf("e2e renew: %w", err)}
	}
	targets := cmd.StringSlice("device")
	var bar *progressbar.ProgressBar
	if !cmd.Bool("quiet") {
		bar = progressbar.NewOptions(len(targets), progressbar.OptionSetWriter(cmd.Root().ErrWriter), progressbar.OptionShowCount(),
			progressbar.OptionSetDescription("renewing"), progressbar.OptionSetPredictTime(true),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(cmd.Root().ErrWriter) }))
	}
	results := m.RenewAll(ctx, manager.RenewAllConfig{Devices: targets, Parallel: int(cmd.Int("parallel")), Timeout: cmd.Duration("timeout"),
		OnResult: func(manager.RenewResult) {
			if bar != nil {
				_ = bar.Add(1)
			}
		}})
	w := tabwriter.NewWriter(cmd.Root().Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "DEVICE\tRESULT\tSERIAL\tNOT AFTER\tHANDSHAKE\tRENEWAL\tDETAIL")
	failed := 0
	for _, r := range results {
		serial, notAfter, renewal := "-", "-", "-"
		handshake := phaseText(r.Handshake)
		if r.Renewal != nil {
			serial, notAfter = r.Renewal.Cert.SerialNumber.Text(16), r.Renewal.Cert.NotAfter.UTC().Format(time.DateOnly)
			renewal = phaseText(r.Renewal.Phase)
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

func phaseText(p manager.Phase) string {
	if p.Messages == 0 {
		return "-"
	}
	return fmt.Sprintf("%d msgs %d B %v", p.Messages, p.Bytes, p.Duration.Round(time.Millisecond))
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

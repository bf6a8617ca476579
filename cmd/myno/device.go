package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/ratelog"
	"github.com/myno-bridge/myno/mqtt/client"
)

func deviceCommand() *cli.Command {
	return withConfigFile(&cli.Command{
		Name:  "device",
		Usage: "run virtual MYNO devices from JSON-LD descriptions",
		Description: "Runs one device (--description, --uuid) or a fleet (--count N, or --fleet FILE of\n" +
			"description:count lines). Each device bootstraps its description to the bridge over MQTT,\n" +
			"answers commands and publishes sensor readings until SIGINT/SIGTERM, then unsubscribes\n" +
			"and disconnects. Fleet UUIDs derive from --uuid.\n" +
			"A device whose description has MYNO's MUP operations (funcGetDeviceToken, funcPubUpdateManifest,\n" +
			"funcPubUpdateImage) speaks MUP v1 as MYNO's CC2538 firmware does on the wire, with stronger checks:\n" +
			"a fresh nonce per token, used once; a version above the running one; hash and size. It checks\n" +
			"manifests with --mup-vendor-key and --mup-server-key (MYNO's .pub-xy.hex or PEM), which it then needs.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "description", Usage: "JSON-LD description `FILE`", Sources: cli.EnvVars("MYNO_DEVICE_DESCRIPTION")},
			&cli.StringFlag{Name: "uuid", Usage: "device `UUID` (the base UUID of a fleet)", Value: "myno-device-1", Sources: cli.EnvVars("MYNO_DEVICE_UUID")},
			&cli.StringFlag{Name: "mqtt-url", Usage: "broker `URL`", Value: defaultBrokerURL, Sources: cli.EnvVars("MYNO_MQTT_URL")},
			&cli.StringFlag{Name: "protocol", Usage: "MQTT version: 3.1.1 or 5", Value: "5", Sources: cli.EnvVars("MYNO_DEVICE_PROTOCOL")},
			&cli.IntFlag{Name: "chunk-size", Usage: "description bytes per bootstrap message (0: the whole description in one message, as MYNO's simulators send it)", Value: devices.DefaultChunkSize, Sources: cli.EnvVars("MYNO_DEVICE_CHUNK_SIZE")},
			&cli.BoolFlag{Name: "fill-uuid", Usage: "replace %s in the description with the device's uuid before publishing it, as MYNO's simulators do", Sources: cli.EnvVars("MYNO_DEVICE_FILL_UUID")},
			&cli.BoolFlag{Name: "legacy-topic", Usage: "publish the description on yang/config, as MYNO's first bridge and its simulators expect (implies --legacy-bootstrap-topics)", Sources: cli.EnvVars("MYNO_DEVICE_LEGACY_TOPIC")},
			&cli.DurationFlag{Name: "telemetry-interval", Usage: "period of sensor readings (0: none)", Value: 10 * time.Second, Sources: cli.EnvVars("MYNO_DEVICE_TELEMETRY_INTERVAL")},
			&cli.Int64Flag{Name: "seed", Usage: "seed of the sensor readings", Value: 1, Sources: cli.EnvVars("MYNO_DEVICE_SEED")},
			&cli.IntFlag{Name: "count", Usage: "run `N` devices of --description", Value: 1, Sources: cli.EnvVars("MYNO_DEVICE_COUNT")},
			&cli.DurationFlag{Name: "connect-interval", Usage: "a fleet's wait between two devices' connects", Value: devices.DefaultStagger, Sources: cli.EnvVars("MYNO_DEVICE_CONNECT_INTERVAL")},
			&cli.IntFlag{Name: "connect-concurrency", Usage: "a fleet's connects in progress at once, and its bootstraps in progress at once", Value: devices.DefaultConcurrency, Sources: cli.EnvVars("MYNO_DEVICE_CONNECT_CONCURRENCY")},
			&cli.StringFlag{Name: "fleet", Usage: "fleet `FILE` of description:count lines", Sources: cli.EnvVars("MYNO_DEVICE_FLEET")},
			&cli.StringFlag{Name: "mqtt-token-dir", Usage: "`DIR` of device tokens, <uuid>.token each (myno devices add --token-dir): each device logs in with its uuid and its token", Sources: cli.EnvVars("MYNO_MQTT_TOKEN_DIR")},
			&cli.BoolFlag{Name: "legacy-bootstrap-topics", Usage: "bootstrap on MYNO's shared topics (yang/config/create, ...) instead of the device's own (yang/config/create/<uuid>, ...), for bridges that know only those", Sources: cli.EnvVars("MYNO_DEVICE_LEGACY_BOOTSTRAP_TOPICS")},
			&cli.DurationFlag{Name: "bootstrap-timeout", Usage: "wait for the bridge's answer per attempt", Value: devices.DefaultBootstrapTimeout, Sources: cli.EnvVars("MYNO_DEVICE_BOOTSTRAP_TIMEOUT")},
			&cli.DurationFlag{Name: "mqtt-keepalive", Usage: "MQTT keep-alive (whole seconds): the broker drops a device silent for 1.5 times as long, and the bridge then shows it offline", Value: client.DefaultKeepAlive, Sources: cli.EnvVars("MYNO_MQTT_KEEPALIVE")},
			&cli.BoolFlag{Name: "no-presence", Usage: "set no Will and publish no presence on myno/presence/<uuid>, as MYNO's devices: on an external broker the bridge then tells a stopped device only from its silence (bridge --device-keepalive)", Sources: cli.EnvVars("MYNO_DEVICE_NO_PRESENCE")},
			&cli.StringFlag{Name: "mup-vendor-key", Usage: "MUP v1: the vendor's public key `FILE` that checks the inner signature (MYNO's publicManufacturer; .pub-xy.hex or PEM)", Sources: cli.EnvVars("MYNO_MUP_VENDOR_KEY")},
			&cli.StringFlag{Name: "mup-server-key", Usage: "MUP v1: the Update Server's public key `FILE` that checks the outer signature (MYNO's publicUpdateserver)", Sources: cli.EnvVars("MYNO_MUP_SERVER_KEY")},
			&cli.Uint32Flag{Name: "firmware-version", Value: 1, Usage: "MUP v1: the running firmware `VERSION`", Sources: cli.EnvVars("MYNO_DEVICE_FIRMWARE_VERSION")},
			&cli.Uint32Flag{Name: "firmware-slot", Value: 1 << 20, Usage: "MUP v1: the largest image the device takes, in `BYTES`", Sources: cli.EnvVars("MYNO_DEVICE_FIRMWARE_SLOT")},
			&cli.StringFlag{Name: "app-id", Usage: "MUP v1: take only manifests of this application `ID` (default: any)", Sources: cli.EnvVars("MYNO_DEVICE_APP_ID")},
			&cli.BoolFlag{Name: "firmware-compat", Usage: "MUP v1: answer a refused manifest OK, as MYNO's firmware does, instead of ERROR (either way no slice is taken)", Sources: cli.EnvVars("MYNO_DEVICE_FIRMWARE_COMPAT")},
			logLevelFlag("info"),
		}, append(e2eDeviceFlags(), mqttAuthFlags()...)...),
		Action: runDevice,
	})
}

func newLogger(cmd *cli.Command) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cmd.String("log-level")))
	// A flood of one warning (100,000 bootstrap floods wrote 100,000
	// lines) becomes 10 lines per 10 s and a count (package ratelog).
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(cmd.Root().ErrWriter, opts)
	if cmd.Root().String("log-format") == "json" {
		h = slog.NewJSONHandler(cmd.Root().ErrWriter, opts)
	}
	return slog.New(ratelog.New(h, ratelog.Options{MinLevel: slog.LevelWarn}))
}

func runDevice(ctx context.Context, cmd *cli.Command) error {
	log := newLogger(cmd)
	proto, err := client.ParseProtocol(cmd.String("protocol"))
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	creds, err := mqttCredentials(cmd)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("device: %w", err)}
	}
	if k := cmd.Duration("mqtt-keepalive"); k < time.Second || k > 65535*time.Second {
		return &exitError{code: 2, err: fmt.Errorf("device: --mqtt-keepalive %s: want 1s to 65535s", k)}
	}
	chunkSize := int(cmd.Int("chunk-size"))
	if chunkSize <= 0 {
		chunkSize = -1 // devices.Config: one chunk
	}
	base := devices.Config{
		BrokerURL:         cmd.String("mqtt-url"),
		Credentials:       creds,
		Protocol:          proto,
		ChunkSize:         chunkSize,
		TelemetryInterval: cmd.Duration("telemetry-interval"),
		Seed:              cmd.Int64("seed"),
		BootstrapTimeout:  cmd.Duration("bootstrap-timeout"),
		Logger:            log,

		LegacyBootstrapTopics: cmd.Bool("legacy-bootstrap-topics"),
		LegacyTopic:           cmd.Bool("legacy-topic"),
		FillUUID:              cmd.Bool("fill-uuid"),
		KeepAlive:             cmd.Duration("mqtt-keepalive"),
		NoPresence:            cmd.Bool("no-presence"),
	}
	credentialsFor := deviceCredentials(creds, cmd.String("mqtt-token-dir"))
	e2eCfg, err := e2eDeviceConfig(cmd)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	if e2eCfg != nil && (cmd.String("fleet") != "" || cmd.Int("count") > 1) {
		return &exitError{code: 2, err: errors.New("device: --cert/--key/--ca are one device's credentials; not for a fleet")}
	}
	enableMUPv1, err := mupV1Enabler(cmd)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("device: %w", err)}
	}
	var entries []devices.FleetEntry
	switch {
	case cmd.String("fleet") != "":
		if entries, err = devices.ParseFleetFile(cmd.String("fleet")); err != nil {
			return &exitError{code: 2, err: err}
		}
	case cmd.String("description") != "":
		desc, err := os.ReadFile(cmd.String("description"))
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		if cmd.Int("count") <= 1 {
			base.Description, base.UUID = desc, cmd.String("uuid")
			if base.Credentials, err = credentialsFor(base.UUID); err != nil {
				return &exitError{code: 2, err: err}
			}
			d, err := devices.New(base)
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			if err := enableMUPv1(d); err != nil {
				return &exitError{code: 2, err: fmt.Errorf("device: %w", err)}
			}
			if e2eCfg != nil {
				if err := d.EnableE2E(*e2eCfg); err != nil {
					return &exitError{code: 2, err: err}
				}
			}
			if err := d.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				return &exitError{code: 1, err: err}
			}
			log.Info("device stopped", "uuid", d.UUID(), "commands", d.Commands.Load(), "readings", d.Readings.Load())
			return nil
		}
		entries = []devices.FleetEntry{{Name: filepath.Base(cmd.String("description")), Description: desc, Count: int(cmd.Int("count"))}}
	default:
		return &exitError{code: 2, err: errors.New("device: give --description FILE or --fleet FILE (see myno device --help)")}
	}
	out := cmd.Root().ErrWriter
	fleet, err := devices.StartFleet(ctx, devices.FleetConfig{
		Entries: entries, BaseUUID: cmd.String("uuid"), Device: base, Credentials: credentialsFor, Enable: enableMUPv1,
		Stagger: cmd.Duration("connect-interval"), Concurrency: int(cmd.Int("connect-concurrency")),
		Progress: func(p devices.FleetProgress) { fmt.Fprintf(out, "fleet: %s\n", p) },
	})
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	<-ctx.Done()
	fleet.Wait()
	p := fleet.Progress()
	if p.Failed > 0 {
		return &exitError{code: 1, err: fmt.Errorf("device: %d of %d devices failed", p.Failed, p.Total)}
	}
	return nil
}

// mupV1Enabler returns what makes a device of a MUP v1 description speak
// v1 with the --mup-* and --firmware-* flags; it leaves other devices as
// they are. Without the keys a v1 device is refused: it could check no
// manifest.
func mupV1Enabler(cmd *cli.Command) (func(*devices.Device) error, error) {
	cfg := devices.MUPv1Config{Version: cmd.Uint32("firmware-version"), SlotSize: cmd.Uint32("firmware-slot"),
		AppID: cmd.String("app-id"), FirmwareCompat: cmd.Bool("firmware-compat")}
	vendor, server := cmd.String("mup-vendor-key"), cmd.String("mup-server-key")
	if (vendor == "") != (server == "") {
		return nil, errors.New("--mup-vendor-key and --mup-server-key go together")
	}
	if vendor != "" {
		var err error
		if cfg.VendorKey, err = readVerifyingKey(vendor); err != nil {
			return nil, fmt.Errorf("--mup-vendor-key: %w", err)
		}
		if cfg.ServerKey, err = readVerifyingKey(server); err != nil {
			return nil, fmt.Errorf("--mup-server-key: %w", err)
		}
	}
	return func(d *devices.Device) error {
		if !d.SpeaksMUPv1() {
			return nil
		}
		if cfg.VendorKey == nil {
			return fmt.Errorf("device %s: its description has MYNO's MUP (v1) operations: give --mup-vendor-key and --mup-server-key, the public keys it checks manifests with", d.UUID())
		}
		return d.EnableMUPv1(cfg)
	}, nil
}

// deviceCredentials gives each device its broker credentials: its token
// from tokenDir (<uuid>.token) when given, else the --mqtt-* flags'; a
// device with a password and no user name logs in as its uuid.
func deviceCredentials(flags client.Credentials, tokenDir string) func(uuid string) (client.Credentials, error) {
	return func(uuid string) (client.Credentials, error) {
		c := flags
		if tokenDir != "" {
			data, err := os.ReadFile(filepath.Join(tokenDir, uuid+".token"))
			if err != nil {
				return c, fmt.Errorf("--mqtt-token-dir: %w", err)
			}
			c.Username, c.Password = uuid, strings.TrimSpace(string(data))
		}
		if c.Username == "" && c.Password != "" {
			c.Username = uuid
		}
		return c, nil
	}
}

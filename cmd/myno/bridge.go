package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/mqtt/client"
)

func bridgeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "netconf-listen", Usage: "NETCONF over SSH `ADDRESS`", Value: "127.0.0.1:8830", Sources: cli.EnvVars("MYNO_NETCONF_LISTEN")},
		&cli.StringFlag{Name: "mqtt-listen", Usage: "`ADDRESS` of the embedded MQTT broker (when --mqtt-url is not given)", Value: "127.0.0.1:1883", Sources: cli.EnvVars("MYNO_MQTT_LISTEN")},
		&cli.StringFlag{Name: "mqtt-url", Usage: "external broker `URL` (mqtt://host:port or mqtts://host:port) instead of the embedded one", Sources: cli.EnvVars("MYNO_MQTT_URL")},
		&cli.StringFlag{Name: "mqtt-username", Usage: "user name for the external broker", Sources: cli.EnvVars("MYNO_MQTT_USERNAME")},
		&cli.StringFlag{Name: "mqtt-password", Usage: "password for the external broker", Sources: cli.EnvVars("MYNO_MQTT_PASSWORD")},
		&cli.StringFlag{Name: "mqtt-ca", Usage: "PEM `FILE` of CA certificates to trust for an mqtts:// broker", Sources: cli.EnvVars("MYNO_MQTT_CA")},
		&cli.StringFlag{Name: "update-server-cert", Usage: "Update Server certificate `FILE` (PEM) to publish, retained, for MUP devices", Sources: cli.EnvVars("MYNO_UPDATE_SERVER_CERT")},
		&cli.StringFlag{Name: "data-dir", Usage: "`DIR` for the registry, host key and users", Value: "myno-data", Sources: cli.EnvVars("MYNO_DATA_DIR")},
		&cli.StringFlag{Name: "users", Usage: "users `FILE` (name:bcrypt-hash:groups); default <data-dir>/users, created with an admin user", Sources: cli.EnvVars("MYNO_USERS")},
		&cli.DurationFlag{Name: "rpc-timeout", Usage: "how long an rpc waits for its device", Value: 5 * time.Second, Sources: cli.EnvVars("MYNO_RPC_TIMEOUT")},
		&cli.IntFlag{Name: "max-description-bytes", Usage: "largest device description accepted", Value: 256 << 10, Sources: cli.EnvVars("MYNO_MAX_DESCRIPTION_BYTES")},
		&cli.IntFlag{Name: "max-chunks", Usage: "most bootstrap chunks per description", Value: 1024, Sources: cli.EnvVars("MYNO_MAX_CHUNKS")},
		&cli.DurationFlag{Name: "assembly-timeout", Usage: "time for all chunks of a description to arrive", Value: 30 * time.Second, Sources: cli.EnvVars("MYNO_ASSEMBLY_TIMEOUT")},
		&cli.StringFlag{Name: "cluster", Usage: "run as one instance of the cluster `NAME` on the shared --mqtt-url broker: devices are shared out, the registry is replicated", Sources: cli.EnvVars("MYNO_CLUSTER")},
		&cli.StringFlag{Name: "instance", Usage: "this instance's `NAME` in the cluster (default: random)", Sources: cli.EnvVars("MYNO_INSTANCE")},
		&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error", Value: "info", Sources: cli.EnvVars("MYNO_LOG_LEVEL")},
	}
}

func bridgeConfig(cmd *cli.Command) bridge.Config {
	return bridge.Config{
		NetconfListen:       cmd.String("netconf-listen"),
		MQTTListen:          cmd.String("mqtt-listen"),
		MQTTURL:             cmd.String("mqtt-url"),
		MQTTUsername:        cmd.String("mqtt-username"),
		MQTTPassword:        cmd.String("mqtt-password"),
		MQTTCAFile:          cmd.String("mqtt-ca"),
		DataDir:             cmd.String("data-dir"),
		UsersFile:           cmd.String("users"),
		AdminPassword:       os.Getenv("MYNO_ADMIN_PASSWORD"),
		RPCTimeout:          cmd.Duration("rpc-timeout"),
		MaxDescriptionBytes: int(cmd.Int("max-description-bytes")),
		MaxChunks:           int(cmd.Int("max-chunks")),
		AssemblyTimeout:     cmd.Duration("assembly-timeout"),
		Cluster:             cmd.String("cluster"),
		Instance:            cmd.String("instance"),
		Logger:              newLogger(cmd),
		Out:                 cmd.Root().Writer,
	}
}

func bridgeCommand() *cli.Command {
	return &cli.Command{
		Name:  "bridge",
		Usage: "run the NETCONF-MQTT bridge",
		Description: "Serves every device that bootstraps over MQTT as a YANG module with NETCONF rpcs.\n" +
			"Without --mqtt-url it runs the embedded broker. On first start it creates the user admin;\n" +
			"the password comes from MYNO_ADMIN_PASSWORD or is generated and printed once.\n" +
			"Stops gracefully on SIGINT/SIGTERM.",
		Flags: bridgeFlags(),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			cfg := bridgeConfig(cmd)
			if f := cmd.String("update-server-cert"); f != "" {
				pem, err := os.ReadFile(f)
				if err != nil {
					return &exitError{code: 2, err: fmt.Errorf("--update-server-cert: %w", err)}
				}
				cfg.UpdateServerCert = pem
			}
			b, err := bridge.Start(ctx, cfg)
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			<-ctx.Done()
			b.Close()
			return nil
		},
	}
}

// demoCommand is what make run starts: the bridge on the embedded broker
// and three simulated devices from testdata/.
func demoCommand() *cli.Command {
	flags := append(bridgeFlags(),
		&cli.StringFlag{Name: "descriptions", Usage: "`DIR` with the demo descriptions", Value: "testdata/descriptions", Sources: cli.EnvVars("MYNO_DEMO_DESCRIPTIONS")},
		&cli.DurationFlag{Name: "telemetry-interval", Usage: "period of the devices' sensor readings", Value: 5 * time.Second, Sources: cli.EnvVars("MYNO_DEVICE_TELEMETRY_INTERVAL")},
	)
	return &cli.Command{
		Name:  "demo",
		Usage: "run the bridge with the embedded broker and three simulated devices (what make run starts)",
		Flags: flags,
		Action: func(ctx context.Context, cmd *cli.Command) error {
			cfg := bridgeConfig(cmd)
			cfg.MQTTURL = ""
			upd, err := prepareDemoMUP(cmd.String("data-dir"))
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			e2eDir, e2eDevice, err := prepareDemoE2E(cmd.String("data-dir"), "demo-mup-1")
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			// The bridge hands the Update Server certificate to the devices.
			cfg.UpdateServerCert = upd.serverCert
			b, err := bridge.Start(ctx, cfg)
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			defer b.Close()
			out := cmd.Root().Writer
			var devs []*devices.Device
			for i, spec := range []struct{ file, uuid string }{
				{"led-color.jsonld", "demo-led-1"},
				{"relay-sensors.jsonld", "demo-relay-1"},
				{"mup-device.jsonld", "demo-mup-1"},
			} {
				desc, err := os.ReadFile(filepath.Join(cmd.String("descriptions"), spec.file))
				if err != nil {
					return &exitError{code: 1, err: err}
				}
				d, err := devices.New(devices.Config{Description: desc, UUID: spec.uuid, BrokerURL: b.BrokerURL(),
					Protocol: []client.Protocol{client.MQTT5, client.MQTT311}[i%2], TelemetryInterval: cmd.Duration("telemetry-interval"),
					Seed: int64(i + 1), Logger: cfg.Logger})
				if err != nil {
					return &exitError{code: 1, err: err}
				}
				if spec.uuid == "demo-mup-1" {
					if err := d.EnableMUP(upd.device); err != nil {
						return &exitError{code: 1, err: err}
					}
					if err := d.EnableE2E(*e2eDevice); err != nil {
						return &exitError{code: 1, err: err}
					}
				}
				if err := d.Connect(ctx); err != nil {
					return &exitError{code: 1, err: err}
				}
				if err := d.Bootstrap(ctx); err != nil {
					return &exitError{code: 1, err: err}
				}
				devs = append(devs, d)
				go func() { _ = d.Serve(ctx) }()
			}
			// demo-mup-1 trusts the Update Server once the retained
			// certificate arrives and verifies against the vendor CA.
			for deadline := time.Now().Add(10 * time.Second); !devs[2].TrustsUpdateServer(); time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					return &exitError{code: 1, err: errors.New("demo-mup-1 did not get the update server certificate")}
				}
			}
			host, port := splitHostPort(b.NetconfAddr())
			ledModule, _ := b.ModuleOf("demo-led-1")
			fmt.Fprintf(out, `
MYNO bridge running: NETCONF on %[1]s, MQTT broker on %[2]s, devices %[3]s.

Connect (user admin; the password was printed above on first start, or is MYNO_ADMIN_PASSWORD):
  ssh -p %[5]s admin@%[4]s -s netconf
  /usr/bin/python3 -c 'from ncclient import manager; m = manager.connect(host="%[4]s", port=%[5]s, username="admin", password="PASSWORD", hostkey_verify=False); print(m.dispatch(__import__("ncclient.xml_", fromlist=["to_ele"]).to_ele("<ledOn xmlns=\"urn:myno:yang:%[6]s\"><uuidInput>demo-led-1</uuidInput></ledOn>")))'
  myno rpc --addr %[1]s --user admin --password PASSWORD '<ledOn xmlns="urn:myno:yang:%[6]s"><uuidInput>demo-led-1</uuidInput></ledOn>'
  yangcli --server=%[4]s --ncport=%[5]s --user=admin --password=PASSWORD

Update demo-mup-1 from firmware version %[8]d to %[9]d with MUP (keys and image in %[7]s):
  myno update --bridge %[1]s --password PASSWORD --mqtt-url %[2]s --device demo-mup-1 \
    --image %[10]s --manifest %[11]s --key %[12]s
For a confidential transfer (the broker sees only sealed slices), add:
    --encrypt --ca-dir %[13]s

Renew demo-mup-1's E2E certificate and key through the broker, which sees neither (CA in %[13]s):
  myno e2e renew --ca-dir %[13]s --mqtt-url %[2]s --device demo-mup-1

Stop with Ctrl-C.
`, b.NetconfAddr(), b.BrokerURL(), "demo-led-1, demo-relay-1, demo-mup-1", host, port, ledModule,
				upd.dir, demoFirmwareFrom, demoFirmwareTo, upd.image, upd.manifest, upd.serverKey, e2eDir)
			<-ctx.Done()
			_ = devs
			return nil
		},
	}
}

func splitHostPort(addr string) (string, string) {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[:i], addr[i+1:]
		}
	}
	return addr, ""
}

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/myno-bridge/myno"
	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/console"
	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/atomicfile"
	"github.com/myno-bridge/myno/mqtt/access"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/mup"
	"github.com/myno-bridge/myno/mup/e2e"
	"github.com/myno-bridge/myno/netconf"
	"github.com/urfave/cli/v3"
	"golang.org/x/crypto/ssh"
)

// demoCommand is what make run starts: the bridge on the embedded broker
// and four simulated devices from testdata/.
func demoCommand() *cli.Command {
	flags := append(bridgeFlags(),
		&cli.StringFlag{Name: "descriptions", Usage: "`DIR` with the demo descriptions (default: those built in, from the repository's testdata/descriptions)", Sources: cli.EnvVars("MYNO_DEMO_DESCRIPTIONS")},
		&cli.DurationFlag{Name: "telemetry-interval", Usage: "period of the devices' sensor readings", Value: 5 * time.Second, Sources: cli.EnvVars("MYNO_DEVICE_TELEMETRY_INTERVAL")},
		&cli.StringFlag{Name: "console-listen", Value: defaultConsoleAddr, Usage: "`ADDRESS` of the web console (\"\": none)", Sources: cli.EnvVars("MYNO_CONSOLE_LISTEN")},
		&cli.StringFlag{Name: "console-metrics-listen", Usage: "`ADDRESS` of the web console's /metrics (Prometheus: updates, their phases, E2E handshakes), unauthenticated (\"\": none)", Sources: cli.EnvVars("MYNO_CONSOLE_METRICS_LISTEN")},
	)
	return &cli.Command{
		Name:  "demo",
		Usage: "run the bridge with the embedded broker and four simulated devices (what make run starts)",
		Flags: flags,
		Action: func(ctx context.Context, cmd *cli.Command) error {
			cfg, err := bridgeConfig(cmd)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
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
			tokens, err := provisionDemo(cfg)
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			b, err := bridge.Start(ctx, cfg)
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			defer b.Close()
			out := cmd.Root().Writer
			var devs []*devices.Device
			// The devices serve until the command ends; the bridge closes
			// after them.
			closeManager := func() {}
			defer func() { closeManager() }()
			var served sync.WaitGroup
			defer served.Wait()
			devCtx, stopDevices := context.WithCancel(ctx)
			defer stopDevices()
			for i, spec := range []struct{ file, uuid string }{
				{"led-color.jsonld", "demo-led-1"},
				{"relay-sensors.jsonld", "demo-relay-1"},
				{"mup-device-signed.jsonld", "demo-mup-1"}, // signs update receipts with its E2E key
				{"mup-v1-device.jsonld", "demo-myno-1"},    // MYNO's MUP (v1), as its CC2538 firmware
			} {
				desc, err := demoDescription(cmd.String("descriptions"), spec.file)
				if err != nil {
					return &exitError{code: 1, err: err}
				}
				d, err := devices.New(devices.Config{Description: desc, UUID: spec.uuid, BrokerURL: b.BrokerURL(),
					Credentials: client.Credentials{Username: spec.uuid, Password: tokens[spec.uuid]},
					Protocol:    []client.Protocol{client.MQTT5, client.MQTT311}[i%2], TelemetryInterval: cmd.Duration("telemetry-interval"),
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
				if spec.uuid == "demo-myno-1" {
					if err := d.EnableMUPv1(upd.v1Device); err != nil {
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
				served.Add(1)
				go func() { defer served.Done(); _ = d.Serve(devCtx) }()
			}
			// demo-mup-1 trusts the Update Server once the retained
			// certificate arrives and verifies against the vendor CA.
			for deadline := time.Now().Add(10 * time.Second); !devs[2].TrustsUpdateServer(); {
				if time.Now().After(deadline) {
					return &exitError{code: 1, err: errors.New("demo-mup-1 did not get the update server certificate")}
				}
				time.Sleep(10 * time.Millisecond) // the device reports no event to wait on
			}
			// The web console, on the bridge whose host key it knows, with the
			// demo's Update Server keys and credentials.
			consoleURL := "(off)"
			if addr := cmd.String("console-listen"); addr != "" {
				ln, ccfg, err := demoConsole(cmd, b, upd, e2eDir, tokens[demoE2EManager], addr)
				if err != nil {
					return &exitError{code: 1, err: err}
				}
				// Its E2E page renews demo-mup-1's credentials.
				m, tr, err := startManager(ctx, managerOptions{caDir: e2eDir, withCAKey: true, prefix: e2e.DefaultPrefix, mode: string(e2e.Ephemeral),
					validity: 365 * 24 * time.Hour, mqttURL: b.BrokerURL(), credentials: ccfg.Update.Credentials}, cfg.Logger)
				if err != nil {
					ln.Close()
					return prefixed("demo console", err)
				}
				// The manager's connection closes after the console has
				// stopped (served.Wait runs first).
				closeManager = func() { tr.Close(context.Background()) }
				ccfg.E2E = console.E2ESettings{Manager: m, CertDir: e2eDir}
				ccfg.MetricsListen = cmd.String("console-metrics-listen")
				con, err := console.New(ccfg) // before the banner: a console that cannot start stops the demo
				if err != nil {
					ln.Close()
					return &exitError{code: 1, err: err}
				}
				consoleURL = "http://" + ln.Addr().String() + "/"
				if a := con.MetricsAddr(); a != "" {
					consoleURL += ", its metrics on http://" + a + "/metrics"
				}
				served.Add(1)
				go func() {
					defer served.Done()
					if err := serveConsole(devCtx, con, ln, "", "", cfg.Logger); err != nil {
						cfg.Logger.Error("console", "err", err)
					}
				}()
			}
			host, port := splitHostPort(b.NetconfAddr())
			ledModule, _ := b.ModuleOf("demo-led-1")
			mupModule, _ := b.ModuleOf("demo-mup-1")
			banner := fmt.Sprintf(`
MYNO bridge running: NETCONF on %[1]s, MQTT broker on %[2]s, devices %[3]s.

Web console: %[18]s (user admin and its password; it shows the devices live, calls
their functions and updates their firmware).%[19]s

Connect (user admin; the password was printed above on first start, or is MYNO_ADMIN_PASSWORD):
  ssh -p %[5]s admin@%[4]s -s netconf
  /usr/bin/python3 -c 'from ncclient import manager; m = manager.connect(host="%[4]s", port=%[5]s, username="admin", password="PASSWORD", hostkey_verify=False, look_for_keys=False, allow_agent=False); print(m.dispatch(__import__("ncclient.xml_", fromlist=["to_ele"]).to_ele("<ledOn xmlns=\"urn:myno:yang:%[6]s\"><uuidInput>demo-led-1</uuidInput></ledOn>")))'
  myno rpc --addr %[1]s --user admin --password PASSWORD '<ledOn xmlns="urn:myno:yang:%[6]s"><uuidInput>demo-led-1</uuidInput></ledOn>'
  yangcli --server=%[4]s --ncport=%[5]s --user=admin --password=PASSWORD

Configure demo-mup-1's report interval; the bridge applies it, and again whenever the device comes back:
  myno rpc --addr %[1]s --user admin --password PASSWORD '<edit-config><target><running/></target><config><configuration xmlns="urn:myno:yang:%[20]s"><device><uuid>demo-mup-1</uuid><setReportInterval><input_1_Seconds>30</input_1_Seconds></setReportInterval></device></configuration></config></edit-config>'

The broker admits only provisioned clients (tokens in %[14]s; myno devices list --data-dir %[15]s),
each to its own topics: an anonymous mosquitto_pub -t actuator/led/demo-led-1 is refused.

Update demo-mup-1 from firmware version %[8]d to %[9]d with MUP (keys and image in %[7]s):
  myno update --bridge %[1]s --password PASSWORD --mqtt-url %[2]s --device demo-mup-1 \
    --mqtt-username %[16]s --mqtt-password-file %[14]s/%[16]s.token \
    --image %[10]s --manifest %[11]s --key %[12]s \
    --device-ca %[13]s/ca.crt
demo-mup-1 signs a receipt with its device key; the update is "verified" once it checks against that CA.
For a confidential transfer (the broker sees only sealed slices), add:
    --encrypt --ca-dir %[13]s

demo-myno-1 speaks MYNO's MUP (v1), which myno update tells from its module. Update it alone, or both
devices in one campaign, with the v1 manifest beside the COSE one (a v1 device cannot sign: "unverified"):
  myno update --bridge %[1]s --password PASSWORD --mqtt-url %[2]s --device demo-myno-1 \
    --mqtt-username %[16]s --mqtt-password-file %[14]s/%[16]s.token \
    --image %[10]s --manifest %[17]s --key %[12]s
  (for the campaign: --device demo-mup-1 --device demo-myno-1 --manifest %[11]s --manifest %[17]s
   --device-ca %[13]s/ca.crt)

Renew demo-mup-1's E2E certificate and key through the broker, which sees neither (CA in %[13]s):
  myno e2e renew --ca-dir %[13]s --mqtt-url %[2]s --device demo-mup-1 \
    --mqtt-username %[16]s --mqtt-password-file %[14]s/%[16]s.token

Stop with Ctrl-C.
`, b.NetconfAddr(), b.BrokerURL(), strings.Join(demoDevices, ", "), host, port, ledModule,
				upd.dir, demoFirmwareFrom, demoFirmwareTo, upd.image, upd.manifest, upd.serverKey, e2eDir,
				demoTokenDir(cfg.DataDir), cfg.DataDir, demoE2EManager, upd.v1Manifest, consoleURL, metricsLine(b), mupModule)
			// The commands as they run here: go run ./cmd/myno under go run,
			// the binary's path when myno is not on PATH.
			fmt.Fprint(out, mynoCommands.ReplaceAllString(banner, "${1}"+mynoInvocation()+" "))
			<-ctx.Done()
			return nil
		},
	}
}

// demoDevices are the uuids of the demo's devices.
var demoDevices = []string{"demo-led-1", "demo-relay-1", "demo-mup-1", "demo-myno-1"}

// demoTokenDir keeps the demo's MQTT tokens, one file per identity.
func demoTokenDir(dataDir string) string { return filepath.Join(dataDir, "tokens") }

// provisionDemo gives the demo's devices, and its Update Server and E2E
// manager (one identity, named as the manager's certificate), MQTT
// credentials, once: a restarted demo reuses them. It returns the tokens
// by name.
func provisionDemo(cfg bridge.Config) (map[string]string, error) {
	dir := demoTokenDir(cfg.DataDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	file := cfg.CredentialsFile
	if file == "" {
		file = filepath.Join(cfg.DataDir, bridge.CredentialsFile)
	}
	store, err := access.OpenStore(file)
	if err != nil {
		return nil, err
	}
	known := map[string]bool{}
	for _, c := range store.List() {
		known[c.Name] = !c.Enrolment
	}
	tokens := map[string]string{}
	roles := map[string]access.Role{demoE2EManager: access.RoleUpdateServer}
	for _, uuid := range demoDevices {
		roles[uuid] = access.RoleDevice
	}
	for name, role := range roles {
		file := filepath.Join(dir, name+".token")
		if data, err := os.ReadFile(file); err == nil && known[name] {
			tokens[name] = strings.TrimSpace(string(data))
			continue
		}
		token, err := store.Add(name, role, access.AddOptions{Replace: true})
		if err != nil {
			return nil, err
		}
		if err := atomicfile.Write(file, []byte(token+"\n"), 0o600); err != nil {
			return nil, err
		}
		tokens[name] = token
	}
	return tokens, nil
}

// demoConsole makes the demo's web console: a listener on addr and its
// configuration, pinned to the bridge's host key, with the demo's Update
// Server key, MQTT credentials and device CA.
func demoConsole(cmd *cli.Command, b *bridge.Bridge, upd *demoMUP, e2eDir, token, addr string) (net.Listener, console.Config, error) {
	hostKey, err := netconf.LoadOrCreateHostKey(filepath.Join(cmd.String("data-dir"), "ssh_host_ed25519_key"))
	if err != nil {
		return nil, console.Config{}, err
	}
	key, err := mup.ReadKey(upd.serverKey)
	if err != nil {
		return nil, console.Config{}, err
	}
	// A lab: the console holds the vendor key too, so that an image can be
	// signed and sent from the browser alone.
	vendorKey, err := mup.ReadKey(filepath.Join(upd.dir, "vendor.key"))
	if err != nil {
		return nil, console.Config{}, err
	}
	ca, err := mup.ReadCertificate(filepath.Join(e2eDir, "ca.crt"))
	if err != nil {
		return nil, console.Config{}, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, console.Config{}, fmt.Errorf("console: %w", err)
	}
	return ln, console.Config{Bridges: []string{b.NetconfAddr()}, HostKey: ssh.FixedHostKey(hostKey.PublicKey()), Logger: newLogger(cmd),
		HistoryFile: filepath.Join(cmd.String("data-dir"), "console-history.jsonl"),
		Update:      console.UpdateSettings{MQTTURL: b.BrokerURL(), Credentials: client.Credentials{Username: demoE2EManager, Password: token}, ServerKey: key, DeviceCA: ca, VendorKey: vendorKey}}, nil
}

// metricsLine tells where the bridge's metrics and health are, when on.
func metricsLine(b *bridge.Bridge) string {
	if b.HTTPAddr() == "" {
		return ""
	}
	return fmt.Sprintf("\nMetrics: http://%[1]s/metrics (Prometheus); health: http://%[1]s/healthz, http://%[1]s/readyz.", b.HTTPAddr())
}

// mynoCommands finds the myno commands the banner prints.
var mynoCommands = regexp.MustCompile(`(?m)(^\s+|; )myno `)

// mynoInvocation is how to run this myno from a shell: "go run
// ./cmd/myno" when it runs under go run (make run), "myno" when that is
// this binary on PATH, else its path.
func mynoInvocation() string {
	exe, err := os.Executable()
	if err != nil {
		return "myno"
	}
	if strings.Contains(exe, string(filepath.Separator)+"go-build") {
		return "go run ./cmd/myno"
	}
	if onPath, err := exec.LookPath("myno"); err == nil {
		if a, b := filepath.Clean(onPath), filepath.Clean(exe); a == b {
			return "myno"
		}
	}
	if strings.HasSuffix(exe, ".test") {
		return "myno" // a test binary stands for myno
	}
	return exe
}

// demoDescription reads a demo description from dir, or from those built
// into the binary when dir is empty: the demo runs from any directory.
func demoDescription(dir, file string) ([]byte, error) {
	if dir == "" {
		return myno.DemoDescriptions.ReadFile(path.Join("testdata/descriptions", file))
	}
	return os.ReadFile(filepath.Join(dir, file))
}

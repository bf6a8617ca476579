package main

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	gonetconf "github.com/Juniper/go-netconf/netconf"
	"github.com/urfave/cli/v3"
	"golang.org/x/crypto/ssh"

	"github.com/myno-bridge/myno/mup"
	"github.com/myno-bridge/myno/mup/e2e"
	"github.com/myno-bridge/myno/mup/updateserver"
	v1 "github.com/myno-bridge/myno/mup/v1"
)

func updateCommand() *cli.Command {
	return &cli.Command{
		Name:  "update",
		Usage: "update devices' firmware with MUP (the Update Server)",
		Description: "Asks the device for a token through the bridge (NETCONF), sends the extended manifest,\n" +
			"publishes the image in slices straight to the broker, has the device check the image and\n" +
			"waits for the new version. Exits 1 on failure; the error names the device's MUP state code.\n" +
			"The verdict is \"verified\" only when the device signed a receipt that checks against the CA\n" +
			"(--device-ca); a device whose module declares no receipt is \"unverified: the device cannot\n" +
			"sign\" (exit 0, or 1 with --require-receipt); a device that declares one and sends no valid\n" +
			"receipt fails. See mup/PROTOCOL.md.\n" +
			"Several --device flags, or --category, make a campaign (as AWS IoT Jobs and hawkBit run them;\n" +
			"mup/README.md, Campaigns): --parallel updates at a time; --retries per device, after\n" +
			"--retry-backoff doubling up to --retry-max-backoff, for failures that may pass (no answer, no\n" +
			"acknowledgement, the new version not up, connection, a busy device), never for a device that\n" +
			"refuses the update; --rate N/min (or N/s, N/h) update starts; --abort-percent P stops starting\n" +
			"updates once P% of the devices finished so far failed, after --abort-min of them; --max-failures N\n" +
			"after N failures; --groups 1%,10%,100% rolls out to the first 1% of the devices, then up to 10%,\n" +
			"then the rest, each group only once the one before finished with --group-success % (100) updated.\n" +
			"--state FILE journals every start and outcome: run the same command again after an interrupt or a\n" +
			"crash and the campaign resumes; no device is updated twice (one that was in flight is asked its\n" +
			"version first). Progress shows done, failed, skipped, in flight and retrying; the result table\n" +
			"(or, with --json, a JSON report on standard output) ends it. A worker whose connection to the\n" +
			"bridge fails redials with backoff instead of failing the devices after it.\n" +
			"Example: myno update --category urn:example:lamp --image fw.bin --manifest fw.cose --key us.pem \\\n" +
			"  --groups 1%,10%,100% --rate 60/min --retries 2 --abort-percent 10 --state lamp-v4.state --json\n" +
			"The bridge's host key is verified as by myno rpc (--known-hosts, trust on first use, or --known-host).\n" +
			"It logs in to the bridge with the keys of ssh-agent (SSH_AUTH_SOCK, unless --no-agent), then --identity,\n" +
			"then --password: a key is checked in microseconds, a password with bcrypt (tens of milliseconds).\n" +
			"The protocol follows from each device's module: MUP v1 (MYNO's: manifest fields one rpc at a time,\n" +
			"600-byte slices on the image data point + /<uuid>) for a module with funcGetDeviceToken,\n" +
			"funcPubUpdateManifest and funcPubUpdateImage, this project's MUP otherwise; --protocol forces one.\n" +
			"--manifest takes the vendor's COSE manifest, its v1 manifest (myno manifest sign --format v1), or\n" +
			"both (given twice, for a mixed fleet). A v1 device cannot sign: its update is unverified.\n" +
			"\n" +
			"Before any device hears of the update, in this order: (1) locally, each manifest must describe the\n" +
			"image (its SHA-256 and size), its vendor signature must verify with --vendor-cert (default vendor.crt\n" +
			"beside --key), what --key signs must verify with --update-server-cert (default update-server.crt beside\n" +
			"--key), and slices must fit a device; (2) the broker (--mqtt-url) must accept the connection within\n" +
			"--mqtt-connect-timeout; (3) the bridge must answer within 10 s. Only then is the device asked for a token.\n" +
			"Every later step has a deadline, which its error names: each rpc through the bridge --rpc-timeout\n" +
			"(default 30s; the bridge's own --rpc-timeout, 5s by default, answers first for a silent device), the\n" +
			"E2E key exchange (--encrypt) --rpc-timeout per step, each slice --ack-timeout (1s) times --ack-retries+1\n" +
			"(11 tries), the new version --reboot-wait (10s).",
		Flags: append([]cli.Flag{
			&cli.StringSliceFlag{Name: "device", Usage: "device `UUID`; repeat for a campaign", Sources: cli.EnvVars("MYNO_UPDATE_DEVICE")},
			&cli.StringFlag{Name: "category", Usage: "update every registered device of this `CATEGORY` (a campaign)"},
			&cli.IntFlag{Name: "parallel", Value: updateserver.DefaultParallel, Usage: "campaign: updates in flight"},
			&cli.IntFlag{Name: "max-failures", Usage: "campaign: start no more updates after `N` failures (0: never stop)"},
			&cli.IntFlag{Name: "retries", Usage: "campaign: tries after the first for a device whose update failed for a reason that may pass", Sources: cli.EnvVars("MYNO_UPDATE_RETRIES")},
			&cli.DurationFlag{Name: "retry-backoff", Value: updateserver.DefaultRetryBackoff, Usage: "campaign: wait before a device's first retry, doubled (with jitter) for each next one", Sources: cli.EnvVars("MYNO_UPDATE_RETRY_BACKOFF")},
			&cli.DurationFlag{Name: "retry-max-backoff", Value: updateserver.DefaultRetryMaxBackoff, Usage: "campaign: the longest wait before a retry", Sources: cli.EnvVars("MYNO_UPDATE_RETRY_MAX_BACKOFF")},
			&cli.StringFlag{Name: "rate", Usage: "campaign: at most `N/min` update starts (also N/s, N/h; retries count)", Sources: cli.EnvVars("MYNO_UPDATE_RATE")},
			&cli.FloatFlag{Name: "abort-percent", Usage: "campaign: stop starting updates once this `PERCENT` of the devices finished so far failed (0: never)", Sources: cli.EnvVars("MYNO_UPDATE_ABORT_PERCENT")},
			&cli.IntFlag{Name: "abort-min", Value: updateserver.DefaultAbortMinimum, Usage: "campaign: devices that must have finished before --abort-percent applies", Sources: cli.EnvVars("MYNO_UPDATE_ABORT_MIN")},
			&cli.StringFlag{Name: "groups", Usage: "campaign: rollout groups as cumulative percentages of the devices, e.g. `1%,10%,100%`", Sources: cli.EnvVars("MYNO_UPDATE_GROUPS")},
			&cli.FloatFlag{Name: "group-success", Value: updateserver.DefaultGroupSuccess, Usage: "campaign: `PERCENT` of a group's devices that must be updated before the next group starts", Sources: cli.EnvVars("MYNO_UPDATE_GROUP_SUCCESS")},
			&cli.StringFlag{Name: "state", Usage: "campaign: journal `FILE`; the same command with the same file resumes an interrupted campaign", Sources: cli.EnvVars("MYNO_UPDATE_STATE")},
			&cli.BoolFlag{Name: "json", Usage: "campaign: the report as JSON on standard output, instead of the table"},
			&cli.StringFlag{Name: "image", Usage: "firmware image `FILE`", Required: true},
			&cli.StringSliceFlag{Name: "manifest", Usage: "vendor manifest `FILE` (myno manifest sign, COSE or --format v1); twice for a fleet of both", Required: true},
			&cli.StringFlag{Name: "key", Usage: "Update Server key `FILE` (PEM, or MUP v1's 64 hex digits)", Required: true, Sources: cli.EnvVars("MYNO_UPDATE_SERVER_KEY")},
			&cli.StringFlag{Name: "protocol", Value: "auto", Usage: "`auto` (from each device's module), v1 (MYNO's MUP) or cose", Sources: cli.EnvVars("MYNO_UPDATE_PROTOCOL")},
			&cli.StringFlag{Name: "bridge", Value: defaultNetconfAddr, Usage: "bridge NETCONF `ADDRESS`", Sources: cli.EnvVars("MYNO_NETCONF_ADDR")},
			&cli.StringFlag{Name: "user", Value: defaultNetconfUser, Usage: "NETCONF user", Sources: cli.EnvVars("MYNO_NETCONF_USER")},
			&cli.StringFlag{Name: "mqtt-url", Value: defaultBrokerURL, Usage: "broker `URL` for the slices", Sources: cli.EnvVars("MYNO_MQTT_URL")},
			&cli.StringSliceFlag{Name: "vendor-cert", Usage: "vendor CA certificate `FILE` (or MUP v1: the vendor's public key, .pub-xy.hex or PEM) that each manifest's vendor signature must verify with before the update starts; repeat for a mixed fleet (default vendor.crt beside --key, when it exists)", Sources: cli.EnvVars("MYNO_VENDOR_CERT")},
			&cli.StringFlag{Name: "update-server-cert", Usage: "the Update Server's certificate `FILE` that devices trust (or MUP v1: its public key): --key must be its key, and it must chain to --vendor-cert (default update-server.crt beside --key, when it exists)", Sources: cli.EnvVars("MYNO_UPDATE_SERVER_CERT")},
			&cli.DurationFlag{Name: "rpc-timeout", Value: updateserver.DefaultRPCTimeout, Usage: "how long each rpc through the bridge, and each step of the E2E key exchange, may take", Sources: cli.EnvVars("MYNO_UPDATE_RPC_TIMEOUT")},
			&cli.DurationFlag{Name: "ack-timeout", Value: updateserver.DefaultAckTimeout, Usage: "how long a slice's acknowledgement may take before the slices are sent again"},
			&cli.IntFlag{Name: "ack-retries", Value: updateserver.DefaultMaxRetries, Usage: "how often a slice is sent again without an acknowledgement before the update fails"},
			&cli.DurationFlag{Name: "reboot-wait", Value: updateserver.DefaultRebootWait, Usage: "how long the device may take to report the new version after the image check"},
			&cli.IntFlag{Name: "slice-size", Value: updateserver.DefaultSliceSize, Usage: "bytes per slice"},
			&cli.StringFlag{Name: "flow", Usage: "stop-and-wait or windowed (default: windowed for MUP, stop-and-wait for MUP v1, as MYNO's Update Server)"},
			&cli.IntFlag{Name: "window", Value: updateserver.DefaultWindow, Usage: "slices in flight (windowed)"},
			&cli.BoolFlag{Name: "quiet", Usage: "no progress bar"},
			logLevelFlag("warn"),
			&cli.StringFlag{Name: "device-ca", Usage: "CA certificate `FILE` that checks the signed receipts of devices that sign them (default <ca-dir>/ca.crt, when it exists)", Sources: cli.EnvVars("MYNO_DEVICE_CA")},
			&cli.BoolFlag{Name: "require-receipt", Usage: "fail the update of a device that cannot sign a receipt, instead of reporting it unverified", Sources: cli.EnvVars("MYNO_UPDATE_REQUIRE_RECEIPT")},
			&cli.BoolFlag{Name: "encrypt", Usage: "confidential firmware: a fresh key per update goes to the device over the E2E channel, and every slice is sealed under it (AES-256-GCM)", Sources: cli.EnvVars("MYNO_UPDATE_ENCRYPT")},
			&cli.StringFlag{Name: "ca-dir", Value: defaultCADir, Usage: "--encrypt: E2E CA `DIR` (ca.crt)", Sources: cli.EnvVars("MYNO_CA_DIR")},
			&cli.StringFlag{Name: "e2e-cert", Usage: "--encrypt: certificate `FILE`, role manager or update-server (default <ca-dir>/manager.crt)", Sources: cli.EnvVars("MYNO_E2E_CERT")},
			&cli.StringFlag{Name: "e2e-key", Usage: "--encrypt: manager key `FILE` (default <ca-dir>/manager.key)", Sources: cli.EnvVars("MYNO_E2E_KEY")},
			&cli.StringFlag{Name: "e2e-prefix", Value: e2e.DefaultPrefix, Usage: "--encrypt: E2E topic `PREFIX`", Sources: cli.EnvVars("MYNO_E2E_PREFIX")},
			&cli.StringFlag{Name: "e2e-mode", Value: string(e2e.Ephemeral), Usage: "--encrypt: key agreement, ephemeral or static", Sources: cli.EnvVars("MYNO_E2E_MODE")},
		}, append(append(netconfLoginFlags(), hostKeyFlags()...), mqttAuthFlags()...)...),
		Action: runUpdate,
	}
}

func runUpdate(ctx context.Context, cmd *cli.Command) error {
	// setup times what comes before the protocol, printed with its phases:
	// the local checks, the broker connection, the bridge's (SSH and
	// NETCONF hello).
	var setup []updateserver.PhaseTime
	began := time.Now()
	mark := func(name string) {
		now := time.Now()
		setup = append(setup, updateserver.PhaseTime{Name: name, Duration: now.Sub(began)})
		began = now
	}
	image, err := os.ReadFile(cmd.String("image"))
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	signed, v1Manifest, err := readManifests(cmd.StringSlice("manifest"))
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("update: %w", err)}
	}
	key, err := readSigningKey(cmd.String("key"))
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("update: --key: %w", err)}
	}
	vendorKeys, serverPublic, err := trustedKeys(cmd)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("update: %w", err)}
	}
	var protocol updateserver.Protocol
	switch p := cmd.String("protocol"); p {
	case "auto":
	case string(updateserver.ProtocolV1), string(updateserver.ProtocolCOSE):
		protocol = updateserver.Protocol(p)
	default:
		return &exitError{code: 2, err: fmt.Errorf("update: --protocol %q: want auto, v1 or cose", p)}
	}
	flow := updateserver.FlowControl(cmd.String("flow"))
	if flow != "" && flow != updateserver.StopAndWait && flow != updateserver.Windowed {
		return &exitError{code: 2, err: fmt.Errorf("update: --flow %q: want stop-and-wait or windowed", flow)}
	}
	creds, err := mqttCredentials(cmd)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("update: %w", err)}
	}
	deviceCA, err := deviceCA(cmd)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("update: %w", err)}
	}
	hostKey, err := hostKeyCallback(cmd, cmd.Root().ErrWriter)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("update: %w", err)}
	}
	for _, d := range []string{"rpc-timeout", "ack-timeout", "reboot-wait", "mqtt-connect-timeout"} {
		if cmd.Duration(d) <= 0 {
			return &exitError{code: 2, err: fmt.Errorf("update: --%s %s: want a positive duration", d, cmd.Duration(d))}
		}
	}
	if cmd.Int("ack-retries") < 0 {
		return &exitError{code: 2, err: fmt.Errorf("update: --ack-retries %d: want 0 or more", cmd.Int("ack-retries"))}
	}
	tmpl := updateserver.UpdateConfig{VendorSigned: signed, V1Manifest: v1Manifest, Protocol: protocol, Image: image, ServerKey: key,
		VendorKeys: vendorKeys, ServerPublicKey: serverPublic,
		MQTTURL: cmd.String("mqtt-url"), MQTTCredentials: creds, MQTTConnectTimeout: cmd.Duration("mqtt-connect-timeout"),
		RPCTimeout: cmd.Duration("rpc-timeout"), AckTimeout: cmd.Duration("ack-timeout"), MaxRetries: int(cmd.Int("ack-retries")), RebootWait: cmd.Duration("reboot-wait"),
		SliceSize: int(cmd.Int("slice-size")), Flow: flow, Window: int(cmd.Int("window")), DeviceCA: deviceCA, RequireReceipt: cmd.Bool("require-receipt")}
	if cmd.Int("ack-retries") == 0 {
		tmpl.MaxRetries = -1 // no resend: the library's 0 is its default
	}

	// 1. Nothing leaves this process before the image, the manifests and
	// the keys agree.
	check := tmpl
	if cmd.Bool("encrypt") {
		// A stand-in, for the size of a sealed slice.
		check.OpenKeyChannel = func(context.Context, string) (updateserver.KeyChannel, error) { return nil, errors.ErrUnsupported }
	}
	if err := updateserver.CheckLocal(check); err != nil {
		return &exitError{code: 1, err: fmt.Errorf("update: %w", err)}
	}
	if len(vendorKeys) == 0 {
		fmt.Fprintln(cmd.Root().ErrWriter, "note: no --vendor-cert: the manifest's vendor signature is checked by the device alone")
	}

	auth, loggedIn, err := netconfLogin(cmd)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("update: %w", err)}
	}
	defer loggedIn() // and at once after the SSH handshake

	mark("checks")

	// 2. The broker, before the bridge and any device.
	broker, err := updateserver.DialBroker(ctx, updateserver.BrokerConfig{URL: tmpl.MQTTURL, Credentials: creds,
		ConnectTimeout: tmpl.MQTTConnectTimeout, Logger: newLogger(cmd)})
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("update: %w", err)}
	}
	defer broker.Close()
	tmpl.Broker = broker
	mark("broker")

	// 3. The bridge.
	sshConfig := &ssh.ClientConfig{User: cmd.String("user"), Timeout: netconfConnectTimeout, Auth: auth, HostKeyCallback: hostKey}
	s, err := dialNETCONF(cmd.String("bridge"), sshConfig, netconfConnectTimeout)
	loggedIn()
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("update: %w", err)}
	}
	defer s.Close()
	mark("bridge")
	if cmd.Bool("encrypt") {
		m, tr, err := startManager(ctx, managerOptions{caDir: cmd.String("ca-dir"), certFile: cmd.String("e2e-cert"), keyFile: cmd.String("e2e-key"),
			prefix: cmd.String("e2e-prefix"), mode: cmd.String("e2e-mode"), mqttURL: cmd.String("mqtt-url"), credentials: creds,
			connectTimeout: tmpl.MQTTConnectTimeout}, newLogger(cmd))
		if err != nil {
			return prefixed("update --encrypt", err)
		}
		defer tr.Close(context.Background())
		// The manager's channel is a KeyChannel; the closure keeps a nil
		// *manager.Channel from becoming a non-nil interface.
		tmpl.OpenKeyChannel = func(ctx context.Context, uuid string) (updateserver.KeyChannel, error) {
			ch, err := m.OpenKeyChannel(ctx, uuid)
			if err != nil {
				return nil, err
			}
			return ch, nil
		}
	}
	targets := cmd.StringSlice("device")
	if c := cmd.String("category"); c != "" {
		uuids, err := categoryDevices(ctx, s, c, tmpl.RPCTimeout)
		if err != nil {
			return &exitError{code: 1, err: fmt.Errorf("update: %w", err)}
		}
		if len(uuids) == 0 {
			return &exitError{code: 1, err: fmt.Errorf("update: no registered device of category %q", c)}
		}
		targets = append(targets, uuids...)
	}
	switch {
	case len(targets) == 0:
		return &exitError{code: 2, err: fmt.Errorf("update: give --device or --category")}
	case len(targets) > 1 || slices.ContainsFunc(campaignOnlyFlags, cmd.IsSet):
		return runCampaign(ctx, cmd, targets, sshConfig, tmpl)
	}

	// 4. The device.
	device := targets[0]
	out := cmd.Root().ErrWriter
	var bar *progress
	if !cmd.Bool("quiet") {
		bar = newProgress(out, len(image), "firmware "+device, true)
	}
	u := tmpl
	u.UUID, u.NETCONF = device, s
	u.Progress = func(acked, total int, bytes int) {
		if bar != nil {
			bar.Describe(fmt.Sprintf("firmware %s slice %d/%d", device, acked, total))
			bar.Set(bytes)
		}
	}
	res, err := updateserver.Update(ctx, u)
	w := cmd.Root().Writer
	if res != nil {
		for _, p := range append(setup, res.OrderedPhases()...) { // in protocol order
			fmt.Fprintf(w, "%-9s %v\n", p.Name, p.Duration.Round(time.Microsecond))
		}
	}
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("update %s: %w", device, err)}
	}
	fmt.Fprintf(w, "device %s runs version %d (%s, %d slices, %d resent): %s\n", device, res.Version, protocolName(res.Protocol), res.Slices, res.Resent, verdictText(res))
	if res.Note != "" {
		fmt.Fprintf(w, "note: %s\n", res.Note)
	}
	return nil
}

// netconfConnectTimeout bounds the connection to the bridge: TCP, the SSH
// handshake and the NETCONF hello.
const netconfConnectTimeout = 10 * time.Second

// dialNETCONF opens a NETCONF session over SSH within timeout, handshakes
// included (ssh.ClientConfig.Timeout bounds the TCP connection alone).
func dialNETCONF(addr string, cfg *ssh.ClientConfig, timeout time.Duration) (*gonetconf.Session, error) {
	if !strings.Contains(addr, ":") {
		addr = net.JoinHostPort(addr, "830")
	}
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, fmt.Errorf("bridge %s: %w", addr, err)
	}
	_ = conn.SetDeadline(time.Now().Add(timeout))
	s, err := gonetconf.NewSSHSession(conn, cfg)
	if err != nil {
		conn.Close()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, fmt.Errorf("bridge %s: no SSH handshake within %s: %w", addr, timeout, err)
		}
		return nil, fmt.Errorf("bridge %s: %w", addr, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return s, nil
}

// categoryDevices lists the devices of a category within timeout.
func categoryDevices(ctx context.Context, s *gonetconf.Session, category string, timeout time.Duration) ([]string, error) {
	type answer struct {
		uuids []string
		err   error
	}
	done := make(chan answer, 1)
	go func() {
		uuids, err := updateserver.NewClient(s).DevicesOfCategory(category)
		done <- answer{uuids, err}
	}()
	select {
	case a := <-done:
		return a.uuids, a.err
	case <-time.After(timeout):
		s.Close()
		return nil, fmt.Errorf("devices of category %q: the bridge did not answer within %s", category, timeout)
	case <-ctx.Done():
		s.Close()
		return nil, ctx.Err()
	}
}

// trustedKeys reads --vendor-cert and --update-server-cert, or their
// defaults beside --key: the keys CheckLocal verifies the manifests' and
// the Update Server's signatures with. An Update Server certificate must
// chain to a vendor certificate given as one.
func trustedKeys(cmd *cli.Command) (vendor []*ecdsa.PublicKey, server *ecdsa.PublicKey, err error) {
	beside := func(name string) []string {
		f := filepath.Join(filepath.Dir(cmd.String("key")), name)
		if _, err := os.Stat(f); err != nil {
			return nil
		}
		return []string{f}
	}
	vendorFiles := cmd.StringSlice("vendor-cert")
	if len(vendorFiles) == 0 {
		vendorFiles = beside("vendor.crt")
	}
	var vendorCerts []*x509.Certificate
	for _, f := range vendorFiles {
		k, err := readVerifyingKey(f)
		if err != nil {
			return nil, nil, fmt.Errorf("--vendor-cert: %w", err)
		}
		vendor = append(vendor, k)
		if c, err := mup.ReadCertificate(f); err == nil {
			vendorCerts = append(vendorCerts, c)
		}
	}
	serverFiles := beside("update-server.crt")
	if f := cmd.String("update-server-cert"); f != "" {
		serverFiles = []string{f}
	}
	for _, f := range serverFiles {
		if server, err = readVerifyingKey(f); err != nil {
			return nil, nil, fmt.Errorf("--update-server-cert: %w", err)
		}
		cert, err := mup.ReadCertificate(f)
		if err != nil || len(vendorCerts) == 0 {
			continue // a bare key: nothing to chain
		}
		var errs []error
		for _, ca := range vendorCerts {
			if _, err := mup.VerifyServerCertificate(cert, ca); err != nil {
				errs = append(errs, err)
				continue
			}
			errs = nil
			break
		}
		if errs != nil {
			return nil, nil, fmt.Errorf("--update-server-cert %s: devices that trust --vendor-cert would refuse it: %w", f, errors.Join(errs...))
		}
	}
	return vendor, server, nil
}

// protocolName names a protocol for people.
func protocolName(p updateserver.Protocol) string {
	if p == updateserver.ProtocolV1 {
		return "MUP v1"
	}
	return "MUP"
}

// readManifests reads the --manifest files: at most one COSE vendor
// manifest (myno manifest sign) and one MUP v1 vendor file (--format v1),
// told apart by their content.
func readManifests(files []string) (cose, v1Manifest []byte, err error) {
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, fmt.Errorf("--manifest: %w", err)
		}
		_, v1Err := v1.DecodeVendorFile(b)
		_, coseErr := mup.DecodeSignedVendorManifest(b)
		switch {
		case v1Err == nil && v1Manifest != nil, coseErr == nil && cose != nil:
			return nil, nil, fmt.Errorf("--manifest %s: a second manifest of the same protocol", f)
		case v1Err == nil:
			v1Manifest = b
		case coseErr == nil:
			cose = b
		default:
			return nil, nil, fmt.Errorf("--manifest %s: neither a COSE vendor manifest (%v) nor a MUP v1 one (%v)", f, coseErr, v1Err)
		}
	}
	return cose, v1Manifest, nil
}

func joinDetail(a, b string) string {
	if b == "" {
		return a
	}
	return a + "; " + b
}

// verdictText says how far the success rests on the device's signature.
func verdictText(res *updateserver.Result) string {
	if res.Verdict == updateserver.Verified {
		return fmt.Sprintf("verified (receipt signed by %s)", res.Signer)
	}
	return fmt.Sprintf("%s: %s", updateserver.Unverified, updateserver.UnverifiedReason)
}

// deviceCA is the CA that checks device receipts: --device-ca, or
// <ca-dir>/ca.crt when that exists (a missing default is no CA: devices
// that sign then fail, naming the cause).
func deviceCA(cmd *cli.Command) (*x509.Certificate, error) {
	file := cmd.String("device-ca")
	if file == "" {
		file = filepath.Join(cmd.String("ca-dir"), "ca.crt")
		if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
	}
	ca, err := mup.ReadCertificate(file)
	if err != nil {
		return nil, fmt.Errorf("--device-ca: %w", err)
	}
	return ca, nil
}

// campaignOnlyFlags make even one device a campaign.
var campaignOnlyFlags = []string{"state", "json", "retries", "groups", "rate"}

// campaignOptions reads the campaign flags into cfg.
func campaignOptions(cmd *cli.Command, cfg *updateserver.CampaignConfig) error {
	cfg.Parallel, cfg.MaxFailures, cfg.Retries = int(cmd.Int("parallel")), int(cmd.Int("max-failures")), int(cmd.Int("retries"))
	cfg.RetryBackoff, cfg.RetryMaxBackoff = cmd.Duration("retry-backoff"), cmd.Duration("retry-max-backoff")
	cfg.AbortPercent, cfg.AbortMinimum, cfg.GroupSuccess = cmd.Float("abort-percent"), int(cmd.Int("abort-min")), cmd.Float("group-success")
	switch {
	case cfg.Parallel < 1:
		return fmt.Errorf("--parallel %d: want 1 or more", cfg.Parallel)
	case cfg.Retries < 0 || cfg.MaxFailures < 0 || cfg.AbortMinimum < 1:
		return errors.New("--retries and --max-failures want 0 or more, --abort-min 1 or more")
	case cfg.AbortPercent < 0 || cfg.AbortPercent > 100 || cfg.GroupSuccess <= 0 || cfg.GroupSuccess > 100:
		return fmt.Errorf("--abort-percent %g, --group-success %g: want percentages (--group-success over 0)", cfg.AbortPercent, cfg.GroupSuccess)
	case cfg.RetryBackoff <= 0 || cfg.RetryMaxBackoff < cfg.RetryBackoff:
		return fmt.Errorf("--retry-backoff %s, --retry-max-backoff %s: want positive, the maximum at least the first", cfg.RetryBackoff, cfg.RetryMaxBackoff)
	}
	var err error
	if cfg.Rate, err = parseRate(cmd.String("rate")); err != nil {
		return err
	}
	if cfg.Groups, err = parseGroups(cmd.String("groups")); err != nil {
		return err
	}
	return nil
}

// parseRate reads --rate: N/min, N/s, N/h or N (a minute); "" is none.
func parseRate(s string) (float64, error) {
	if s == "" {
		return 0, nil
	}
	n, unit, _ := strings.Cut(s, "/")
	per := map[string]float64{"": 1, "min": 1, "m": 1, "s": 60, "sec": 60, "h": 1.0 / 60, "hour": 1.0 / 60}[unit]
	v, err := strconv.ParseFloat(n, 64)
	if err != nil || per == 0 || v <= 0 || math.IsInf(v, 0) {
		return 0, fmt.Errorf("--rate %q: want N/min, N/s or N/h with N over 0", s)
	}
	return v * per, nil
}

// parseGroups reads --groups: comma-separated percentages, % optional.
func parseGroups(s string) ([]float64, error) {
	if s == "" {
		return nil, nil
	}
	var out []float64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(f), "%"), 64)
		if err != nil {
			return nil, fmt.Errorf("--groups %q: %q is not a percentage", s, f)
		}
		out = append(out, v)
	}
	if err := updateserver.CheckGroups(out); err != nil {
		return nil, fmt.Errorf("--groups %q: %w", s, err)
	}
	return out, nil
}

// runCampaign updates several devices with the campaign flags, live
// counts on a progress bar, and a result table (or JSON report) at the
// end.
func runCampaign(ctx context.Context, cmd *cli.Command, targets []string, sshConfig *ssh.ClientConfig, tmpl updateserver.UpdateConfig) error {
	cfg := updateserver.CampaignConfig{Devices: targets, Update: tmpl,
		Dial: func(context.Context) (*gonetconf.Session, error) {
			return dialNETCONF(cmd.String("bridge"), sshConfig, netconfConnectTimeout)
		}}
	if err := campaignOptions(cmd, &cfg); err != nil {
		return &exitError{code: 2, err: fmt.Errorf("update: %w", err)}
	}
	if path := cmd.String("state"); path != "" {
		state, entries, err := updateserver.OpenState(path, updateserver.NewStateHeader(tmpl))
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("update: %w", err)}
		}
		defer state.Close()
		cfg.Journal, cfg.Resume = state, entries
		if n := len(entries); n > 0 {
			fmt.Fprintf(cmd.Root().ErrWriter, "resuming the campaign of %s: %d devices recorded\n", path, n)
		}
	}
	if !cmd.Bool("quiet") {
		bar := newProgress(cmd.Root().ErrWriter, len(targets), "devices", false)
		cfg.OnCounts = func(c updateserver.LiveCounts) {
			bar.Describe(fmt.Sprintf("devices: %d done, %d failed, %d skipped, %d in flight, %d retrying", c.Done, c.Failed, c.Skipped, c.InFlight, c.Retrying))
			bar.Set(c.Done + c.Failed + c.Skipped)
		}
	}
	results := updateserver.Campaign(ctx, cfg)
	c := updateserver.Tally(results)
	if cmd.Bool("json") {
		if err := writeCampaignJSON(cmd.Root().Writer, results, c, cmd.String("state")); err != nil {
			return err
		}
	} else {
		writeCampaignTable(cmd.Root().Writer, results, c)
	}
	if failed := c.Failed + c.Skipped; failed > 0 {
		return &exitError{code: 1, err: fmt.Errorf("update: %d of %d devices not updated%s", failed, len(results), stopNote(results))}
	}
	return nil
}

// stopNote says why a campaign stopped, if it did.
func stopNote(results []updateserver.DeviceResult) string {
	for _, r := range results {
		if r.Skipped {
			return " (" + r.Err.Error() + ")"
		}
	}
	return ""
}

// writeCampaignTable writes a campaign's result table and its counts.
func writeCampaignTable(out io.Writer, results []updateserver.DeviceResult, c updateserver.Counts) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "DEVICE\tGROUP\tPROTOCOL\tRESULT\tATTEMPTS\tVERSION\tTRANSFER\tDETAIL")
	for _, r := range results {
		d := campaignDevice(r)
		version, transfer := "-", "-"
		if d.Version != 0 {
			version = fmt.Sprint(d.Version)
		}
		if d.TransferMS > 0 {
			transfer = (time.Duration(d.TransferMS) * time.Millisecond).String()
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%d\t%s\t%s\t%s\n", d.UUID, d.Group, cmp.Or(protocolLabel(d.Protocol), "-"), d.Result, d.Attempts, version, transfer, d.Detail)
	}
	w.Flush()
	fmt.Fprintf(out, "%d verified, %d unverified, %d failed, %d skipped\n", c.Verified, c.Unverified, c.Failed, c.Skipped)
}

// protocolLabel names a protocol for the table, "" for none.
func protocolLabel(p updateserver.Protocol) string {
	if p == "" {
		return ""
	}
	return protocolName(p)
}

// campaignDeviceReport is one device in the JSON report (and a row of
// the table).
type campaignDeviceReport struct {
	UUID       string                `json:"uuid"`
	Group      int                   `json:"group"`
	Result     string                `json:"result"` // verified, unverified, failed, skipped
	Resumed    bool                  `json:"resumed,omitempty"`
	Attempts   int                   `json:"attempts"`
	Protocol   updateserver.Protocol `json:"protocol,omitempty"`
	Version    uint32                `json:"version,omitempty"`
	TransferMS int64                 `json:"transferMs,omitempty"`
	Started    *time.Time            `json:"started,omitempty"`
	Signer     string                `json:"signer,omitempty"`
	Detail     string                `json:"detail,omitempty"`
}

func campaignDevice(r updateserver.DeviceResult) campaignDeviceReport {
	d := campaignDeviceReport{UUID: r.UUID, Group: r.Group, Attempts: r.Attempts, Resumed: r.Resumed}
	if !r.StartedAt.IsZero() {
		at := r.StartedAt.UTC()
		d.Started = &at
	}
	if res := r.Result; res != nil {
		d.Protocol, d.Version, d.Signer = res.Protocol, res.Version, res.Signer
		d.TransferMS = res.Phases["transfer"].Milliseconds()
	}
	switch {
	case r.Skipped:
		d.Result, d.Detail, d.Version = "skipped", r.Err.Error(), 0
	case r.Err != nil:
		d.Result, d.Detail = "failed", r.Err.Error()
	case r.Result.Verdict == updateserver.Verified:
		d.Result, d.Detail = "verified", "receipt signed by "+r.Result.Signer
	default:
		d.Result, d.Detail = "unverified", joinDetail(updateserver.UnverifiedReason, r.Result.Note)
	}
	return d
}

// writeCampaignJSON writes the JSON report.
func writeCampaignJSON(w io.Writer, results []updateserver.DeviceResult, c updateserver.Counts, state string) error {
	report := struct {
		Counts  updateserver.Counts    `json:"counts"`
		Stopped string                 `json:"stopped,omitempty"`
		State   string                 `json:"state,omitempty"`
		Devices []campaignDeviceReport `json:"devices"`
	}{Counts: c, State: state, Devices: make([]campaignDeviceReport, 0, len(results))}
	for _, r := range results {
		report.Devices = append(report.Devices, campaignDevice(r))
		if r.Skipped && report.Stopped == "" {
			report.Stopped = r.Err.Error()
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(report)
}

package systemtest_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/access"
	"github.com/myno-bridge/myno/mup"
	v1 "github.com/myno-bridge/myno/mup/v1"
	"github.com/myno-bridge/myno/yang"
)

// Issue 14's "done when": a client that drives the bridge exactly as
// MYNO's Update Server does completes an update against the v1 virtual
// device. testdata/myno_update_server.py is that client, on Debian's
// /usr/bin/python3 with ncclient and paho-mqtt 1.6 (MQTT 3.1.1, QoS 0):
// <get> and get-schema with an empty identifier before each step, the
// device's module found by its <get> namespace, the slice topic read from
// the `default` of funcPubUpdateImage; unqualified rpcs with <uuidInput>
// and one `i,value` leaf each, answers read at ./data/retval (which
// needs the bridge's --profile myno); the outer signature made as
// createSig signU does; the slices published directly on the broker,
// acked on /response. The update goes through with the operations on
// their own topics and on MYNO's firmware's one topic, on the embedded
// broker and on Mosquitto; the device then runs version 2 with the very
// image. A forged outer signature is refused by the device: no slice is
// sent, the device stays at version 1 without an image.
func TestMYNOUpdateServerUpdatesAV1Device(t *testing.T) {
	for _, c := range []struct {
		name      string
		desc      func([]byte) []byte
		mosquitto bool
		forged    bool
	}{
		{name: "separate topics"},
		{name: "one topic, as MYNO's firmware", desc: mynoSameTopic},
		{name: "forged outer signature", forged: true},
		{name: "through Mosquitto", mosquitto: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			python := testenv.DebianPython(t, "ncclient")
			testenv.DebianPython(t, "paho.mqtt")
			brokerURL := ""
			if c.mosquitto {
				brokerURL = testenv.StartMosquitto(t).URL()
			}
			b := startMYNOBridge(t, brokerURL)
			mqttURL := brokerURL
			if mqttURL == "" {
				mqttURL = b.BrokerURL()
			}
			desc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", "mup-v1-device.jsonld"))
			if err != nil {
				t.Fatal(err)
			}
			if c.desc != nil {
				changed := c.desc(desc)
				if bytes.Equal(changed, desc) {
					t.Fatal("the description's topics were not changed")
				}
				desc = changed
			}
			const uuid = "MYNO-UPDATE-8A12-4F4F"
			vendorKey, serverKey := v1TestKey(t, "key-manufacturer.priv.hex"), v1TestKey(t, "key-updateserver.priv.hex")
			dev := startV1DeviceFromBytes(t, desc, mqttURL, uuid, devices.MUPv1Config{Version: 1, SlotSize: 256 << 10,
				VendorKey: &vendorKey.PublicKey, ServerKey: &serverKey.PublicKey})

			dir := t.TempDir()
			image := make([]byte, 87800) // the paper's image size: 147 slices of up to 600 bytes
			rand.Read(image)
			signingKey := serverKey
			if c.forged {
				signingKey, err = mup.GenerateKey()
				if err != nil {
					t.Fatal(err)
				}
			}
			files := map[string][]byte{"image.bin": image, "vendor.txt": v1Vendor(t, vendorKey, image, 2, 1), "server.priv.hex": encodeV1Key(t, signingKey)}
			for name, content := range files {
				if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			updater := creds(t, b, updateServerName, access.RoleUpdateServer)
			if !c.mosquitto && updater.Username == "" {
				t.Fatal("no credentials for the Update Server on the embedded broker")
			}

			mq, err := url.Parse(mqttURL)
			if err != nil {
				t.Fatal(err)
			}
			host, port, _ := strings.Cut(b.NetconfAddr(), ":")
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			start := time.Now()
			out, err := exec.CommandContext(ctx, python, filepath.Join("testdata", "myno_update_server.py"),
				"--", // a token may begin with "-": the positional arguments are not options
				host, port, "admin", "pw", uuid,
				filepath.Join(dir, "image.bin"), filepath.Join(dir, "vendor.txt"), filepath.Join(dir, "server.priv.hex"),
				mq.Hostname(), mq.Port(), updater.Username, updater.Password).CombinedOutput()
			if err != nil {
				t.Fatalf("MYNO-like Update Server: %v\n%s", err, out)
			}
			t.Logf("MYNO-like Update Server, %s:\n%s", time.Since(start).Round(time.Millisecond), out)
			o := mynoOutput(strings.Split(strings.TrimSpace(string(out)), "\n"))

			o.expect(t, "device "+uuid+": namespace "+yang.MYNONamespaceBase+"MUP-V1-BOARD slice topic base yang/update/image")
			o.absent(t, "schema:") // MYNO splits the schema text on "module": no other "module" in it
			o.absent(t, "note:")   // the token's version is the vendor's OldVersion
			nonce, version := o.token(t, "token: ")
			if version != 1 {
				t.Errorf("token version %d, want 1", version)
			}
			nonceAfter, versionAfter := o.token(t, "token after: ")
			if nonceAfter == nonce {
				t.Errorf("the token after the update repeats the nonce %d", nonce)
			}
			if c.forged {
				o.expect(t, "manifest: ERROR")
				o.absent(t, "slices:")
				o.absent(t, "fin:")
				if versionAfter != 1 {
					t.Errorf("token after a forged manifest: version %d, want 1", versionAfter)
				}
				if dev.MUPv1Version() != 1 || dev.MUPv1Image() != nil {
					t.Errorf("after a forged manifest the device runs version %d and holds an image of %d bytes", dev.MUPv1Version(), len(dev.MUPv1Image()))
				}
				return
			}
			o.expect(t, "manifest: MANIFEST-SUCCESS")
			// A resend means an ack that did not come within 5 s.
			o.expect(t, "slice topic yang/update/image/"+uuid+": 0 resent, 0 unknown acks")
			o.expect(t, "slices: 147 acked")
			o.expect(t, "fin: FIRMWARE-SUCCESS")
			if versionAfter != 2 {
				t.Errorf("token after the update: version %d, want 2", versionAfter)
			}
			if dev.MUPv1Version() != 2 || !bytes.Equal(dev.MUPv1Image(), image) {
				t.Errorf("device runs version %d, holds the image: %v", dev.MUPv1Version(), bytes.Equal(dev.MUPv1Image(), image))
			}
		})
	}
}

// startMYNOBridge is startBridge with --profile myno: MYNO's modules,
// <get> and replies (<data><retval> in no namespace).
func startMYNOBridge(t testing.TB, brokerURL string) *bridge.Bridge {
	t.Helper()
	b, err := bridge.Start(context.Background(), bridge.Config{NetconfListen: "127.0.0.1:0", MQTTListen: "127.0.0.1:0", DataDir: t.TempDir(),
		AdminPassword: "pw", RPCTimeout: 5 * time.Second, Logger: testenv.Logger(), Out: io.Discard, MQTTURL: brokerURL,
		Enrolment: access.EnrolOpen, Profile: bridge.ProfileMYNO})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// startV1DeviceFromBytes is startV1Device with the description given.
func startV1DeviceFromBytes(t testing.TB, desc []byte, url, uuid string, cfg devices.MUPv1Config) *devices.Device {
	t.Helper()
	return bootDevice(t, devices.Config{Description: desc, UUID: uuid, BrokerURL: url, Credentials: deviceCreds(uuid), Logger: testenv.Logger()},
		func(d *devices.Device) error { return d.EnableMUPv1(cfg) })
}

// mynoSameTopic gives all three MUP v1 operations the topic yang/update,
// as MYNO's committed firmware listens (MUP-V1.md §7 D1).
func mynoSameTopic(desc []byte) []byte {
	for _, op := range []string{"yang/update/token", "yang/update/manifest"} {
		desc = bytes.ReplaceAll(desc, []byte(`"m:mqttTopic": "`+op+`"`), []byte(`"m:mqttTopic": "yang/update"`))
	}
	return desc
}

// encodeV1Key is key as MYNO's raw private key: 64 hex digits.
func encodeV1Key(t testing.TB, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	b, err := v1.EncodePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mynoOutput is the lines myno_update_server.py printed.
type mynoOutput []string

func (o mynoOutput) expect(t *testing.T, line string) {
	t.Helper()
	for _, l := range o {
		if l == line {
			return
		}
	}
	t.Errorf("no line %q", line)
}

func (o mynoOutput) absent(t *testing.T, prefix string) {
	t.Helper()
	for _, l := range o {
		if strings.HasPrefix(l, prefix) {
			t.Errorf("line %q", l)
		}
	}
}

var mynoTokenRE = regexp.MustCompile(`^([1-9][0-9]*),([0-9]+)$`)

// token parses the line with prefix as MUP v1 token, <nonce>,<version>.
func (o mynoOutput) token(t *testing.T, prefix string) (nonce, version uint64) {
	t.Helper()
	for _, l := range o {
		if rest, ok := strings.CutPrefix(l, prefix); ok {
			m := mynoTokenRE.FindStringSubmatch(rest)
			if m == nil {
				t.Fatalf("%q: not <nonce>,<version>", l)
			}
			nonce, _ = strconv.ParseUint(m[1], 10, 32)
			version, _ = strconv.ParseUint(m[2], 10, 32)
			return nonce, version
		}
	}
	t.Fatalf("no line %q…", prefix)
	return 0, 0
}

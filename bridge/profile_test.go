package bridge_test

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/yang"
)

// --profile myno (issue 13): a client written like MYNO's Update Server
// (ncclient, ElementTree; testdata/myno_update_server_client.py) finds the
// device in <get> under MYNO's per-category namespace, finds that
// namespace among the modules of get-schema with an empty identifier, and
// reads the answers of unqualified rpcs as ./data/retval, passed through
// as the device gave them (OK stays OK). A second shape of the category
// gets a namespace with a suffix.
func TestMYNOProfileWithAClientLikeMYNOs(t *testing.T) {
	python := testenv.DebianPython(t, "ncclient")
	b := startBridge(t, t.TempDir(), func(c *bridge.Config) { c.Profile = bridge.ProfileMYNO })
	defer b.Close()
	deviceWith(t, b.BrokerURL(), "mup-device.jsonld", "MYNO-UPDATE-8A12-4F4F", devices.Config{Protocol: client.MQTT311, FillUUID: true, ChunkSize: -1, LegacyTopic: true,
		Handlers: map[string]devices.CommandHandler{"GET-DEVICE-TOKEN": answering("123456,1", "OK"), "ON": answering("OK")}})
	device(t, b.BrokerURL(), "led-color.jsonld", "led-m1", client.MQTT5)
	device(t, b.BrokerURL(), "led-color-variant.jsonld", "led-m2", client.MQTT5) // the same category, another shape
	host, port, _ := strings.Cut(b.NetconfAddr(), ":")
	out, err := exec.Command(python, filepath.Join("testdata", "myno_update_server_client.py"), host, port, "admin", adminPassword,
		"MYNO-UPDATE-8A12-4F4F", "getDeviceToken", "relayOn").CombinedOutput()
	if err != nil {
		t.Fatalf("MYNO-like client: %v\n%s", err, out)
	}
	text := string(out)
	mustContain(t, text, "get: 3 devices", "category MUP-SETUP-2 namespace "+yang.MYNONamespaceBase+"MUP-SETUP-2",
		"schema: 3 modules", "namespace of MYNO-UPDATE-8A12-4F4F is a module's namespace", "an rpc carries its input topic as default",
		"getDeviceToken: 123456,1", "relayOn: OK")
	s := session(t, b.NetconfAddr())
	reply, re := exec1(t, s, `<get><filter type="subtree"><device xmlns="`+yang.MYNONamespaceBase+`LED-COLOR-1"/></filter></get>`)
	if re != nil {
		t.Fatal(re)
	}
	// One of the two LED shapes has the category's namespace, the other
	// one with a suffix.
	first, second := strings.Contains(reply, "<uuid>led-m1</uuid>"), strings.Contains(reply, "<uuid>led-m2</uuid>")
	if first == second {
		t.Fatalf("LED-COLOR-1's namespace lists led-m1 %v, led-m2 %v:\n%s", first, second, reply)
	}
	reply, re = exec1(t, s, `<get/>`)
	if re != nil {
		t.Fatal(re)
	}
	if !regexp.MustCompile(`<device xmlns="` + regexp.QuoteMeta(yang.MYNONamespaceBase) + `LED-COLOR-1-[0-9a-f]{6}"><device-id><uuid>led-m[12]</uuid>`).MatchString(reply) {
		t.Errorf("no second LED-COLOR-1 namespace with a suffix in:\n%s", reply)
	}
}

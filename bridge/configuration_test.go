package bridge_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	gonetconf "github.com/Juniper/go-netconf/netconf"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/netconf"
	"github.com/myno-bridge/myno/ontology"
)

// thresholdEdit sets a thermostat's setThreshold in running.
func thresholdEdit(ns string, entries ...[3]string) string {
	var b strings.Builder
	for _, e := range entries {
		fmt.Fprintf(&b, `<device><uuid>%s</uuid><setThreshold><input_1_Operator>%s</input_1_Operator><input_2_Threshold>%s</input_2_Threshold></setThreshold></device>`, e[0], e[1], e[2])
	}
	return `<edit-config><target><running/></target><config><configuration xmlns="` + ns + `">` + b.String() + `</configuration></config></edit-config>`
}

// A device's configuration (issue 20): edit-config calls the device's
// configuration operation; a device that refuses is named and keeps its
// previous intended values; a device that restarts, or that registers
// later, is brought to its configuration without anyone asking; running
// outlives the bridge.
func TestConfigurationFollowsDevices(t *testing.T) {
	dir := t.TempDir()
	b := startBridge(t, dir, nil)
	url := b.BrokerURL()
	ns := namespace(t, "thermostat.jsonld")
	th1 := device(t, url, "thermostat.jsonld", "th-1", client.MQTT5)
	var mu sync.Mutex
	var th2Args []string
	deviceWith(t, url, "thermostat.jsonld", "th-2", devices.Config{Protocol: client.MQTT5, Handlers: map[string]devices.CommandHandler{
		"SET-THRESHOLD": func(ctx context.Context, d *devices.Device, f *ontology.Function, args []string) (string, []string) {
			if len(args) == 2 && args[1] == "99" {
				return "ERROR", nil
			}
			mu.Lock()
			th2Args = args
			mu.Unlock()
			return "OK", nil
		}}})
	s := session(t, b.NetconfAddr())
	mustContain(t, strings.Join(s.ServerCapabilities, " "), netconf.CapWritableRunning, netconf.CapCandidate, netconf.CapConfirmedCommit)

	if _, re := exec1(t, s, thresholdEdit(ns, [3]string{"th-1", "gt", "30"}, [3]string{"th-2", "lt", "+05"})); re != nil {
		t.Fatalf("edit-config: %v", re)
	}
	if args, _ := th1.LastArgs("SET-THRESHOLD"); fmt.Sprint(args) != "[gt 30]" {
		t.Errorf("th-1 holds %v, want [gt 30]", args)
	}
	mu.Lock()
	if fmt.Sprint(th2Args) != "[lt 5]" {
		t.Errorf("th-2 holds %v, want [lt 5]", th2Args)
	}
	mu.Unlock()
	reply, _ := exec1(t, s, `<get-config><source><running/></source></get-config>`)
	mustContain(t, reply, "<uuid>th-2</uuid><setThreshold><input_1_Operator>lt</input_1_Operator><input_2_Threshold>5</input_2_Threshold>")
	reply, _ = exec1(t, s, `<get><filter><devices xmlns="`+ns+`"><device><uuid>th-1</uuid><configuration-state/></device></devices></filter></get>`)
	mustContain(t, reply, "<name>setThreshold</name><status>applied</status>", "<applied-at>", "<answer>OK</answer>")

	// th-2 refuses 99: the error names it and its node; th-1 takes its
	// change; th-2's intended values stay as they were.
	reply, re := exec1(t, s, thresholdEdit(ns, [3]string{"th-1", "gt", "40"}, [3]string{"th-2", "lt", "99"}))
	if re == nil {
		t.Fatalf("a refused change answered ok:\n%s", reply)
	}
	mustContain(t, reply, "<error-tag>operation-failed</error-tag>", "device th-2: setThreshold: the device answered ERROR",
		"[", ":uuid=&#39;th-2&#39;]/", ":setThreshold</error-path>")
	reply, _ = exec1(t, s, `<get-config><source><running/></source></get-config>`)
	mustContain(t, reply, "<uuid>th-1</uuid><setThreshold><input_1_Operator>gt</input_1_Operator><input_2_Threshold>40</input_2_Threshold>",
		"<uuid>th-2</uuid><setThreshold><input_1_Operator>lt</input_1_Operator><input_2_Threshold>5</input_2_Threshold>")
	reply, _ = exec1(t, s, `<get><filter><devices xmlns="`+ns+`"><device><uuid>th-2</uuid><configuration-state/></device></devices></filter></get>`)
	mustContain(t, reply, "<status>failed</status>", "<answer>ERROR</answer>")

	// Values outside the module are refused before any device is asked.
	reply, re = exec1(t, s, thresholdEdit(ns, [3]string{"th-1", "gt", "126"}))
	if re == nil || !strings.Contains(reply, "invalid-value") || !strings.Contains(reply, "input_2_Threshold</error-path>") {
		t.Errorf("threshold 126 (range -40..125):\n%s", reply)
	}

	// th-1 restarts with nothing configured: the bridge tells it again.
	th1.Close()
	restarted := device(t, url, "thermostat.jsonld", "th-1", client.MQTT5)
	testenv.WaitFor(t, "th-1 configured again after its restart", func() bool {
		args, _ := restarted.LastArgs("SET-THRESHOLD")
		return fmt.Sprint(args) == "[gt 40]"
	})

	// A device configured before it registers gets its values when it does.
	if _, re := exec1(t, s, thresholdEdit(ns, [3]string{"th-3", "eq", "21"})); re != nil {
		t.Fatalf("configuring a device not registered yet: %v", re)
	}
	th3 := device(t, url, "thermostat.jsonld", "th-3", client.MQTT5)
	testenv.WaitFor(t, "th-3 configured once it registered", func() bool {
		args, _ := th3.LastArgs("SET-THRESHOLD")
		return fmt.Sprint(args) == "[eq 21]"
	})

	// Running outlives the bridge.
	s.Close()
	b.Close()
	b2 := startBridge(t, dir, nil)
	defer b2.Close()
	s2 := session(t, b2.NetconfAddr())
	reply, _ = exec1(t, s2, `<get-config><source><running/></source><filter><configuration xmlns="`+ns+`"><device><uuid>th-3</uuid></device></configuration></filter></get-config>`)
	mustContain(t, reply, "<input_1_Operator>eq</input_1_Operator><input_2_Threshold>21</input_2_Threshold>")
}

// ncclient (Debian's python3-ncclient) configures a thermostat: candidate
// and commit, a confirmed commit that times out and is rolled back on
// the device too, one confirmed in time, locks and discard-changes.
func TestNcclientConfiguresADevice(t *testing.T) {
	python := testenv.DebianPython(t, "ncclient")
	b := startBridge(t, t.TempDir(), nil)
	defer b.Close()
	var mu sync.Mutex
	var told []string
	deviceWith(t, b.BrokerURL(), "thermostat.jsonld", "th-nc", devices.Config{Protocol: client.MQTT5, Handlers: map[string]devices.CommandHandler{
		"SET-THRESHOLD": func(ctx context.Context, d *devices.Device, f *ontology.Function, args []string) (string, []string) {
			mu.Lock()
			told = append(told, strings.Join(args, " "))
			mu.Unlock()
			return "OK", nil
		}}})
	host, port, _ := strings.Cut(b.NetconfAddr(), ":")
	cmd := exec.Command(python, filepath.Join("testdata", "ncclient_config.py"), host, port, "admin", adminPassword, namespace(t, "thermostat.jsonld"), "th-nc")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ncclient: %v\n%s", err, out)
	}
	mustContain(t, string(out),
		"candidate: True confirmed-commit: True",
		"before commit: None",
		"committed: 10",
		"confirmed commit: 50",
		"after its timeout: 10",
		"confirmed in time: 60",
		"126: invalid-value /",
		"candidate after discard: 60")
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(told, ", "); got != "gt 10, gt 50, gt 10, gt 60" {
		t.Errorf("the thermostat was told %s; want gt 10, gt 50, gt 10 (the rollback), gt 60", got)
	}
}

// yangcli (Debian's, yuma123) edits one configuration leaf of a device,
// on the candidate it picks by default, and commits.
func TestYangcliEditsAConfigurationLeaf(t *testing.T) {
	yangcli := testenv.Tool(t, "yangcli")
	b := startBridge(t, t.TempDir(), nil)
	defer b.Close()
	th := device(t, b.BrokerURL(), "thermostat.jsonld", "th-y", client.MQTT5)
	ns := namespace(t, "thermostat.jsonld")
	s := session(t, b.NetconfAddr())
	if _, re := exec1(t, s, thresholdEdit(ns, [3]string{"th-y", "gt", "20"})); re != nil {
		t.Fatalf("edit-config: %v", re)
	}
	module := strings.TrimPrefix(ns, "urn:myno:yang:")
	dir := t.TempDir()
	script := filepath.Join(dir, "edit.yangcli")
	if err := os.WriteFile(script, []byte("merge /configuration/device[uuid='th-y']/setThreshold/input_2_Threshold value=33\ncommit\n"+
		"sget /"+module+":devices/device[uuid='th-y']/configuration-state\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(b.NetconfAddr(), ":")
	cmd := exec.Command(yangcli, "--batch-mode", "--run-script="+script, "--server="+host, "--ncport="+port,
		"--user=admin", "--password="+adminPassword, "--home="+dir)
	cmd.Dir, cmd.Stdin = dir, strings.NewReader("")
	out, err := cmd.CombinedOutput()
	text := string(out)
	if err != nil {
		t.Fatalf("yangcli: %v\n%s", err, text)
	}
	// yangcli exits 0 even when things fail: its output is the verdict.
	mustContain(t, text, "Default target set to: <candidate>", "status applied", "answer OK")
	for _, bad := range []string{"Error", "rpc-error", "Script 'edit.yangcli' canceled"} {
		if strings.Contains(text, bad) {
			t.Errorf("yangcli reports %q:\n%s", bad, text)
		}
	}
	if args, _ := th.LastArgs("SET-THRESHOLD"); fmt.Sprint(args) != "[gt 33]" {
		t.Errorf("the thermostat holds %v after yangcli's edit, want [gt 33]\n%s", args, text)
	}
}

// The configuration holds at most --max-configured-devices devices: a
// change beyond is refused and changes nothing.
func TestConfiguredDevicesAreBounded(t *testing.T) {
	dir := t.TempDir()
	b := startBridge(t, dir, func(c *bridge.Config) { c.MaxConfiguredDevices = 2 })
	device(t, b.BrokerURL(), "thermostat.jsonld", "th-b", client.MQTT5)
	ns := namespace(t, "thermostat.jsonld")
	s := session(t, b.NetconfAddr())
	if _, re := exec1(t, s, thresholdEdit(ns, [3]string{"th-b", "gt", "1"}, [3]string{"th-x", "gt", "2"})); re != nil {
		t.Fatalf("two devices: %v", re)
	}
	reply, re := exec1(t, s, thresholdEdit(ns, [3]string{"th-y", "gt", "3"}))
	if re == nil || !strings.Contains(reply, "resource-denied") || !strings.Contains(reply, "--max-configured-devices") {
		t.Fatalf("a third device:\n%s", reply)
	}
	reply, _ = exec1(t, s, `<get-config><source><running/></source></get-config>`)
	if strings.Contains(reply, "th-y") || !strings.Contains(reply, "th-x") {
		t.Errorf("running after the refusal:\n%s", reply)
	}
	// Changing the devices already there is still allowed.
	if _, re := exec1(t, s, thresholdEdit(ns, [3]string{"th-x", "gt", "4"})); re != nil {
		t.Errorf("changing a configured device at the limit: %v", re)
	}
	// The limit lowered below what is held: a delete still goes through.
	s.Close()
	b.Close()
	b2 := startBridge(t, dir, func(c *bridge.Config) { c.MaxConfiguredDevices = 1 })
	defer b2.Close()
	s2 := session(t, b2.NetconfAddr())
	if _, re := exec1(t, s2, `<edit-config><target><running/></target><config><configuration xmlns="`+ns+`"><device xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0" nc:operation="delete"><uuid>th-x</uuid></device></configuration></config></edit-config>`); re != nil {
		t.Errorf("a delete over a lowered limit: %v", re)
	}
}

// All or nothing per device, with two operations: when the second fails,
// the first is called again with its previous value; one that had none
// cannot be undone, so running keeps it and the error says so. A device
// configured under another shape's module is refused, naming its module.
func TestConfigurationPerDeviceRollback(t *testing.T) {
	b := startBridge(t, t.TempDir(), nil)
	defer b.Close()
	var mu sync.Mutex
	var told []string
	record := func(ctx context.Context, d *devices.Device, f *ontology.Function, args []string) (string, []string) {
		mu.Lock()
		defer mu.Unlock()
		told = append(told, f.Method+" "+strings.Join(args, " "))
		if f.Method == "SCHEDULE" && args[0] == "FF" {
			return "ERROR", nil
		}
		return "OK", nil
	}
	deviceWith(t, b.BrokerURL(), "smart-plug.jsonld", "plug-1", devices.Config{Protocol: client.MQTT5,
		Handlers: map[string]devices.CommandHandler{"CHILD-LOCK": record, "SCHEDULE": record}})
	device(t, b.BrokerURL(), "led-color.jsonld", "led-z", client.MQTT5)
	ns := namespace(t, "smart-plug.jsonld")
	s := session(t, b.NetconfAddr())
	edit := func(lock, schedule string) (string, *gonetconf.RPCError) {
		var ops string
		if lock != "" {
			ops += "<setChildLock><input_1_Locked>" + lock + "</input_1_Locked></setChildLock>"
		}
		if schedule != "" {
			ops += "<setSchedule><input_1_Schedule>" + schedule + "</input_1_Schedule></setSchedule>"
		}
		return exec1(t, s, `<edit-config><target><running/></target><config><configuration xmlns="`+ns+`"><device><uuid>plug-1</uuid>`+ops+`</device></configuration></config></edit-config>`)
	}
	told1 := func() string {
		mu.Lock()
		defer mu.Unlock()
		out := strings.Join(told, ", ")
		told = nil
		return out
	}

	// Both new, the second refused: the first took and has nothing to go back to.
	reply, re := edit("true", "FF")
	if re == nil {
		t.Fatalf("a refused schedule answered ok:\n%s", reply)
	}
	mustContain(t, reply, "device plug-1: setSchedule: the device answered ERROR", "but for setChildLock, which took and could not be put back")
	if got := told1(); got != "CHILD-LOCK true, SCHEDULE FF" {
		t.Errorf("the plug was told %s", got)
	}
	reply, _ = exec1(t, s, `<get-config><source><running/></source></get-config>`)
	mustContain(t, reply, "<setChildLock><input_1_Locked>true</input_1_Locked></setChildLock>")
	if strings.Contains(reply, "setSchedule") {
		t.Errorf("running holds the refused schedule:\n%s", reply)
	}

	// Both set; then both changed with the second refused: the first is put back.
	if _, re := edit("true", "0A0B"); re != nil {
		t.Fatalf("edit: %v", re)
	}
	told1()
	if _, re := edit("false", "FF"); re == nil {
		t.Fatal("a refused schedule answered ok")
	}
	if got := told1(); got != "CHILD-LOCK false, SCHEDULE FF, CHILD-LOCK true" {
		t.Errorf("the plug was told %s; want the lock changed, the schedule refused, the lock put back", got)
	}
	reply, _ = exec1(t, s, `<get-config><source><running/></source></get-config>`)
	mustContain(t, reply, "<input_1_Locked>true</input_1_Locked>", "<input_1_Schedule>0A0B</input_1_Schedule>")
	// The configuration in use (NMDA operational) is what the plug took.
	reply, _ = exec1(t, s, `<get-data xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-nmda" xmlns:ds="urn:ietf:params:xml:ns:yang:ietf-datastores"><datastore>ds:operational</datastore><config-filter>true</config-filter></get-data>`)
	mustContain(t, reply, "<input_1_Locked>true</input_1_Locked>", "<input_1_Schedule>0A0B</input_1_Schedule>")

	// rollback-on-error: a new operation that took cannot be unset when
	// the change is undone, so running keeps it and the error says so.
	deviceWith(t, b.BrokerURL(), "smart-plug.jsonld", "plug-2", devices.Config{Protocol: client.MQTT5,
		Handlers: map[string]devices.CommandHandler{"CHILD-LOCK": record, "SCHEDULE": record}})
	reply, re = exec1(t, s, `<edit-config><target><running/></target><error-option>rollback-on-error</error-option><config><configuration xmlns="`+ns+`"><device><uuid>plug-2</uuid>`+
		`<setChildLock><input_1_Locked>true</input_1_Locked></setChildLock><setSchedule><input_1_Schedule>FF</input_1_Schedule></setSchedule></device></configuration></config></edit-config>`)
	if re == nil {
		t.Fatalf("a refused schedule answered ok:\n%s", reply)
	}
	mustContain(t, reply, "setChildLock, which took and could not be put back")
	reply, _ = exec1(t, s, `<get-config><source><running/></source><filter><configuration xmlns="`+ns+`"><device><uuid>plug-2</uuid></device></configuration></filter></get-config>`)
	mustContain(t, reply, "<uuid>plug-2</uuid><setChildLock><input_1_Locked>true</input_1_Locked></setChildLock>")
	if strings.Contains(reply, "setSchedule") {
		t.Errorf("running holds plug-2's refused schedule:\n%s", reply)
	}

	// led-z is a LED: the plug's configuration is not its to take.
	reply, re = exec1(t, s, `<edit-config><target><running/></target><config><configuration xmlns="`+ns+`"><device><uuid>led-z</uuid><setChildLock><input_1_Locked>true</input_1_Locked></setChildLock></device></configuration></config></edit-config>`)
	if re == nil || !strings.Contains(reply, "invalid-value") || !strings.Contains(reply, "device led-z is registered with module myno-led-color") {
		t.Errorf("configuring a LED as a plug:\n%s", reply)
	}
}

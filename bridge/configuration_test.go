package bridge_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

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

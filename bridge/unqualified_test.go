package bridge_test

import (
	"testing"

	"github.com/myno-bridge/myno/mqtt/client"
)

// Rpcs without a namespace, as MYNO's clients send them (issue 13): two
// modules have ledOn (two shapes of one category), and the device the
// selector names picks the module; leaves without a namespace are read in
// it. With no registered device named, the rpc is refused naming both
// modules.
func TestUnqualifiedRPCsPickTheDevicesModule(t *testing.T) {
	b := startBridge(t, t.TempDir(), nil)
	defer b.Close()
	url := b.BrokerURL()
	a := device(t, url, "led-color.jsonld", "led-a", client.MQTT5)
	v := device(t, url, "led-color-variant.jsonld", "led-v", client.MQTT311)
	s := session(t, b.NetconfAddr())
	if _, re := exec1(t, s, `<ledOn><uuidInput>led-v</uuidInput></ledOn>`); re != nil {
		t.Fatalf("unqualified ledOn for led-v: %+v", re)
	}
	if v.Commands.Load() != 1 || a.Commands.Load() != 0 {
		t.Fatalf("commands: led-v %d, led-a %d", v.Commands.Load(), a.Commands.Load())
	}
	reply, re := exec1(t, s, `<setColor><uuidInput>led-a</uuidInput><input_1_Color>red</input_1_Color></setColor>`)
	if re != nil {
		t.Fatalf("unqualified setColor for led-a: %+v", re)
	}
	mustContain(t, reply, `<retval xmlns="`+namespace(t, "led-color.jsonld")+`">`)
	_, re = exec1(t, s, `<ledOn><uuidInput>led-nobody</uuidInput></ledOn>`)
	modA, modV := namespace(t, "led-color.jsonld"), namespace(t, "led-color-variant.jsonld")
	if re == nil || re.Tag != "bad-element" {
		t.Fatalf("ambiguous ledOn: %+v", re)
	}
	for _, ns := range []string{modA, modV} {
		mustContain(t, re.Message, ns[len("urn:myno:yang:"):])
	}
}

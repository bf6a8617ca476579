package updateserver_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/myno-bridge/myno/mup/updateserver"
)

// The protocol follows from the module (issue 14): MYNO's MUP rpcs with
// their nine manifest inputs are v1; today's MUP devices, and a module
// that lacks one of the nine, are COSE.
func TestDetectProtocol(t *testing.T) {
	v1 := generateModule(t, "mup-v1-device.jsonld").Text
	for _, c := range []struct {
		name, source string
		want         updateserver.Protocol
	}{
		{"MYNO's MUP", v1, updateserver.ProtocolV1},
		{"today's MUP", generateModule(t, "mup-device.jsonld").Text, updateserver.ProtocolCOSE},
		{"today's MUP, receipts", generateModule(t, "mup-device-signed.jsonld").Text, updateserver.ProtocolCOSE},
		{"no outer signature input", regexp.MustCompile(`(?s)\n( +)leaf input_9_OuterSignature \{.*?\n( +)\}`).ReplaceAllString(v1, ""), updateserver.ProtocolCOSE},
		{"an LED", generateModule(t, "led-color.jsonld").Text, updateserver.ProtocolCOSE},
	} {
		got, err := updateserver.DetectProtocol(c.source)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
	if _, err := updateserver.DetectProtocol("module {"); err == nil || !strings.Contains(err.Error(), "yang") {
		t.Errorf("broken source: %v", err)
	}
}

// An update's phases are listed in the order they happen on the wire.
func TestOrderedPhases(t *testing.T) {
	r := &updateserver.Result{Phases: map[string]time.Duration{"transfer": 3, "token": 1, "reboot": 5, "manifest": 2, "image": 4, "key": 6}}
	var names []string
	for _, p := range r.OrderedPhases() {
		names = append(names, p.Name)
	}
	if got := strings.Join(names, " "); got != "token manifest key transfer image reboot" {
		t.Errorf("phases %s", got)
	}
}

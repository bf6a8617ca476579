package updateserver_test

import (
	"regexp"
	"strings"
	"testing"

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

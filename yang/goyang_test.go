package yang

import (
	"strings"
	"testing"
)

// The goyang check is what stands between a generator bug and a client:
// it must refuse what goyang refuses.
func TestCheckWithGoyangRefusesBrokenModules(t *testing.T) {
	for name, text := range map[string]string{
		"syntax":          `module m { yang-version 1.1; namespace "urn:m"; prefix m; leaf x { type string; }`,
		"unknown typedef": `module m { yang-version 1.1; namespace "urn:m"; prefix m; leaf x { type no-such-type; } }`,
		"unknown grouping": `module m { yang-version 1.1; namespace "urn:m"; prefix m;
			container c { uses no-such-grouping; } }`,
		"bad range": `module m { yang-version 1.1; namespace "urn:m"; prefix m; leaf x { type int8 { range "0..300"; } } }`,
	} {
		if err := checkWithGoyang("m", text); err == nil {
			t.Errorf("%s: goyang accepted a broken module", name)
		}
	}
	ok := `module m { yang-version 1.1; namespace "urn:m"; prefix m; leaf x { type string; } }`
	if err := checkWithGoyang("m", ok); err != nil {
		t.Errorf("valid module refused: %v", err)
	}
}

func TestIdentifier(t *testing.T) {
	for in, want := range map[string]string{
		"led_1On":              "led_1On",
		"2turn.on":             "_2turn.on",
		"-x":                   "_-x",
		"a b%c":                "a_b_c",
		"":                     "_",
		"xmlThing":             "_xmlThing",
		"Ünïcode":              "__n__code",
		"WS-2.1":               "WS-2.1",
		strings.Repeat("a", 3): "aaa",
	} {
		if got := identifier(in); got != want {
			t.Errorf("identifier(%q) = %q, want %q", in, got, want)
		}
	}
	a := namespaceAlloc{"devices": true}
	if got := []string{a.take("devices"), a.take("x"), a.take("x"), a.take("x_2")}; strings.Join(got, ",") != "devices_2,x,x_2,x_2_2" {
		t.Errorf("allocations %v", got)
	}
}

package wire_test

import (
	"strings"
	"testing"

	"github.com/myno-bridge/myno/wire"
)

func TestValidUUID(t *testing.T) {
	for s, want := range map[string]bool{
		"3f2b8c1e-9a4d-4c1b-8e2f-0a1b2c3d4e5f": true, "dev_1.a:b": true, "": false, "a/b": false, "a b": false,
		"a+b": false, "a#": false, "a%s": false, "é": false, strings.Repeat("a", 129): false, strings.Repeat("a", 128): true,
	} {
		if wire.ValidUUID(s) != want {
			t.Errorf("wire.ValidUUID(%q) = %v", s, !want)
		}
	}
}

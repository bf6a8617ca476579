package bridge

import (
	"bytes"
	"testing"
)

// A stored description gives back exactly what the device sent, and the
// devices of one shape share one copy of it.
func TestStoredDescription(t *testing.T) {
	tests := []struct {
		name, uuid, desc string
		shared           bool // with the same description of another uuid
	}{
		{"uuid filled in", "dev-1", `{"@id":"urn:dev-1","uuid":"dev-1"}`, true},
		{"no uuid in it", "dev-1", `{"@id":"urn:x"}`, true},
		{"uuid inside a longer value", "dev-1", `{"id":"dev-10","u":"dev-1"}`, false},
		{"a NUL in it", "dev-1", "{\"a\":\"dev-1\x00\"}", false},
		{"an invalid uuid", "bad uuid", `{"u":"bad uuid"}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := storeDescription([]byte(tc.desc), tc.uuid)
			if got := s.bytes(tc.uuid); !bytes.Equal(got, []byte(tc.desc)) {
				t.Fatalf("bytes() = %q, want %q", got, tc.desc)
			}
			if !s.equal([]byte(tc.desc), tc.uuid) {
				t.Error("not equal to itself")
			}
			if s.equal([]byte(tc.desc+" "), tc.uuid) {
				t.Error("equal to another description")
			}
			other := bytes.ReplaceAll([]byte(tc.desc), []byte(tc.uuid), []byte("dev-2"))
			o := storeDescription(other, "dev-2")
			if !bytes.Equal(o.bytes("dev-2"), other) {
				t.Fatalf("other device: %q, want %q", o.bytes("dev-2"), other)
			}
			if tc.shared && o != s {
				t.Error("two devices of one shape do not share their description")
			}
		})
	}
}

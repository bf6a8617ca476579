package cluster_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/myno-bridge/myno/cluster"
)

func TestBindingCodec(t *testing.T) {
	good := cluster.Binding{Shape: cluster.ShapeHash([]byte("shape")), RegisteredAt: time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC), By: "a"}
	data, err := good.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := cluster.DecodeBinding(data); err != nil || got != good {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for _, tc := range []struct {
		name string
		data string
	}{
		{"not JSON", `{"shape":`},
		{"no shape", `{"registeredAt":"2026-12-02T00:00:00Z","by":"a"}`},
		{"shape not a SHA-256", `{"shape":"abc","by":"a"}`},
		{"shape not hex", `{"shape":"` + strings.Repeat("zz", 32) + `"}`},
		{"too large", `{"shape":"` + good.Shape + `","by":"` + strings.Repeat("x", cluster.MaxBinding) + `"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := cluster.DecodeBinding([]byte(tc.data)); !errors.Is(err, cluster.ErrBadBinding) {
				t.Fatalf("DecodeBinding: %v", err)
			}
		})
	}
	if _, err := (cluster.Binding{Shape: good.Shape, By: strings.Repeat("x", cluster.MaxBinding)}).Encode(); !errors.Is(err, cluster.ErrBadBinding) {
		t.Fatalf("Encode of an oversized binding: %v", err)
	}
}

// FuzzDecodeBinding: whatever etcd holds under devices/, decoding neither
// panics nor accepts what it could not write back.
func FuzzDecodeBinding(f *testing.F) {
	f.Add([]byte(`{"shape":"` + cluster.ShapeHash(nil) + `","registeredAt":"2026-12-02T00:00:00Z","by":"a"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := cluster.DecodeBinding(data)
		if err != nil {
			return
		}
		if _, err := b.Encode(); err != nil && !errors.Is(err, cluster.ErrBadBinding) {
			t.Fatalf("a decoded binding does not encode: %v", err)
		}
	})
}

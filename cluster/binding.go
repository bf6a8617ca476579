package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// MaxBinding bounds a device's binding in etcd: the issue's ≤ 1 KiB per
// device, whatever its description's size (that is stored once per shape).
const MaxBinding = 1024

// Binding ties a device to its shape: what etcd holds per device.
type Binding struct {
	Shape        string    `json:"shape"`        // ShapeHash of the description without its uuid
	RegisteredAt time.Time `json:"registeredAt"` // when the device registered
	By           string    `json:"by"`           // the instance that registered it
	// Written is when By wrote the binding to etcd, after taking the
	// registration (RegisteredAt): a follower's replication lag runs
	// from it (the instances share a clock only as far as NTP keeps them).
	Written time.Time `json:"written"`
}

// ErrBadBinding is wrapped by DecodeBinding's errors.
var ErrBadBinding = errors.New("bad device binding")

// Encode serialises b; it fails when the result exceeds MaxBinding.
func (b Binding) Encode() ([]byte, error) {
	out, err := json.Marshal(b)
	if err != nil {
		return nil, err
	}
	if len(out) > MaxBinding {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrBadBinding, len(out), MaxBinding)
	}
	return out, nil
}

// DecodeBinding parses a binding as Encode writes it.
func DecodeBinding(data []byte) (Binding, error) {
	var b Binding
	if len(data) > MaxBinding {
		return b, fmt.Errorf("%w: %d bytes, at most %d", ErrBadBinding, len(data), MaxBinding)
	}
	if err := json.Unmarshal(data, &b); err != nil {
		return b, fmt.Errorf("%w: %w", ErrBadBinding, err)
	}
	if !validHash(b.Shape) {
		return b, fmt.Errorf("%w: shape %q is not a SHA-256 in hex", ErrBadBinding, b.Shape)
	}
	return b, nil
}

// ShapeHash names a shape: the SHA-256 of the description without its
// uuid, in hex.
func ShapeHash(shape []byte) string {
	sum := sha256.Sum256(shape)
	return hex.EncodeToString(sum[:])
}

func validHash(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

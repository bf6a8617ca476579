package mup_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/myno-bridge/myno/mup"
)

// Sealed slices: a round trip gives the slice back; a changed byte, a
// slice moved to another index, another key or a truncated slice are
// refused with ErrSliceOpen; the overhead is SealedSliceOverhead.
func TestSliceCipher(t *testing.T) {
	key := bytes.Repeat([]byte{1}, 32)
	c, err := mup.NewSliceCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	plain := mup.Slice{Index: 7, Data: []byte("firmware bytes of slice seven")}
	sealed, err := c.Seal(plain)
	if err != nil {
		t.Fatal(err)
	}
	if sealed.Index != 7 || len(sealed.Data) != len(plain.Data)+mup.SealedSliceOverhead || bytes.Contains(sealed.Data, plain.Data) {
		t.Fatalf("sealed slice %d, %d bytes", sealed.Index, len(sealed.Data))
	}
	again, _ := c.Seal(plain)
	if bytes.Equal(again.Data, sealed.Data) {
		t.Error("two seals of one slice are identical: the nonce is not fresh")
	}
	got, err := c.Open(sealed)
	if err != nil || got.Index != 7 || !bytes.Equal(got.Data, plain.Data) {
		t.Fatalf("open: %v %q", err, got.Data)
	}
	// Through the wire codec too.
	dec, err := mup.DecodeSlice(sealed.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Open(dec); err != nil {
		t.Fatalf("open after the wire: %v", err)
	}
	other, _ := mup.NewSliceCipher(bytes.Repeat([]byte{2}, 32))
	for name, tc := range map[string]struct {
		c *mup.SliceCipher
		s mup.Slice
	}{
		"a changed byte":   {c, mup.Slice{Index: 7, Data: flip(sealed.Data, 20)}},
		"a changed tag":    {c, mup.Slice{Index: 7, Data: flip(sealed.Data, len(sealed.Data)-1)}},
		"a changed nonce":  {c, mup.Slice{Index: 7, Data: flip(sealed.Data, 0)}},
		"another position": {c, mup.Slice{Index: 8, Data: sealed.Data}},
		"another key":      {other, sealed},
		"truncated":        {c, mup.Slice{Index: 7, Data: sealed.Data[:mup.SealedSliceOverhead-1]}},
		"empty":            {c, mup.Slice{Index: 7}},
	} {
		if _, err := tc.c.Open(tc.s); !errors.Is(err, mup.ErrSliceOpen) {
			t.Errorf("%s: %v, want ErrSliceOpen", name, err)
		}
	}
	for _, n := range []int{0, 16, 31, 33} {
		if _, err := mup.NewSliceCipher(make([]byte, n)); err == nil {
			t.Errorf("a %d-byte key was taken", n)
		}
	}
}

func flip(b []byte, i int) []byte {
	out := bytes.Clone(b)
	out[i] ^= 1
	return out
}

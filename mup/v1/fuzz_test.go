package v1

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// One fuzz target per decoder. Seeds, good and bad, are in
// testdata/fuzz/<target>/; each target checks that a refusal wraps
// ErrMalformed and that what is accepted encodes back to the same bytes
// (in lower case for the hex keys and signatures, the one place the
// formats are not canonical).

func refused(t *testing.T, b []byte, err error) {
	t.Helper()
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("%q: error %v does not wrap ErrMalformed", b, err)
	}
}

func FuzzDecodeField(f *testing.F) {
	f.Add([]byte("0,APP"))
	f.Add([]byte("6," + sig128))
	f.Fuzz(func(t *testing.T, b []byte) {
		field, err := DecodeField(b)
		if err != nil {
			refused(t, b, err)
			return
		}
		if enc, err := field.Encode(); err != nil || !bytes.Equal(enc, b) {
			t.Fatalf("%q encodes back as %q, %v", b, enc, err)
		}
		var m Manifest
		if err := m.Apply(field); err != nil {
			t.Fatalf("%q decodes but does not apply: %v", b, err)
		}
		if field.Index != IndexStart {
			if got := string(m.appendValue(nil, field.Index)); got != field.Value {
				t.Fatalf("%q applies as %q", b, got)
			}
		}
	})
}

func FuzzDecodeInner(f *testing.F) {
	f.Add([]byte("APP;0;" + hash64 + ";1999;2;1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeInner(b)
		if err != nil {
			refused(t, b, err)
			return
		}
		if enc, err := m.EncodeInner(); err != nil || !bytes.Equal(enc, b) {
			t.Fatalf("%q encodes back as %q, %v", b, enc, err)
		}
	})
}

func FuzzDecodeOuter(f *testing.F) {
	f.Add([]byte("APP;0;" + hash64 + ";1999;2;1;" + sig128 + ";123456"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeOuter(b)
		if err != nil {
			refused(t, b, err)
			return
		}
		enc, err := m.EncodeOuter()
		if err != nil || !bytes.Equal(enc, b) {
			t.Fatalf("%q encodes back as %q, %v", b, enc, err)
		}
		inner, err := m.EncodeInner()
		if err != nil || !bytes.HasPrefix(b, append(inner, ';')) {
			t.Fatalf("%q does not begin with its inner string %q", b, inner)
		}
	})
}

func FuzzDecodeToken(f *testing.F) {
	f.Add([]byte("123456,1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tok, err := DecodeToken(b)
		if err != nil {
			refused(t, b, err)
			return
		}
		if enc, err := tok.Encode(); err != nil || !bytes.Equal(enc, b) {
			t.Fatalf("%q encodes back as %q, %v", b, enc, err)
		}
	})
}

func FuzzDecodeSlice(f *testing.F) {
	f.Add([]byte("0,MUPv1,\x00\x01;FIN;"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeSlice(b)
		if err != nil {
			refused(t, b, err)
			return
		}
		if enc, err := s.Encode(); err != nil || !bytes.Equal(enc, b) {
			t.Fatalf("%q encodes back as %q, %v", b, enc, err)
		}
		if !bytes.HasSuffix(b, s.Data) || len(s.Data) == 0 || len(s.Data) > SliceSize {
			t.Fatalf("%q: data %q", b, s.Data)
		}
	})
}

func FuzzDecodeAck(f *testing.F) {
	f.Add([]byte("146,OK"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := DecodeAck(b)
		if err != nil {
			refused(t, b, err)
			return
		}
		if enc, err := a.Encode(); err != nil || !bytes.Equal(enc, b) {
			t.Fatalf("%q encodes back as %q, %v", b, enc, err)
		}
	})
}

func FuzzDecodeAnswer(f *testing.F) {
	f.Add([]byte("MANIFEST-SUCCESS"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := DecodeAnswer(b)
		if err != nil {
			refused(t, b, err)
			return
		}
		if enc, err := a.Encode(); err != nil || !bytes.Equal(enc, b) {
			t.Fatalf("%q encodes back as %q, %v", b, enc, err)
		}
	})
}

func FuzzDecodeSignature(f *testing.F) {
	f.Add([]byte(sig128))
	f.Fuzz(func(t *testing.T, b []byte) {
		sig, err := DecodeSignature(b)
		if err != nil {
			refused(t, b, err)
			return
		}
		if enc := hex.EncodeToString(sig[:]); enc != string(bytes.ToLower(b)) {
			t.Fatalf("%q encodes back as %q", b, enc)
		}
	})
}

func FuzzDecodePrivateKey(f *testing.F) {
	f.Add([]byte("901a2e11e1b654fe150f4d76826673e1216c579a3c46a87637c76e7a6367ed5d"))
	f.Fuzz(func(t *testing.T, b []byte) {
		key, err := DecodePrivateKey(b)
		if err != nil {
			refused(t, b, err)
			return
		}
		if enc, err := EncodePrivateKey(key); err != nil || !bytes.Equal(enc, bytes.ToLower(b)) {
			t.Fatalf("%q encodes back as %q, %v", b, enc, err)
		}
		pub, err := EncodePublicKey(&key.PublicKey)
		if err != nil {
			t.Fatalf("%q: its public key does not encode: %v", b, err)
		}
		if back, err := DecodePublicKey(pub); err != nil || !back.Equal(&key.PublicKey) {
			t.Fatalf("%q: its public key does not round-trip: %v", b, err)
		}
	})
}

func FuzzDecodePublicKey(f *testing.F) {
	f.Add([]byte("6e1f4e975cbb89a4091db5b88e7e81bf089977684e88b393da0737959abf4832766edb4a35df53893ad1f2bed01d0e2ac692c1305a22ba2499e441021c1252f0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pub, err := DecodePublicKey(b)
		if err != nil {
			refused(t, b, err)
			return
		}
		if enc, err := EncodePublicKey(pub); err != nil || !bytes.Equal(enc, bytes.ToLower(b)) {
			t.Fatalf("%q encodes back as %q, %v", b, enc, err)
		}
	})
}

// The seeds are named good-… or bad-…: each must be accepted or refused
// accordingly, so that the corpus keeps saying what it means.
func TestFuzzSeeds(t *testing.T) {
	decoders := map[string]func([]byte) error{
		"FuzzDecodeField":      func(b []byte) error { _, err := DecodeField(b); return err },
		"FuzzDecodeInner":      func(b []byte) error { _, err := DecodeInner(b); return err },
		"FuzzDecodeOuter":      func(b []byte) error { _, err := DecodeOuter(b); return err },
		"FuzzDecodeToken":      func(b []byte) error { _, err := DecodeToken(b); return err },
		"FuzzDecodeSlice":      func(b []byte) error { _, err := DecodeSlice(b); return err },
		"FuzzDecodeAck":        func(b []byte) error { _, err := DecodeAck(b); return err },
		"FuzzDecodeAnswer":     func(b []byte) error { _, err := DecodeAnswer(b); return err },
		"FuzzDecodeSignature":  func(b []byte) error { _, err := DecodeSignature(b); return err },
		"FuzzDecodePrivateKey": func(b []byte) error { _, err := DecodePrivateKey(b); return err },
		"FuzzDecodePublicKey":  func(b []byte) error { _, err := DecodePublicKey(b); return err },
	}
	for target, decode := range decoders {
		dir := filepath.Join("testdata", "fuzz", target)
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var good, bad int
		for _, e := range entries {
			text, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			lit, ok := strings.CutPrefix(string(text), "go test fuzz v1\n[]byte(")
			lit, ok2 := strings.CutSuffix(lit, ")\n")
			value, err := strconv.Unquote(lit)
			if !ok || !ok2 || err != nil {
				t.Errorf("%s/%s: not a []byte seed", target, e.Name())
				continue
			}
			err = decode([]byte(value))
			switch {
			case strings.HasPrefix(e.Name(), "good-"):
				good++
				if err != nil {
					t.Errorf("%s/%s is refused: %v", target, e.Name(), err)
				}
			case strings.HasPrefix(e.Name(), "bad-"):
				bad++
				if err == nil {
					t.Errorf("%s/%s is accepted", target, e.Name())
				}
			}
		}
		if good == 0 || bad == 0 {
			t.Errorf("%s: %d good and %d bad seeds, want some of each", target, good, bad)
		}
	}
}

package v1

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

const (
	hash64 = "d9565660b31fc0b0760773c2603b4f9313f744950c820b3f15c0d90ac2104e6e"
	sig128 = "3bb12a5cfb70cd9fed0ce04ec7db3d3f45e8ba9ce8851b9e9b64b67f4734ea9ee7a6aa15b33bcac9bbec6059424e4c1353011dbb91683a2dc2d2e660d09e58e4"
)

func TestDecodeField(t *testing.T) {
	for _, ok := range []string{
		"0,APP", "0,MYNO-APP-7", "0," + strings.Repeat("~", MaxAppIDLen), "0,!", "0,\"'<>&",
		"1,0", "1,8192", "1,2147483647", "3,1999", "4,2", "5,1", "7,123456", "7,987654321",
		"2," + hash64,
		"6," + sig128, "6," + strings.ToUpper(sig128), "8," + sig128, "8,AbCd" + sig128[4:],
		"9,START-UPDATE",
	} {
		f, err := DecodeField([]byte(ok))
		if err != nil {
			t.Errorf("%s: %v", ok, err)
			continue
		}
		if back, err := f.Encode(); err != nil || string(back) != ok {
			t.Errorf("%s encodes back as %s, %v", ok, back, err)
		}
	}
	for _, tc := range []struct{ in, why string }{
		{"", "want <index>,<value>"},
		{"0", "want <index>,<value>"},
		{",APP", "want <index>,<value>"},
		{"+0,APP", "want <index>,<value>"},
		{"-1,APP", "want <index>,<value>"},
		{"10,APP", "want <index>,<value>"},
		{"00,APP", "want <index>,<value>"},
		{" 0,APP", "want <index>,<value>"},
		{"0 ,APP", "want <index>,<value>"},
		{"a,APP", "want <index>,<value>"},
		{"0;APP", "want <index>,<value>"},
		{"0,", "AppId of 0 characters"},
		{"0," + strings.Repeat("A", MaxAppIDLen+1), "AppId of 32 characters"},
		{"0,A%sB", "printf format"},
		{"0,A;B", "separator"},
		{"0,A,B", "separator"},
		{"0,A B", "byte 0x20"},
		{"0,APP\n", "byte 0x0a"},
		{"0,AP\x00P", "byte 0x00"},
		{"0,Äpp", "byte 0xc3"},
		{"1,", "empty"},
		{"1,01", "leading zero"},
		{"1,00", "leading zero"},
		{"1,+1", "has a sign"},
		{"1,-1", "has a sign"},
		{"1, 1", "not a decimal"},
		{"1,1 ", "not a decimal"},
		{"1,0x10", "not a decimal"},
		{"1,1e3", "not a decimal"},
		{"3,2147483648", "over 2147483647"},
		{"3,4294967296", "over 2147483647"},
		{"3,99999999999", "longer than any number"},
		{"2," + strings.ToUpper(hash64), "lower-case hex"},
		{"2," + hash64[:63], "lower-case hex"},
		{"2," + hash64 + "0", "lower-case hex"},
		{"2,", "lower-case hex"},
		{"6," + sig128[:127], "want 128 hex digits"},
		{"6," + sig128[:127] + "g", "want 128 hex digits"},
		{"6," + sig128[1:] + "\n", "want 128 hex digits"},
		{"6," + sig128 + "\n", "longer than any"},
		{"8,", "want 128 hex digits"},
		{"9,", "START-UPDATE"},
		{"9,start-update", "START-UPDATE"},
		{"9,START", "START-UPDATE"},
		{"9,START-UPDATE ", "START-UPDATE"},
		{"8," + sig128 + "0", "longer than any"},
		{strings.Repeat("1", 10000), "longer than any"},
	} {
		_, err := DecodeField([]byte(tc.in))
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("%.40q: %v, want an error saying %q", tc.in, err, tc.why)
		}
	}
}

func TestFieldEncodeRefuses(t *testing.T) {
	for _, f := range []Field{
		{Index: -1, Value: "APP"}, {Index: 10, Value: "x"}, {Index: 0, Value: ""}, {Index: 1, Value: "01"},
		{Index: 2, Value: strings.ToUpper(hash64)}, {Index: 6, Value: "00"}, {Index: 9, Value: "FIN"},
	} {
		if b, err := f.Encode(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%+v encodes as %q, %v", f, b, err)
		}
	}
}

func TestManifestEncodeRefuses(t *testing.T) {
	good := randomManifest(rand.New(rand.NewPCG(1, 2)))
	for name, change := range map[string]func(*Manifest){
		"empty AppId":          func(m *Manifest) { m.AppID = "" },
		"AppId with %":         func(m *Manifest) { m.AppID = "%n" },
		"LinkOffset > max":     func(m *Manifest) { m.LinkOffset = MaxInt + 1 },
		"Size > max":           func(m *Manifest) { m.Size = 1<<32 - 1 },
		"Version > max":        func(m *Manifest) { m.Version = MaxInt + 1 },
		"OldVersion > max":     func(m *Manifest) { m.OldVersion = MaxInt + 1 },
		"Nonce > max":          func(m *Manifest) { m.Nonce = MaxInt + 1 },
		"no InnerSignature":    func(m *Manifest) { m.InnerSignature = "" },
		"short InnerSignature": func(m *Manifest) { m.InnerSignature = sig128[:126] },
		"no OuterSignature":    func(m *Manifest) { m.OuterSignature = "" },
	} {
		m := good
		change(&m)
		_, errInner := m.EncodeInner()
		_, errOuter := m.EncodeOuter()
		_, errFields := m.Fields()
		innerPart := !strings.Contains(name, "Signature") && name != "Nonce > max"
		switch {
		case !errors.Is(errFields, ErrMalformed):
			t.Errorf("%s: Fields: %v", name, errFields)
		case innerPart && !errors.Is(errInner, ErrMalformed):
			t.Errorf("%s: EncodeInner: %v", name, errInner)
		case name != "no OuterSignature" && !errors.Is(errOuter, ErrMalformed):
			t.Errorf("%s: EncodeOuter: %v", name, errOuter)
		case !innerPart && errInner != nil:
			t.Errorf("%s: EncodeInner needs only the inner values: %v", name, errInner)
		}
		if err := m.Validate(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Validate: %v", name, err)
		}
	}
	if _, err := NewManifest([]byte("image"), "A;B", 0, 2, 1); !errors.Is(err, ErrMalformed) {
		t.Errorf("NewManifest with AppId A;B: %v", err)
	}
}

func randomManifest(r *rand.Rand) Manifest {
	const appChars = "!\"#$&'()*+-./0123456789:<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~"
	hexText := func(n int, upper bool) string {
		digits := "0123456789abcdef"
		if upper {
			digits = "0123456789ABCDEF"
		}
		var b strings.Builder
		for range n {
			b.WriteByte(digits[r.IntN(16)])
		}
		return b.String()
	}
	var app strings.Builder
	for range 1 + r.IntN(MaxAppIDLen) {
		app.WriteByte(appChars[r.IntN(len(appChars))])
	}
	num := func() uint32 {
		if r.IntN(4) == 0 {
			return []uint32{0, 1, 9, 10, MaxInt}[r.IntN(5)]
		}
		return r.Uint32N(MaxInt + 1)
	}
	m := Manifest{
		AppID: app.String(), LinkOffset: num(), Size: num(), Version: num(), OldVersion: num(), Nonce: num(),
		InnerSignature: hexText(SignatureHexLen, r.IntN(2) == 0), OuterSignature: hexText(SignatureHexLen, r.IntN(2) == 0),
	}
	for i := range m.Hash {
		m.Hash[i] = byte(r.Uint32())
	}
	return m
}

// decode(encode(m)) == m for the fields, the inner and the outer string.
func TestManifestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(14, 1))
	for range 2000 {
		m := randomManifest(r)
		fields, err := m.Fields()
		if err != nil {
			t.Fatalf("%+v: %v", m, err)
		}
		var back Manifest
		var asm Assembler
		for _, f := range fields {
			b, err := f.Encode()
			if err != nil {
				t.Fatal(err)
			}
			g, err := DecodeField(b)
			if err != nil || g != f {
				t.Fatalf("%s: %+v %v", b, g, err)
			}
			if err := back.Apply(g); err != nil {
				t.Fatal(err)
			}
			if got, done, err := asm.Add(g); err != nil || (done && got != m) {
				t.Fatalf("assembled %+v, %v", got, err)
			}
		}
		if back != m {
			t.Fatalf("fields give %+v, want %+v", back, m)
		}

		inner, _ := m.EncodeInner()
		gotInner, err := DecodeInner(inner)
		want := Manifest{AppID: m.AppID, LinkOffset: m.LinkOffset, Hash: m.Hash, Size: m.Size, Version: m.Version, OldVersion: m.OldVersion}
		if err != nil || gotInner != want {
			t.Fatalf("%s decodes as %+v, %v", inner, gotInner, err)
		}
		outer, _ := m.EncodeOuter()
		gotOuter, err := DecodeOuter(outer)
		want.InnerSignature, want.Nonce = m.InnerSignature, m.Nonce
		if err != nil || gotOuter != want {
			t.Fatalf("%s decodes as %+v, %v", outer, gotOuter, err)
		}
		if len(inner) > MaxInnerLen || len(outer) > MaxOuterLen {
			t.Fatalf("%d and %d bytes, over the bounds", len(inner), len(outer))
		}
	}
}

func TestDecodeSignedRefuses(t *testing.T) {
	inner := "APP;0;" + hash64 + ";1999;2;1"
	outer := inner + ";" + sig128 + ";123456"
	for _, tc := range []struct {
		in    string
		outer bool
		why   string
	}{
		{"", false, "1 ';'-separated values, want 6"},
		{inner + ";", false, "7 ';'-separated values"},
		{";" + inner, false, "7 ';'-separated values"},
		{inner + ";" + sig128, false, "longer than any"},
		{strings.Replace(inner, ";1999;", ";01999;", 1), false, "leading zero"},
		{strings.Replace(inner, ";1999;", "; 1999;", 1), false, "not a decimal"},
		{strings.Replace(inner, ";1999;", ";-1999;", 1), false, "has a sign"},
		{strings.Replace(inner, "APP;", "A%P;", 1), false, "printf format"},
		{strings.Replace(inner, hash64, strings.ToUpper(hash64), 1), false, "lower-case hex"},
		{inner + ";", false, "want 6"},
		{inner, true, "6 ';'-separated values, want 8"},
		{outer + ";MYNO-UPDATE-8A12", true, "9 ';'-separated values"},
		{outer + ";", true, "9 ';'-separated values"},
		{strings.Replace(outer, sig128, sig128[1:], 1), true, "want 128 hex digits"},
		{strings.Replace(outer, ";123456", ";0123456", 1), true, "leading zero"},
		{outer + strings.Repeat("0", MaxOuterLen), true, "longer than any"},
		{strings.Repeat(";", MaxInnerLen+1), false, "longer than any"},
	} {
		var err error
		if tc.outer {
			_, err = DecodeOuter([]byte(tc.in))
		} else {
			_, err = DecodeInner([]byte(tc.in))
		}
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("%.50q: %v, want an error saying %q", tc.in, err, tc.why)
		}
	}
}

func TestAssembler(t *testing.T) {
	m := randomManifest(rand.New(rand.NewPCG(3, 4)))
	fields, _ := m.Fields()
	var a Assembler
	// START-UPDATE first: nothing there yet.
	if _, done, err := a.Add(fields[IndexStart]); done || !errors.Is(err, ErrIncomplete) || !strings.Contains(err.Error(), "[0 1 2 3 4 5 6 7 8]") {
		t.Fatalf("START-UPDATE alone: %v %v", done, err)
	}
	// A missing field is named; a bad field changes nothing.
	for _, f := range fields[:IndexNonce] {
		if _, _, err := a.Add(f); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := a.Add(Field{Index: IndexAppID, Value: "bad;app"}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad field: %v", err)
	}
	if _, _, err := a.Add(fields[IndexOuterSignature]); err != nil {
		t.Fatal(err)
	}
	if _, done, err := a.Add(fields[IndexStart]); done || !errors.Is(err, ErrIncomplete) || !strings.Contains(err.Error(), "[7]") {
		t.Fatalf("without the nonce: %v %v", done, err)
	}
	// A repeated index overwrites, as on the device.
	if _, _, err := a.Add(Field{Index: IndexNonce, Value: "1"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Add(fields[IndexNonce]); err != nil {
		t.Fatal(err)
	}
	got, done, err := a.Add(fields[IndexStart])
	if !done || err != nil || got != m {
		t.Fatalf("complete: %v %v\n%+v\n%+v", done, err, got, m)
	}
	a.Reset()
	if _, _, err := a.Add(fields[IndexStart]); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("after Reset: %v", err)
	}
}

func TestLeaf(t *testing.T) {
	want := []string{
		"input_1_AppId", "input_2_LinkOffset", "input_3_Hash", "input_4_Size", "input_5_Version",
		"input_6_OldVersion", "input_7_InnerSignature", "input_8_DeviceNonce", "input_9_OuterSignature",
		"input_9_OuterSignature",
	}
	for i, w := range want {
		if Leaf(i) != w {
			t.Errorf("Leaf(%d) = %s", i, Leaf(i))
		}
	}
	if Leaf(-1) != "" || Leaf(NumFields) != "" {
		t.Error("Leaf out of range")
	}
}

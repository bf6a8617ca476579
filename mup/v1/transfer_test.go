package v1

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestToken(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Token
	}{
		{"123456,1", Token{Nonce: 123456, Version: 1}},
		{"0,0", Token{}},
		{"2147483647,2147483647", Token{Nonce: MaxInt, Version: MaxInt}},
	} {
		got, err := DecodeToken([]byte(tc.in))
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v %v", tc.in, got, err)
		}
		if b, err := got.Encode(); err != nil || string(b) != tc.in {
			t.Errorf("%+v encodes as %s, %v", got, b, err)
		}
	}
	for _, tc := range []struct{ in, why string }{
		{"", "want <nonce>,<version>"},
		{"123456", "want <nonce>,<version>"},
		{"123456,1;OK", "version: \"1;OK\" is not a decimal"},
		{"123456;1", "want <nonce>,<version>"},
		{",1", "nonce: empty"},
		{"1,", "version: empty"},
		{"1,2,3", "not a decimal"},
		{"-1,1", "has a sign"},
		{"+1,1", "has a sign"},
		{"01,1", "leading zero"},
		{"1, 1", "not a decimal"},
		{"2147483648,1", "over 2147483647"},
		{"1,2147483648", "over 2147483647"},
		{"12345678901,1", "longer than any"},
		{"1234567890,12345678901", "longer than any"},
	} {
		_, err := DecodeToken([]byte(tc.in))
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("%q: %v, want %q", tc.in, err, tc.why)
		}
	}
	if _, err := (Token{Nonce: MaxInt + 1}).Encode(); !errors.Is(err, ErrMalformed) {
		t.Errorf("nonce over MaxInt: %v", err)
	}
	if _, err := (Token{Version: 1<<32 - 1}).Encode(); !errors.Is(err, ErrMalformed) {
		t.Errorf("version over MaxInt: %v", err)
	}
}

func TestSlice(t *testing.T) {
	// The head of vector B's slice 0: the data holds ',', NUL and ';'.
	in := []byte("0,MUPv1,\x00\x01;FIN;")
	s, err := DecodeSlice(in)
	if err != nil || s.Index != 0 || string(s.Data) != "MUPv1,\x00\x01;FIN;" {
		t.Fatalf("%+v %v", s, err)
	}
	for _, ok := range [][]byte{
		[]byte("2147483647,x"), []byte("9,,"), []byte("146,;"), append([]byte("7,"), bytes.Repeat([]byte{0}, SliceSize)...),
	} {
		s, err := DecodeSlice(ok)
		if err != nil {
			t.Errorf("%.20q: %v", ok, err)
			continue
		}
		if b, err := s.Encode(); err != nil || !bytes.Equal(b, ok) {
			t.Errorf("%.20q encodes back as %.20q, %v", ok, b, err)
		}
	}
	for _, tc := range []struct {
		in  []byte
		why string
	}{
		{nil, "want <number>,<data>"},
		{[]byte("0"), "want <number>,<data>"},
		{[]byte("abc"), "want <number>,<data>"},
		{[]byte("12345678901,a"), "want <number>,<data>"},
		{[]byte(",abc"), "number: empty"},
		{[]byte("0,"), "0 bytes"},
		{[]byte("00,a"), "leading zero"},
		{[]byte("01,a"), "leading zero"},
		{[]byte("+1,a"), "has a sign"},
		{[]byte("-1,a"), "has a sign"},
		{[]byte(" 1,a"), "not a decimal"},
		{[]byte("1 ,a"), "not a decimal"},
		{[]byte("a,b"), "not a decimal"},
		{[]byte("2147483648,a"), "over 2147483647"},
		{append([]byte("1,"), make([]byte, SliceSize+1)...), "601 bytes"},
		{append([]byte("1234567890,"), make([]byte, SliceSize+1)...), "longer than any"},
	} {
		_, err := DecodeSlice(tc.in)
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("%.20q: %v, want %q", tc.in, err, tc.why)
		}
	}
	for _, bad := range []Slice{{Index: 0}, {Index: 1, Data: make([]byte, SliceSize+1)}, {Index: MaxInt + 1, Data: []byte("x")}} {
		if b, err := bad.Encode(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%d/%d bytes encodes: %q %v", bad.Index, len(bad.Data), b, err)
		}
	}
}

func TestSplitImage(t *testing.T) {
	image := make([]byte, 1999)
	for i := range image {
		image[i] = byte(i)
	}
	for _, tc := range []struct {
		size int
		lens []int
	}{
		{0, nil}, {1, []int{1}}, {600, []int{600}}, {601, []int{600, 1}}, {1999, []int{600, 600, 600, 199}},
	} {
		slices, err := SplitImage(image[:tc.size])
		if err != nil || len(slices) != len(tc.lens) {
			t.Fatalf("%d bytes: %d slices, %v", tc.size, len(slices), err)
		}
		var joined []byte
		for i, s := range slices {
			if int(s.Index) != i || len(s.Data) != tc.lens[i] {
				t.Errorf("%d bytes: slice %d has index %d and %d bytes", tc.size, i, s.Index, len(s.Data))
			}
			joined = append(joined, s.Data...)
		}
		if !bytes.Equal(joined, image[:tc.size]) {
			t.Errorf("%d bytes: slices do not join", tc.size)
		}
	}
	// A slice's data is capped: appending to it does not write into the
	// next slice.
	slices, _ := SplitImage(image)
	_ = append(slices[0].Data, 0xff)
	if slices[1].Data[0] != image[600] || image[600] == 0xff {
		t.Error("slice data is not capped")
	}
}

func TestAck(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint32
	}{{"0,OK", 0}, {"146,OK", 146}, {"2147483647,OK", MaxInt}} {
		a, err := DecodeAck([]byte(tc.in))
		if err != nil || a.Index != tc.want {
			t.Errorf("%s: %+v %v", tc.in, a, err)
		}
		if b, err := a.Encode(); err != nil || string(b) != tc.in {
			t.Errorf("%+v encodes as %s, %v", a, b, err)
		}
	}
	for _, tc := range []struct{ in, why string }{
		{"", "want <number>,OK"},
		{"1", "want <number>,OK"},
		{"1,ok", "want <number>,OK"},
		{"1;OK", "want <number>,OK"},
		{"1,OK\x00", "want <number>,OK"},
		{"1,OK\n", "want <number>,OK"},
		{"1,OK,", "want <number>,OK"},
		{",OK", "number: empty"},
		{"-1,OK", "has a sign"}, // MYNO's firmware for a first slice other than 0
		{"+1,OK", "has a sign"},
		{"01,OK", "leading zero"},
		{" 1,OK", "not a decimal"},
		{"1,2,OK", "not a decimal"},
		{"2147483648,OK", "over 2147483647"},
		{"12345678901,OK", "longer than any"},
	} {
		_, err := DecodeAck([]byte(tc.in))
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("%q: %v, want %q", tc.in, err, tc.why)
		}
	}
	if _, err := (Ack{Index: MaxInt + 1}).Encode(); !errors.Is(err, ErrMalformed) {
		t.Errorf("ack over MaxInt: %v", err)
	}
}

func TestAnswer(t *testing.T) {
	for _, a := range []Answer{AnswerOK, AnswerManifestSuccess, AnswerFirmwareSuccess, AnswerError, AnswerNoResponse} {
		got, err := DecodeAnswer([]byte(a))
		if err != nil || got != a {
			t.Errorf("%s: %s %v", a, got, err)
		}
		if b, err := a.Encode(); err != nil || string(b) != string(a) {
			t.Errorf("%s encodes as %s, %v", a, b, err)
		}
	}
	for _, bad := range []string{"", "ok", "OK ", " OK", "OK\x00", "10_OK", "12_ERROR", "MANIFEST-NOT-VALID", "INNER-SIGN-INVALID", "NOOP", "NACK", "123456,1", "FIN", strings.Repeat("O", 1000)} {
		if _, err := DecodeAnswer([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%.20q: %v", bad, err)
		}
		if _, err := Answer(bad).Encode(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%.20q encodes: %v", bad, err)
		}
	}
}

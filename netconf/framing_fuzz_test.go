package netconf

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"
)

// frClass maps a decode error to the sentinel it stands for, failing the
// test on any other error.
func frClass(t *testing.T, err error) error {
	t.Helper()
	switch {
	case err == io.EOF, err == io.ErrUnexpectedEOF:
		return err
	case frSameErr(err, ErrMalformedFrame):
		return ErrMalformedFrame
	case frSameErr(err, ErrMessageTooLarge):
		return ErrMessageTooLarge
	}
	t.Fatalf("error %T %v is neither io.EOF, io.ErrUnexpectedEOF nor a *FramingError", err, err)
	return nil
}

// frSeedStreams adds the table's streams of one framing and the corpus.
func frSeedStreams(f *testing.F, framing Framing) {
	for _, tc := range frCases {
		if tc.framing == framing {
			f.Add([]byte(tc.raw), uint16(tc.max))
		}
	}
	files, _ := filepath.Glob(filepath.Join(frTestdata, "*.bin"))
	for _, p := range files {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data, uint16(0))
		}
	}
}

// frCheckStream checks one decoded stream against the reader and the
// codec properties shared by both framings.
func frCheckStream(t *testing.T, framing Framing, data []byte, maxMessage int) {
	decode := DecodeEOM
	if framing == FramingChunked {
		decode = DecodeChunked
	}
	limit := frameMaxMessage(maxMessage)

	// The whole stream: every message within the limit, and the same
	// messages and final error from the pure decoder and from FrameReader
	// however the bytes arrive.
	msgs, err := frDecodeAll(t, framing, data, maxMessage)
	class := frClass(t, err)
	for _, m := range msgs {
		if len(m) > limit {
			t.Fatalf("message of %d bytes over the limit %d", len(m), limit)
		}
		if framing == FramingChunked && len(m) == 0 {
			t.Fatalf("empty chunked message")
		}
	}
	readers := []func(io.Reader) io.Reader{iotest.HalfReader}
	if len(data) < 4096 {
		readers = append(readers, iotest.OneByteReader)
	}
	for _, wrap := range readers {
		fr := NewFrameReader(wrap(bytes.NewReader(data)), maxMessage)
		fr.SetFraming(framing)
		rmsgs, rerr := frReadAll(t, fr)
		if len(rmsgs) != len(msgs) {
			t.Fatalf("reader: %d messages, decoder %d", len(rmsgs), len(msgs))
		}
		for i := range msgs {
			if !bytes.Equal(rmsgs[i], msgs[i]) {
				t.Fatalf("message %d: reader %q, decoder %q", i, rmsgs[i], msgs[i])
			}
		}
		if !frSameErr(rerr, class) {
			t.Fatalf("reader ends with %v, decoder with %v", rerr, err)
		}
	}

	// The first message: it re-encodes, and every proper prefix of its
	// frame is incomplete, never malformed or too large.
	msg, rest, err := decode(data, maxMessage)
	if err != nil {
		return
	}
	var encodings [][]byte
	if framing == FramingChunked {
		for _, k := range []int{1, 3, len(msg), 0} {
			encodings = append(encodings, AppendChunked(nil, msg, k))
		}
	} else {
		encodings = append(encodings, AppendEOM(nil, msg))
	}
	for _, enc := range encodings {
		again, rest2, err := decode(append(enc, rest...), maxMessage)
		if err != nil || !bytes.Equal(again, msg) || !bytes.Equal(rest2, rest) {
			t.Fatalf("re-encoded %q decodes to %q, %q, %v", enc, again, rest2, err)
		}
	}
	consumed := len(data) - len(rest)
	step := 1
	if consumed > 512 {
		step = consumed/256 + 1
	}
	for k := 0; k < consumed; k += step {
		_, _, err := decode(data[:k], maxMessage)
		want := io.ErrUnexpectedEOF
		if k == 0 || (framing == FramingEOM && framingAllSpace(data[:k])) {
			want = io.EOF
		}
		if err != want {
			t.Fatalf("prefix %q of a valid frame: %v, want %v", data[:k], err, want)
		}
	}
}

// FuzzDecodeChunked: DecodeChunked never panics, fails only with io.EOF,
// io.ErrUnexpectedEOF or a *FramingError, returns a suffix of its input as
// rest, and agrees with FrameReader; a decoded message re-encodes with any
// chunk size to the same message.
func FuzzDecodeChunked(f *testing.F) {
	frSeedStreams(f, FramingChunked)
	f.Fuzz(func(t *testing.T, data []byte, maxMessage uint16) {
		frCheckStream(t, FramingChunked, data, int(maxMessage))
	})
}

// FuzzDecodeEOM: the same properties for the end-of-message framing.
func FuzzDecodeEOM(f *testing.F) {
	frSeedStreams(f, FramingEOM)
	f.Fuzz(func(t *testing.T, data []byte, maxMessage uint16) {
		frCheckStream(t, FramingEOM, data, int(maxMessage))
	})
}

// FuzzFrameRoundTrip: any message goes through FrameWriter and comes back
// whole from FrameReader, in both framings and with any chunk size, or is
// refused before anything is written (empty; in EOM, cut by the marker). A
// limit one byte below the message refuses it.
func FuzzFrameRoundTrip(f *testing.F) {
	for _, seed := range []string{"", "<rpc/>", "]]>", "a]]>", "<a>]]>]]></a>", "x]]>]]", "\n#5\nhello\n##\n", frAllBytes} {
		f.Add([]byte(seed), uint16(0))
		f.Add([]byte(seed), uint16(1))
		f.Add([]byte(seed), uint16(7))
	}
	f.Add(bytes.Repeat([]byte("<x/>"), 20000), uint16(0))
	f.Fuzz(func(t *testing.T, msg []byte, chunk uint16) {
		const other = "<rpc/>"
		for _, framing := range []Framing{FramingEOM, FramingChunked} {
			var out bytes.Buffer
			fw := NewFrameWriter(&out)
			fw.SetFraming(framing)
			fw.maxChunk = int(chunk) // 0: MaxChunkWrite
			err := fw.WriteMessage(msg)
			framable := len(msg) > 0
			if framing == FramingEOM {
				framable = framable && bytes.Index(AppendEOM(nil, msg), []byte(eomMarker)) == len(msg)
			}
			if !framable {
				if !frSameErr(err, ErrMalformedFrame) || out.Len() != 0 {
					t.Fatalf("framing %d: unframable %q: %v, wrote %q", framing, msg, err, out.Bytes())
				}
				continue
			}
			if err != nil {
				t.Fatalf("framing %d: %v", framing, err)
			}
			if err := fw.WriteMessage([]byte(other)); err != nil {
				t.Fatal(err)
			}
			if err := fw.WriteMessage(msg); err != nil {
				t.Fatal(err)
			}
			wire := out.Bytes()
			if framing == FramingChunked {
				frCheckChunkSizes(t, wire, int(chunk))
			}

			fr := NewFrameReader(iotest.HalfReader(bytes.NewReader(wire)), max(len(msg), len(other)))
			fr.SetFraming(framing)
			got, err := frReadAll(t, fr)
			if err != io.EOF || len(got) != 3 || !bytes.Equal(got[0], msg) || string(got[1]) != other || !bytes.Equal(got[2], msg) {
				t.Fatalf("framing %d: read back %q, %v", framing, got, err)
			}
			if len(msg) > 1 {
				fr := NewFrameReader(bytes.NewReader(wire), len(msg)-1)
				fr.SetFraming(framing)
				if _, err := fr.ReadMessage(); !frSameErr(err, ErrMessageTooLarge) {
					t.Fatalf("framing %d: limit len-1: %v", framing, err)
				}
			}
		}

		// A session: hello in EOM, then msg chunked right behind it.
		if len(msg) == 0 {
			return
		}
		var out bytes.Buffer
		fw := NewFrameWriter(&out)
		fw.maxChunk = int(chunk)
		if err := fw.WriteMessage([]byte("<hello/>")); err != nil {
			t.Fatal(err)
		}
		fw.SetFraming(FramingChunked)
		if err := fw.WriteMessage(msg); err != nil {
			t.Fatal(err)
		}
		fr := NewFrameReader(bytes.NewReader(out.Bytes()), 0)
		if hello, err := fr.ReadMessage(); err != nil || string(hello) != "<hello/>" {
			t.Fatalf("hello: %q, %v", hello, err)
		}
		fr.SetFraming(FramingChunked)
		got, err := frReadAll(t, fr)
		if err != io.EOF || len(got) != 1 || !bytes.Equal(got[0], msg) {
			t.Fatalf("after the hello: %q, %v", got, err)
		}
	})
}

// frCheckChunkSizes checks that no chunk of wire exceeds the writer's
// chunk size.
func frCheckChunkSizes(t *testing.T, wire []byte, maxChunk int) {
	t.Helper()
	if maxChunk <= 0 {
		maxChunk = MaxChunkWrite
	}
	for len(wire) > 0 {
		size, n, err := parseChunkHeader(wire)
		if err != nil {
			t.Fatalf("writer produced a bad header: %v", errors.Unwrap(err))
		}
		if size > uint64(maxChunk) {
			t.Fatalf("chunk of %d bytes, limit %d", size, maxChunk)
		}
		wire = wire[n+int(size):]
	}
}

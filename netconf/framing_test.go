package netconf

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

// frCase is one byte stream and what it decodes to. The same table drives
// the encoders (cases marked encode), the pure decoders and FrameReader
// under every reader of frReaders; malformed inputs are also stored in
// testdata/framing/ (file).
type frCase struct {
	desc     string
	framing  Framing
	raw      string
	msgs     []string // the messages in raw, in order
	err      error    // what follows them: io.EOF, io.ErrUnexpectedEOF, ErrMalformedFrame or ErrMessageTooLarge
	max      int      // maxMessage (0: DefaultMaxMessage)
	encode   bool     // raw is exactly the encoding of msgs (with maxChunk)
	maxChunk int      // chunk size for encode (0: MaxChunkWrite)
	file     string   // malformed input also stored as testdata/framing/<file>
}

// frAllBytes is a message holding every octet value, framing bytes included.
var frAllBytes = func() string {
	var b strings.Builder
	for i := range 256 {
		b.WriteByte(byte(i))
	}
	return b.String()
}()

var frCases = []frCase{
	// RFC 6242 §4.2: chunked framing, valid.
	{desc: "chunked empty stream", framing: FramingChunked, raw: "", err: io.EOF, encode: true},
	{desc: "chunked one chunk", framing: FramingChunked, raw: "\n#6\n<rpc/>\n##\n", msgs: []string{"<rpc/>"}, err: io.EOF, encode: true},
	{desc: "chunked one byte", framing: FramingChunked, raw: "\n#1\nx\n##\n", msgs: []string{"x"}, err: io.EOF, encode: true},
	{desc: "chunked split by maxChunk", framing: FramingChunked, raw: "\n#3\nabc\n#3\ndef\n#2\ngh\n##\n", msgs: []string{"abcdefgh"}, err: io.EOF, encode: true, maxChunk: 3},
	{desc: "chunked exact multiple of maxChunk", framing: FramingChunked, raw: "\n#4\nabcd\n#4\nefgh\n##\n", msgs: []string{"abcdefgh"}, err: io.EOF, encode: true, maxChunk: 4},
	{desc: "chunked one-byte chunks", framing: FramingChunked, raw: "\n#1\na\n#1\nb\n#1\nc\n##\n", msgs: []string{"abc"}, err: io.EOF, encode: true, maxChunk: 1},
	{desc: "chunked irregular chunks", framing: FramingChunked,
		raw:  "\n#4\n<rpc\n#15\n message-id=\"1\"\n#2\n/>\n##\n",
		msgs: []string{`<rpc message-id="1"/>`}, err: io.EOF},
	{desc: "chunked data holding framing bytes", framing: FramingChunked,
		raw:  "\n#14\n\n#5\n]]>]]>\n##\n\n##\n",
		msgs: []string{"\n#5\n]]>]]>\n##\n"}, err: io.EOF, encode: true},
	{desc: "chunked every octet value", framing: FramingChunked,
		raw:  "\n#256\n" + frAllBytes + "\n##\n",
		msgs: []string{frAllBytes}, err: io.EOF, encode: true},
	{desc: "chunked two-digit and three-digit sizes", framing: FramingChunked,
		raw:  "\n#10\n0123456789\n#100\n" + strings.Repeat("x", 100) + "\n##\n",
		msgs: []string{"0123456789" + strings.Repeat("x", 100)}, err: io.EOF},
	{desc: "chunked pipelined", framing: FramingChunked,
		raw:  "\n#1\na\n##\n\n#2\nbc\n##\n\n#3\ndef\n##\n",
		msgs: []string{"a", "bc", "def"}, err: io.EOF, encode: true},
	{desc: "chunked exactly maxMessage", framing: FramingChunked, max: 5,
		raw: "\n#2\nab\n#3\ncde\n##\n", msgs: []string{"abcde"}, err: io.EOF},

	// Chunked, truncated: the stream ends inside a message.
	{desc: "chunked truncated LF", framing: FramingChunked, raw: "\n", err: io.ErrUnexpectedEOF},
	{desc: "chunked truncated hash", framing: FramingChunked, raw: "\n#", err: io.ErrUnexpectedEOF},
	{desc: "chunked truncated size", framing: FramingChunked, raw: "\n#5", err: io.ErrUnexpectedEOF},
	{desc: "chunked truncated ten-digit size", framing: FramingChunked, raw: "\n#1234567890", err: io.ErrUnexpectedEOF},
	{desc: "chunked truncated after header", framing: FramingChunked, raw: "\n#5\n", err: io.ErrUnexpectedEOF},
	{desc: "chunked truncated data", framing: FramingChunked, raw: "\n#5\nhel", err: io.ErrUnexpectedEOF},
	{desc: "chunked missing end-of-chunks", framing: FramingChunked, raw: "\n#5\nhello", err: io.ErrUnexpectedEOF},
	{desc: "chunked truncated end-of-chunks 1", framing: FramingChunked, raw: "\n#5\nhello\n", err: io.ErrUnexpectedEOF},
	{desc: "chunked truncated end-of-chunks 2", framing: FramingChunked, raw: "\n#5\nhello\n#", err: io.ErrUnexpectedEOF},
	{desc: "chunked truncated end-of-chunks 3", framing: FramingChunked, raw: "\n#5\nhello\n##", err: io.ErrUnexpectedEOF},
	{desc: "chunked size larger than data", framing: FramingChunked, raw: "\n#9\nhello\n##\n", err: io.ErrUnexpectedEOF},
	{desc: "chunked truncated second message", framing: FramingChunked, raw: "\n#1\na\n##\n\n#", msgs: []string{"a"}, err: io.ErrUnexpectedEOF},

	// Chunked, malformed (RFC 6242 §4.2 grammar).
	{desc: "chunked missing leading LF", framing: FramingChunked, raw: "#5\nhello\n##\n", err: ErrMalformedFrame, file: "chunk-missing-lf.bin"},
	{desc: "chunked missing hash", framing: FramingChunked, raw: "\n5\nhello\n##\n", err: ErrMalformedFrame, file: "chunk-missing-hash.bin"},
	{desc: "chunked size zero", framing: FramingChunked, raw: "\n#0\n\n##\n", err: ErrMalformedFrame, file: "chunk-size-zero.bin"},
	{desc: "chunked leading zero", framing: FramingChunked, raw: "\n#05\nhello\n##\n", err: ErrMalformedFrame, file: "chunk-leading-zero.bin"},
	{desc: "chunked size above 4294967295", framing: FramingChunked, raw: "\n#4294967296\nhello\n##\n", err: ErrMalformedFrame, file: "chunk-size-overflow.bin"},
	{desc: "chunked size with 11 digits", framing: FramingChunked, raw: "\n#10000000000\nhello\n##\n", err: ErrMalformedFrame, file: "chunk-size-11-digits.bin"},
	{desc: "chunked size with many digits", framing: FramingChunked, raw: "\n#99999999999999999999999999\n", err: ErrMalformedFrame, file: "chunk-size-huge.bin"},
	{desc: "chunked non-digit in size", framing: FramingChunked, raw: "\n#5a\nhello\n##\n", err: ErrMalformedFrame, file: "chunk-nondigit.bin"},
	{desc: "chunked empty size", framing: FramingChunked, raw: "\n#\nhello\n##\n", err: ErrMalformedFrame, file: "chunk-size-empty.bin"},
	{desc: "chunked signed size", framing: FramingChunked, raw: "\n#+5\nhello\n##\n", err: ErrMalformedFrame, file: "chunk-size-sign.bin"},
	{desc: "chunked negative size", framing: FramingChunked, raw: "\n#-5\nhello\n##\n", err: ErrMalformedFrame, file: "chunk-size-negative.bin"},
	{desc: "chunked space before size", framing: FramingChunked, raw: "\n# 5\nhello\n##\n", err: ErrMalformedFrame, file: "chunk-size-space.bin"},
	{desc: "chunked hex size", framing: FramingChunked, raw: "\n#0x5\nhello\n##\n", err: ErrMalformedFrame, file: "chunk-size-hex.bin"},
	{desc: "chunked CR after size", framing: FramingChunked, raw: "\n#5\r\nhello\n##\n", err: ErrMalformedFrame, file: "chunk-size-crlf.bin"},
	{desc: "chunked CRLF line ends", framing: FramingChunked, raw: "\r\n#5\r\nhello\r\n##\r\n", err: ErrMalformedFrame, file: "chunk-crlf.bin"},
	{desc: "chunked no chunks", framing: FramingChunked, raw: "\n##\n", err: ErrMalformedFrame, file: "chunk-no-chunks.bin"},
	{desc: "chunked end-of-chunks without LF", framing: FramingChunked, raw: "\n#5\nhello\n##x", err: ErrMalformedFrame, file: "chunk-end-missing-lf.bin"},
	{desc: "chunked end-of-chunks with three hashes", framing: FramingChunked, raw: "\n#5\nhello\n###\n", err: ErrMalformedFrame, file: "chunk-end-triple-hash.bin"},
	{desc: "chunked size shorter than data", framing: FramingChunked, raw: "\n#3\nhello\n##\n", err: ErrMalformedFrame, file: "chunk-size-short.bin"},
	{desc: "chunked white space between messages", framing: FramingChunked, raw: "\n#1\na\n##\n\n\n#1\nb\n##\n", msgs: []string{"a"}, err: ErrMalformedFrame, file: "chunk-whitespace-between.bin"},
	{desc: "chunked garbage after a message", framing: FramingChunked, raw: "\n#1\na\n##\nxyz", msgs: []string{"a"}, err: ErrMalformedFrame, file: "chunk-trailing-garbage.bin"},
	{desc: "chunked end-of-message framing", framing: FramingChunked, raw: "<rpc/>]]>]]>", err: ErrMalformedFrame, file: "chunk-eom-framed.bin"},
	{desc: "chunked NUL in size", framing: FramingChunked, raw: "\n#5\x00\nhello\n##\n", err: ErrMalformedFrame, file: "chunk-size-nul.bin"},

	// Chunked, too large: decided from the header, before any chunk data.
	{desc: "chunked one chunk above max", framing: FramingChunked, max: 4, raw: "\n#5\nhello\n##\n", err: ErrMessageTooLarge},
	{desc: "chunked total above max", framing: FramingChunked, max: 4, raw: "\n#2\nab\n#3\ncde\n##\n", err: ErrMessageTooLarge},
	{desc: "chunked too large before data arrives", framing: FramingChunked, max: 4, raw: "\n#5\nhe", err: ErrMessageTooLarge},
	{desc: "chunked announced 4000000000", framing: FramingChunked, max: 1 << 20, raw: "\n#4000000000\n", err: ErrMessageTooLarge},
	{desc: "chunked largest legal size", framing: FramingChunked, raw: "\n#4294967295\n", err: ErrMessageTooLarge},
	{desc: "chunked too large second message", framing: FramingChunked, max: 3, raw: "\n#3\nabc\n##\n\n#4\nabcd\n##\n", msgs: []string{"abc"}, err: ErrMessageTooLarge},

	// RFC 6242 §4.3: end-of-message framing.
	{desc: "eom empty stream", framing: FramingEOM, raw: "", err: io.EOF, encode: true},
	{desc: "eom white space only", framing: FramingEOM, raw: " \r\n\t\n", err: io.EOF},
	{desc: "eom hello", framing: FramingEOM, raw: "<hello/>]]>]]>", msgs: []string{"<hello/>"}, err: io.EOF, encode: true},
	{desc: "eom trailing newline", framing: FramingEOM, raw: "<hello/>]]>]]>\n", msgs: []string{"<hello/>"}, err: io.EOF},
	{desc: "eom leading white space kept", framing: FramingEOM, raw: "\n  <rpc/>]]>]]>", msgs: []string{"\n  <rpc/>"}, err: io.EOF, encode: true},
	{desc: "eom pipelined", framing: FramingEOM, raw: "<a/>]]>]]>\n<b/>]]>]]>\n",
		msgs: []string{"<a/>", "\n<b/>"}, err: io.EOF},
	{desc: "eom empty message", framing: FramingEOM, raw: "]]>]]>", msgs: []string{""}, err: io.EOF, encode: true},
	{desc: "eom brackets in message", framing: FramingEOM, raw: "a]]>b]]c>]]>]]>", msgs: []string{"a]]>b]]c>"}, err: io.EOF, encode: true},
	{desc: "eom marker prefix before marker", framing: FramingEOM, raw: "x]]>]]]]>]]>", msgs: []string{"x]]>]]"}, err: io.EOF, encode: true},
	{desc: "eom first marker wins", framing: FramingEOM, raw: "a]]>]]>]]>", msgs: []string{"a"}, err: io.ErrUnexpectedEOF},
	{desc: "eom chunk-like content", framing: FramingEOM, raw: "\n#5\nhello\n##\n]]>]]>", msgs: []string{"\n#5\nhello\n##\n"}, err: io.EOF, encode: true},
	{desc: "eom every octet value", framing: FramingEOM, raw: frAllBytes + "]]>]]>", msgs: []string{frAllBytes}, err: io.EOF, encode: true},
	{desc: "eom exactly maxMessage", framing: FramingEOM, max: 5, raw: "hello]]>]]>", msgs: []string{"hello"}, err: io.EOF},
	{desc: "eom white space at maxMessage", framing: FramingEOM, max: 4, raw: "         ", err: io.EOF},

	// EOM, truncated.
	{desc: "eom no marker", framing: FramingEOM, raw: "<hello/>", err: io.ErrUnexpectedEOF},
	{desc: "eom partial marker", framing: FramingEOM, raw: "<hello/>]]>]]", err: io.ErrUnexpectedEOF},
	{desc: "eom truncated second message", framing: FramingEOM, raw: "<a/>]]>]]>  x", msgs: []string{"<a/>"}, err: io.ErrUnexpectedEOF},
	{desc: "eom below the too-large horizon", framing: FramingEOM, max: 4, raw: "hello", err: io.ErrUnexpectedEOF},

	// EOM, too large: decided while scanning, at maxMessage+6 bytes.
	{desc: "eom one byte above max", framing: FramingEOM, max: 4, raw: "hello]]>]]>", err: ErrMessageTooLarge},
	{desc: "eom no marker above max", framing: FramingEOM, max: 4, raw: "helloworld", err: ErrMessageTooLarge},
	{desc: "eom white space above max", framing: FramingEOM, max: 4, raw: "          ", err: ErrMessageTooLarge},
	{desc: "eom too large second message", framing: FramingEOM, max: 3, raw: "abc]]>]]>abcd]]>]]>", msgs: []string{"abc"}, err: ErrMessageTooLarge},
}

// frReaders deliver a stream in different pieces.
var frReaders = []struct {
	name string
	wrap func(io.Reader) io.Reader
}{
	{"whole", func(r io.Reader) io.Reader { return r }},
	{"one-byte", iotest.OneByteReader},
	{"half", iotest.HalfReader},
	{"data-err", iotest.DataErrReader},
}

// frSameErr reports whether got is the error want stands for: io.EOF and
// io.ErrUnexpectedEOF unwrapped, framing errors as a *FramingError.
func frSameErr(got, want error) bool {
	if want == io.EOF || want == io.ErrUnexpectedEOF {
		return got == want
	}
	var fe *FramingError
	return errors.As(got, &fe) && fe.Err == want && errors.Is(got, want)
}

// frDecodeAll decodes messages from data with the pure decoder until it
// fails, checking that every rest is a suffix of its data.
func frDecodeAll(t testing.TB, f Framing, data []byte, maxMessage int) ([][]byte, error) {
	t.Helper()
	var msgs [][]byte
	for {
		var msg, rest []byte
		var err error
		if f == FramingChunked {
			msg, rest, err = DecodeChunked(data, maxMessage)
		} else {
			msg, rest, err = DecodeEOM(data, maxMessage)
		}
		if err != nil {
			if msg != nil || !bytes.Equal(rest, data) {
				t.Fatalf("error %v with msg %q, rest %q", err, msg, rest)
			}
			return msgs, err
		}
		if len(rest) >= len(data) || !bytes.HasSuffix(data, rest) {
			t.Fatalf("rest %q is not a proper suffix of %q", rest, data)
		}
		msgs = append(msgs, msg)
		data = rest
	}
}

// frReadAll reads messages until ReadMessage fails, and checks that the
// failure is sticky.
func frReadAll(t testing.TB, fr *FrameReader) ([][]byte, error) {
	t.Helper()
	var msgs [][]byte
	for {
		msg, err := fr.ReadMessage()
		if err != nil {
			if msg != nil {
				t.Fatalf("error %v with msg %q", err, msg)
			}
			if again, err2 := fr.ReadMessage(); again != nil || err2 != err {
				t.Fatalf("error not sticky: %v then %q, %v", err, again, err2)
			}
			return msgs, err
		}
		if msg == nil {
			t.Fatalf("nil message without error")
		}
		msgs = append(msgs, msg)
	}
}

func frEqualMsgs(got [][]byte, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if string(got[i]) != want[i] {
			return false
		}
	}
	return true
}

func TestDecodeFraming(t *testing.T) {
	for _, tc := range frCases {
		t.Run(tc.desc, func(t *testing.T) {
			msgs, err := frDecodeAll(t, tc.framing, []byte(tc.raw), tc.max)
			if !frEqualMsgs(msgs, tc.msgs) {
				t.Errorf("messages %q, want %q", msgs, tc.msgs)
			}
			if !frSameErr(err, tc.err) {
				t.Errorf("error %v, want %v", err, tc.err)
			}
		})
	}
}

func TestFrameReader(t *testing.T) {
	for _, tc := range frCases {
		for _, rd := range frReaders {
			t.Run(tc.desc+"/"+rd.name, func(t *testing.T) {
				fr := NewFrameReader(rd.wrap(strings.NewReader(tc.raw)), tc.max)
				fr.SetFraming(tc.framing)
				msgs, err := frReadAll(t, fr)
				if !frEqualMsgs(msgs, tc.msgs) {
					t.Errorf("messages %q, want %q", msgs, tc.msgs)
				}
				if !frSameErr(err, tc.err) {
					t.Errorf("error %v, want %v", err, tc.err)
				}
			})
		}
	}
}

func TestEncodeFraming(t *testing.T) {
	for _, tc := range frCases {
		if !tc.encode {
			continue
		}
		t.Run(tc.desc, func(t *testing.T) {
			prefix := []byte("prefix")
			dst := slices.Clone(prefix)
			for _, m := range tc.msgs {
				if tc.framing == FramingChunked {
					dst = AppendChunked(dst, []byte(m), tc.maxChunk)
				} else {
					dst = AppendEOM(dst, []byte(m))
				}
			}
			if string(dst) != string(prefix)+tc.raw {
				t.Errorf("encoded %q, want %q", dst, string(prefix)+tc.raw)
			}
		})
	}
}

func TestFrameWriter(t *testing.T) {
	for _, tc := range frCases {
		if !tc.encode || slices.Contains(tc.msgs, "") {
			continue // WriteMessage refuses empty messages (TestFrameWriterRefuses)
		}
		t.Run(tc.desc, func(t *testing.T) {
			var out frWriteRecorder
			fw := NewFrameWriter(&out)
			fw.SetFraming(tc.framing)
			if tc.maxChunk > 0 {
				fw.maxChunk = tc.maxChunk
			}
			for _, m := range tc.msgs {
				if err := fw.WriteMessage([]byte(m)); err != nil {
					t.Fatalf("WriteMessage(%q): %v", m, err)
				}
			}
			if got := out.buf.String(); got != tc.raw {
				t.Errorf("wrote %q, want %q", got, tc.raw)
			}
			if out.writes != len(tc.msgs) {
				t.Errorf("%d Write calls for %d messages", out.writes, len(tc.msgs))
			}
		})
	}
}

// frWriteRecorder counts Write calls.
type frWriteRecorder struct {
	buf    bytes.Buffer
	writes int
}

func (w *frWriteRecorder) Write(p []byte) (int, error) {
	w.writes++
	return w.buf.Write(p)
}

func TestFrameWriterRefuses(t *testing.T) {
	for _, tc := range []struct {
		framing Framing
		msg     string
	}{
		{FramingChunked, ""},
		{FramingEOM, ""},
		{FramingEOM, "]]>]]>"},
		{FramingEOM, "<a>]]>]]></a>"},
		{FramingEOM, "<a/>]]>"}, // + marker = "<a/>]]>]]>]]>": cut after "<a/>"
		{FramingEOM, "]]>"},
	} {
		var out bytes.Buffer
		fw := NewFrameWriter(&out)
		fw.SetFraming(tc.framing)
		err := fw.WriteMessage([]byte(tc.msg))
		if !frSameErr(err, ErrMalformedFrame) {
			t.Errorf("framing %d, %q: error %v, want ErrMalformedFrame", tc.framing, tc.msg, err)
		}
		if out.Len() != 0 {
			t.Errorf("framing %d, %q: wrote %q", tc.framing, tc.msg, out.Bytes())
		}
		// A refused message is the caller's error, not the stream's.
		if err := fw.WriteMessage([]byte("<ok/>")); err != nil {
			t.Errorf("framing %d: write after refusal: %v", tc.framing, err)
		}
	}
	if got := AppendChunked([]byte("dst"), nil, 0); string(got) != "dst" {
		t.Errorf("AppendChunked of an empty message gave %q", got)
	}
}

func TestFrameWriterChunkSize(t *testing.T) {
	msg := bytes.Repeat([]byte("0123456789abcdef"), (2*MaxChunkWrite+22528)/16)
	var out frWriteRecorder
	fw := NewFrameWriter(&out)
	fw.SetFraming(FramingChunked)
	if err := fw.WriteMessage(msg); err != nil {
		t.Fatal(err)
	}
	if out.writes != 1 {
		t.Errorf("%d Write calls, want 1", out.writes)
	}
	want := AppendChunked(nil, msg, MaxChunkWrite)
	if !bytes.Equal(out.buf.Bytes(), want) {
		t.Fatalf("writer and AppendChunked disagree")
	}
	var sizes []int
	raw := out.buf.Bytes()
	for {
		size, n, err := parseChunkHeader(raw)
		if err != nil {
			t.Fatal(err)
		}
		if size == 0 {
			break
		}
		sizes = append(sizes, int(size))
		raw = raw[n+int(size):]
	}
	if !slices.Equal(sizes, []int{65536, 65536, 22528}) {
		t.Errorf("chunk sizes %v", sizes)
	}
	// A huge message does not pin its encoding buffer.
	if err := fw.WriteMessage(make([]byte, 2*frameWriteKeep)); err != nil || fw.buf != nil {
		t.Errorf("after a %d-byte message: %v, buffer of %d bytes kept", 2*frameWriteKeep, err, cap(fw.buf))
	}
	// maxChunk <= 0 means MaxChunkWrite; a huge one is one chunk.
	if !bytes.Equal(AppendChunked(nil, msg, 0), want) || !bytes.Equal(AppendChunked(nil, msg, -1), want) {
		t.Errorf("AppendChunked with maxChunk <= 0 is not MaxChunkWrite")
	}
	one := AppendChunked(nil, msg, math.MaxInt)
	if !bytes.HasPrefix(one, []byte("\n#"+strconv.Itoa(len(msg))+"\n")) || len(one) != len(msg)+len(strconv.Itoa(len(msg)))+3+4 {
		t.Errorf("AppendChunked with a huge maxChunk did not write one chunk")
	}
}

// frFailWriter fails every Write after the first n.
type frFailWriter struct {
	n, writes int
	err       error
}

func (w *frFailWriter) Write(p []byte) (int, error) {
	w.writes++
	if w.writes > w.n {
		return len(p) / 2, w.err
	}
	return len(p), nil
}

func TestFrameWriterErrorSticky(t *testing.T) {
	boom := errors.New("boom")
	w := &frFailWriter{n: 1, err: boom}
	fw := NewFrameWriter(w)
	if err := fw.WriteMessage([]byte("<a/>")); err != nil {
		t.Fatal(err)
	}
	if err := fw.WriteMessage([]byte("<b/>")); err != boom {
		t.Fatalf("error %v, want boom", err)
	}
	if err := fw.WriteMessage([]byte("<c/>")); err != boom || w.writes != 2 {
		t.Fatalf("after a failed write: error %v, %d writes", err, w.writes)
	}
}

func TestFrameWriterConcurrent(t *testing.T) {
	const writers, each = 8, 50
	var out frWriteRecorder
	fw := NewFrameWriter(&out)
	fw.SetFraming(FramingChunked)
	fw.maxChunk = 7 // many chunks per message
	var wg sync.WaitGroup
	want := map[string]bool{}
	for g := range writers {
		for i := range each {
			want[fmt.Sprintf("<rpc-reply message-id=\"%d-%d\"><data>%s</data></rpc-reply>", g, i, strings.Repeat("x", i))] = true
		}
		wg.Go(func() {
			for i := range each {
				msg := fmt.Sprintf("<rpc-reply message-id=\"%d-%d\"><data>%s</data></rpc-reply>", g, i, strings.Repeat("x", i))
				if err := fw.WriteMessage([]byte(msg)); err != nil {
					t.Error(err)
				}
				if i == each/2 {
					fw.SetFraming(FramingChunked) // concurrent SetFraming is safe too
				}
			}
		})
	}
	wg.Wait()
	if out.writes != writers*each {
		t.Errorf("%d Write calls for %d messages", out.writes, writers*each)
	}
	fr := NewFrameReader(&out.buf, 0)
	fr.SetFraming(FramingChunked)
	msgs, err := frReadAll(t, fr)
	if err != io.EOF {
		t.Fatalf("reading back: %v", err)
	}
	for _, m := range msgs {
		if !want[string(m)] {
			t.Fatalf("unexpected or repeated message %q", m)
		}
		delete(want, string(m))
	}
	if len(want) != 0 {
		t.Fatalf("%d messages missing", len(want))
	}
}

// RFC 6242 §4.1: the client may pipeline its first rpc right behind its
// hello; those bytes are already buffered when the framing switches.
func TestFrameReaderSwitchAfterHello(t *testing.T) {
	const stream = "<hello/>]]>]]>\n#6\n<rpc/>\n##\n\n#3\nabc\n##\n"
	for _, rd := range frReaders {
		t.Run(rd.name, func(t *testing.T) {
			fr := NewFrameReader(rd.wrap(strings.NewReader(stream)), 0)
			if fr.Framing() != FramingEOM {
				t.Fatalf("initial framing %d", fr.Framing())
			}
			hello, err := fr.ReadMessage()
			if err != nil || string(hello) != "<hello/>" {
				t.Fatalf("hello %q, %v", hello, err)
			}
			if rd.name == "whole" && fr.br.Buffered() == 0 {
				t.Fatalf("test needs the rpc buffered behind the hello")
			}
			fr.SetFraming(FramingChunked)
			if fr.Framing() != FramingChunked {
				t.Fatalf("framing %d after SetFraming", fr.Framing())
			}
			msgs, err := frReadAll(t, fr)
			if !frEqualMsgs(msgs, []string{"<rpc/>", "abc"}) || err != io.EOF {
				t.Fatalf("after switch: %q, %v", msgs, err)
			}
		})
	}
	// Without the switch the rest is one (unterminated) EOM message.
	fr := NewFrameReader(strings.NewReader(stream), 0)
	if _, err := fr.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	if _, err := fr.ReadMessage(); err != io.ErrUnexpectedEOF {
		t.Fatalf("EOM after hello: %v, want io.ErrUnexpectedEOF", err)
	}
	// Strict RFC 6242 §4.2: nothing may separate the marker from the first
	// chunk, not even a newline.
	fr = NewFrameReader(strings.NewReader("<hello/>]]>]]>\n\n#6\n<rpc/>\n##\n"), 0)
	if _, err := fr.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	fr.SetFraming(FramingChunked)
	if _, err := fr.ReadMessage(); !errors.Is(err, ErrMalformedFrame) {
		t.Fatalf("newline before the first chunk: %v, want ErrMalformedFrame", err)
	}
}

// The reader must not wait for bytes the peer has not sent: after a
// complete message it returns, even if the peer then sends nothing.
func TestFrameReaderNoReadAhead(t *testing.T) {
	for _, tc := range []struct {
		framing Framing
		msg     string
	}{
		{FramingChunked, "\n#5\nhello\n##\n"},
		{FramingEOM, "hello]]>]]>"},
	} {
		pr, pw := io.Pipe()
		fr := NewFrameReader(pr, 0)
		fr.SetFraming(tc.framing)
		go func() {
			// One byte per write: every header and the marker arrive in pieces.
			for i := range len(tc.msg) {
				pw.Write([]byte{tc.msg[i]})
			}
		}()
		type result struct {
			msg []byte
			err error
		}
		done := make(chan result, 1)
		go func() {
			msg, err := fr.ReadMessage()
			done <- result{msg, err}
		}()
		select {
		case r := <-done:
			if r.err != nil || string(r.msg) != "hello" {
				t.Errorf("framing %d: %q, %v", tc.framing, r.msg, r.err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("framing %d: ReadMessage waits for bytes after a complete message", tc.framing)
		}
		pw.Close()
	}
}

// frPieces delivers its pieces one per Read.
type frPieces []string

func (p *frPieces) Read(b []byte) (int, error) {
	if len(*p) == 0 {
		return 0, io.EOF
	}
	n := copy(b, (*p)[0])
	if n == len((*p)[0]) {
		*p = (*p)[1:]
	} else {
		(*p)[0] = (*p)[0][n:]
	}
	return n, nil
}

// The marker may arrive split anywhere, also across the limit.
func TestFrameReaderEOMSplitMarker(t *testing.T) {
	const stream = "hello]]>]]>"
	for i := 1; i < len(stream); i++ {
		for j := i; j < len(stream); j++ {
			for _, tc := range []struct {
				max  int
				want error
			}{{5, nil}, {4, ErrMessageTooLarge}} {
				r := frPieces{stream[:i], stream[i:j], stream[j:]}
				fr := NewFrameReader(&r, tc.max)
				msg, err := fr.ReadMessage()
				if tc.want == nil && (err != nil || string(msg) != "hello") {
					t.Errorf("split %d,%d max %d: %q, %v", i, j, tc.max, msg, err)
				}
				if tc.want != nil && !frSameErr(err, tc.want) {
					t.Errorf("split %d,%d max %d: %v, want %v", i, j, tc.max, err, tc.want)
				}
			}
		}
	}
}

// frCountingReader counts the bytes it delivers.
type frCountingReader struct {
	r io.Reader
	n int64
}

func (c *frCountingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// frEndless is an endless stream of one byte.
type frEndless byte

func (e frEndless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(e)
	}
	return len(p), nil
}

func frTotalAlloc() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// A peer announcing a 4 GB chunk must be refused from the header alone:
// nothing of the announced size is read or allocated.
func TestFrameReaderTooLargeFailsFast(t *testing.T) {
	const maxMessage = 1 << 20
	const header = "\n#4000000000\n"
	for _, oneByte := range []bool{true, false} {
		var src io.Reader = io.MultiReader(strings.NewReader(header), frEndless('x'))
		if oneByte {
			src = iotest.OneByteReader(src)
		}
		cr := &frCountingReader{r: src}
		fr := NewFrameReader(cr, maxMessage)
		fr.SetFraming(FramingChunked)
		before := frTotalAlloc()
		_, err := fr.ReadMessage()
		allocated := frTotalAlloc() - before
		if !frSameErr(err, ErrMessageTooLarge) {
			t.Fatalf("error %v, want ErrMessageTooLarge", err)
		}
		if oneByte && cr.n != int64(len(header)) {
			t.Errorf("read %d bytes, want only the %d of the header", cr.n, len(header))
		}
		if cr.n > int64(len(header)+frameReadBuffer) {
			t.Errorf("read %d bytes", cr.n)
		}
		if allocated > 64<<10 {
			t.Errorf("allocated %d bytes while refusing the header", allocated)
		}
	}

	// Many small chunks: refused at the first header that crosses the
	// limit, having buffered no more than the limit.
	chunk := AppendChunked(nil, bytes.Repeat([]byte("y"), 1000), 0)
	chunk = chunk[:len(chunk)-4] // drop end-of-chunks: one endless message
	cr := &frCountingReader{r: &frRepeat{frame: chunk}}
	fr := NewFrameReader(cr, maxMessage)
	fr.SetFraming(FramingChunked)
	before := frTotalAlloc()
	_, err := fr.ReadMessage()
	allocated := frTotalAlloc() - before
	if !frSameErr(err, ErrMessageTooLarge) {
		t.Fatalf("many chunks: error %v, want ErrMessageTooLarge", err)
	}
	if cr.n > maxMessage+int64(len(chunk))+frameReadBuffer {
		t.Errorf("many chunks: read %d bytes", cr.n)
	}
	if allocated > 3*maxMessage {
		t.Errorf("many chunks: allocated %d bytes", allocated)
	}

	// EOM: no marker, ever.
	cr = &frCountingReader{r: frEndless('z')}
	fr = NewFrameReader(cr, maxMessage)
	before = frTotalAlloc()
	_, err = fr.ReadMessage()
	allocated = frTotalAlloc() - before
	if !frSameErr(err, ErrMessageTooLarge) {
		t.Fatalf("eom: error %v, want ErrMessageTooLarge", err)
	}
	if cr.n > maxMessage+6+frameReadBuffer {
		t.Errorf("eom: read %d bytes", cr.n)
	}
	if allocated > 3*maxMessage {
		t.Errorf("eom: allocated %d bytes", allocated)
	}
}

func TestFrameReaderReadError(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		framing Framing
		raw     string
		msgs    []string
	}{
		{FramingChunked, "", nil},
		{FramingChunked, "\n#5\nhel", nil},
		{FramingChunked, "\n#5", nil},
		{FramingChunked, "\n#1\na\n##\n", []string{"a"}},
		{FramingEOM, "<a/>]]", nil},
		{FramingEOM, "<a/>]]>]]>", []string{"<a/>"}},
	} {
		fr := NewFrameReader(io.MultiReader(strings.NewReader(tc.raw), iotest.ErrReader(boom)), 0)
		fr.SetFraming(tc.framing)
		msgs, err := frReadAll(t, fr)
		if !frEqualMsgs(msgs, tc.msgs) || err != boom {
			t.Errorf("%q: %q, %v; want %q, boom", tc.raw, msgs, err, tc.msgs)
		}
	}
}

func TestFramingError(t *testing.T) {
	_, _, err := DecodeChunked([]byte("\n#05\nhello\n##\n"), 0)
	var fe *FramingError
	if !errors.As(err, &fe) || fe.Err != ErrMalformedFrame || !errors.Is(err, ErrMalformedFrame) || errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("error %#v", err)
	}
	if !strings.HasPrefix(err.Error(), "netconf: malformed frame: ") || !strings.Contains(err.Error(), "leading zero") {
		t.Errorf("Error() = %q", err.Error())
	}
	_, _, err = DecodeEOM([]byte("hello world"), 1)
	if !errors.As(err, &fe) || !errors.Is(err, ErrMessageTooLarge) || fe.Unwrap() != ErrMessageTooLarge {
		t.Fatalf("error %#v", err)
	}
}

func TestNewFrameReaderDefaults(t *testing.T) {
	for _, m := range []int{0, -1} {
		if fr := NewFrameReader(strings.NewReader(""), m); fr.max != DefaultMaxMessage || fr.Framing() != FramingEOM {
			t.Errorf("NewFrameReader(_, %d): max %d, framing %d", m, fr.max, fr.Framing())
		}
	}
	if fw := NewFrameWriter(io.Discard); fw.framing != FramingEOM || fw.maxChunk != MaxChunkWrite {
		t.Errorf("NewFrameWriter: framing %d, maxChunk %d", fw.framing, fw.maxChunk)
	}
}

const frTestdata = "testdata/framing"

// Every file in testdata/framing is a malformed chunked stream: the decoder
// and the reader, however the bytes arrive, end in ErrMalformedFrame.
func TestFramingTestdata(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(frTestdata, "*.bin"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	readme, err := os.ReadFile(filepath.Join(frTestdata, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			if !strings.HasPrefix(name, "chunk-") {
				t.Fatalf("unknown framing for %s (want a chunk- prefix)", name)
			}
			if !bytes.Contains(readme, []byte("`"+name+"`")) {
				t.Errorf("%s is not described in README.md", name)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := frDecodeAll(t, FramingChunked, data, 0); !frSameErr(err, ErrMalformedFrame) {
				t.Errorf("DecodeChunked: %v, want ErrMalformedFrame", err)
			}
			for _, rd := range frReaders {
				fr := NewFrameReader(rd.wrap(bytes.NewReader(data)), 0)
				fr.SetFraming(FramingChunked)
				if _, err := frReadAll(t, fr); !frSameErr(err, ErrMalformedFrame) {
					t.Errorf("FrameReader (%s): %v, want ErrMalformedFrame", rd.name, err)
				}
			}
		})
	}
}

// The corpus and the table hold the same malformed inputs.
func TestFramingTestdataMatchesTable(t *testing.T) {
	inTable := map[string]bool{}
	for _, tc := range frCases {
		if tc.file == "" {
			continue
		}
		inTable[tc.file] = true
		data, err := os.ReadFile(filepath.Join(frTestdata, tc.file))
		if err != nil {
			t.Errorf("%s: %v", tc.desc, err)
			continue
		}
		if string(data) != tc.raw {
			t.Errorf("%s: %s holds %q, table %q", tc.desc, tc.file, data, tc.raw)
		}
		if tc.err != ErrMalformedFrame {
			t.Errorf("%s: corpus files must be malformed", tc.desc)
		}
	}
	files, _ := filepath.Glob(filepath.Join(frTestdata, "*.bin"))
	for _, f := range files {
		if !inTable[filepath.Base(f)] {
			t.Errorf("%s is in the corpus but not in frCases", f)
		}
	}
}

// frRepeat repeats one frame endlessly.
type frRepeat struct {
	frame []byte
	off   int
}

func (r *frRepeat) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.frame[r.off:])
		n += c
		r.off = (r.off + c) % len(r.frame)
	}
	return n, nil
}

var frBenchSizes = []int{1 << 10, 64 << 10}

// frBenchMessage is an rpc-reply-like message of n bytes.
func frBenchMessage(n int) []byte {
	const row = "<interface><name>eth0</name><mtu>1500</mtu></interface>\n"
	msg := bytes.Repeat([]byte(row), n/len(row)+1)
	return msg[:n]
}

func BenchmarkFrameReaderChunked(b *testing.B) {
	for _, size := range frBenchSizes {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			msg := frBenchMessage(size)
			fr := NewFrameReader(&frRepeat{frame: AppendChunked(nil, msg, MaxChunkWrite)}, 0)
			fr.SetFraming(FramingChunked)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				got, err := fr.ReadMessage()
				if err != nil || len(got) != size {
					b.Fatalf("%d bytes, %v", len(got), err)
				}
			}
		})
	}
}

func BenchmarkFrameWriterChunked(b *testing.B) {
	for _, size := range frBenchSizes {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			msg := frBenchMessage(size)
			fw := NewFrameWriter(io.Discard)
			fw.SetFraming(FramingChunked)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if err := fw.WriteMessage(msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkFrameReaderEOM(b *testing.B) {
	for _, size := range frBenchSizes {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			msg := frBenchMessage(size)
			fr := NewFrameReader(&frRepeat{frame: AppendEOM(nil, msg)}, 0)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				got, err := fr.ReadMessage()
				if err != nil || len(got) != size {
					b.Fatalf("%d bytes, %v", len(got), err)
				}
			}
		})
	}
}

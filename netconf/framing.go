package netconf

// This file is the message layer of RFC 6242: it cuts the byte stream of an
// SSH channel into NETCONF messages and back. It knows nothing about XML.
//
// RFC 6242 §4.1: both peers start with the end-of-message framing of §4.3
// for the <hello> exchange; if both advertise urn:ietf:params:netconf:base:1.1
// they switch to the chunked framing of §4.2 for the rest of the session.
// The switch is the caller's decision (SetFraming between two messages); the
// reader never consumes a byte past the end of the message it returns, so
// bytes the client pipelined after its <hello> are parsed in the new framing.
//
// The pure codecs (AppendChunked, AppendEOM, DecodeChunked, DecodeEOM) are
// what FrameWriter encodes with; DecodeChunked and FrameReader share one
// chunk-header parser (parseChunkHeader), and DecodeEOM states the
// end-of-message rules FrameReader applies incrementally. The fuzz targets
// check that decoder and reader always agree, message for message and
// error for error.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
)

// Framing is a message framing mode of RFC 6242 §4.
type Framing int

// Framing modes.
const (
	FramingEOM     Framing = iota // RFC 6242 §4.3: end-of-message marker "]]>]]>" (hello, base:1.0)
	FramingChunked                // RFC 6242 §4.2: chunked framing (base:1.1)
)

// DefaultMaxMessage bounds a received message when NewFrameReader is given
// no limit.
const DefaultMaxMessage = 16 << 20

// MaxChunkWrite is the largest chunk FrameWriter sends, and the chunk size
// AppendChunked uses when given none.
const MaxChunkWrite = 64 << 10

// Errors. Every framing error is a *FramingError that unwraps to one of
// these two; after one the stream is out of step and the session must end.
var (
	ErrMalformedFrame  = errors.New("netconf: malformed frame")
	ErrMessageTooLarge = errors.New("netconf: message too large")
)

// FramingError is a framing violation: Err is ErrMalformedFrame or
// ErrMessageTooLarge, Detail says what was wrong.
type FramingError struct {
	Err    error // ErrMalformedFrame or ErrMessageTooLarge
	Detail string
}

func (e *FramingError) Error() string { return e.Err.Error() + ": " + e.Detail }

// Unwrap returns ErrMalformedFrame or ErrMessageTooLarge.
func (e *FramingError) Unwrap() error { return e.Err }

func frameMalformed(format string, args ...any) error {
	return &FramingError{Err: ErrMalformedFrame, Detail: fmt.Sprintf(format, args...)}
}

func frameTooLarge(format string, args ...any) error {
	return &FramingError{Err: ErrMessageTooLarge, Detail: fmt.Sprintf(format, args...)}
}

const (
	// RFC 6242 §4.3.
	eomMarker = "]]>]]>"

	// RFC 6242 §4.2: "the maximum allowed chunk-size value is 4294967295".
	maxChunkSize       = 4294967295
	maxChunkSizeDigits = 10

	// The longest chunk header: LF HASH 10*DIGIT LF.
	maxChunkHeader = 2 + maxChunkSizeDigits + 1

	// Buffer of the reader; also the most it reads ahead of a message.
	frameReadBuffer = 64 << 10

	// FrameWriter drops its encoding buffer after a message larger than
	// this, so that one huge reply does not pin memory for the session.
	frameWriteKeep = 1 << 20
)

// frameMaxMessage applies the "<= 0 means DefaultMaxMessage" rule.
func frameMaxMessage(maxMessage int) int {
	if maxMessage <= 0 {
		return DefaultMaxMessage
	}
	return maxMessage
}

// parseChunkHeader parses one chunk header or end-of-chunks at the front of
// b (RFC 6242 §4.2):
//
//	chunk         = LF HASH chunk-size LF chunk-data
//	chunk-size    = 1*DIGIT1 0*DIGIT      ; [1-9][0-9]*, at most 4294967295
//	end-of-chunks = LF HASH HASH LF
//
// It returns the chunk size and the header length n; size 0 means
// end-of-chunks. If b is a proper prefix of a header that could still be
// valid it returns io.ErrUnexpectedEOF; a byte that no continuation could
// make valid is ErrMalformedFrame at once, so a reader never waits for more
// input in front of a garbled header. b may extend past the header.
func parseChunkHeader(b []byte) (size uint64, n int, err error) {
	if len(b) == 0 {
		return 0, 0, io.ErrUnexpectedEOF
	}
	if b[0] != '\n' {
		return 0, 0, frameMalformed("chunk header starts with %q, want LF", b[0])
	}
	if len(b) < 2 {
		return 0, 0, io.ErrUnexpectedEOF
	}
	if b[1] != '#' {
		return 0, 0, frameMalformed("chunk header has %q after LF, want '#'", b[1])
	}
	if len(b) < 3 {
		return 0, 0, io.ErrUnexpectedEOF
	}
	switch c := b[2]; {
	case c == '#':
		if len(b) < 4 {
			return 0, 0, io.ErrUnexpectedEOF
		}
		if b[3] != '\n' {
			return 0, 0, frameMalformed("end-of-chunks has %q after \"##\", want LF", b[3])
		}
		return 0, 4, nil
	case c == '0':
		if len(b) > 3 && b[3] == '\n' {
			return 0, 0, frameMalformed("chunk-size is 0")
		}
		return 0, 0, frameMalformed("chunk-size starts with '0' (leading zeros are prohibited)")
	case c < '1' || c > '9':
		return 0, 0, frameMalformed("chunk-size starts with %q, want a digit 1-9", c)
	}
	i := 2
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		if i-2 == maxChunkSizeDigits {
			return 0, 0, frameMalformed("chunk-size has more than %d digits", maxChunkSizeDigits)
		}
		size = size*10 + uint64(b[i]-'0')
		if size > maxChunkSize {
			return 0, 0, frameMalformed("chunk-size exceeds %d", uint64(maxChunkSize))
		}
	}
	if i == len(b) {
		return 0, 0, io.ErrUnexpectedEOF
	}
	if b[i] != '\n' {
		return 0, 0, frameMalformed("chunk-size is followed by %q, want LF", b[i])
	}
	return size, i + 1, nil
}

// AppendChunked appends msg in chunked framing (RFC 6242 §4.2): chunks of at
// most maxChunk bytes (<= 0 means MaxChunkWrite; capped at 4294967295)
// followed by end-of-chunks. An empty message cannot be framed, since a chunk
// holds at least one octet: dst is then returned unchanged (WriteMessage
// reports the error).
func AppendChunked(dst, msg []byte, maxChunk int) []byte {
	if len(msg) == 0 {
		return dst
	}
	if maxChunk <= 0 {
		maxChunk = MaxChunkWrite
	}
	if uint64(maxChunk) > maxChunkSize {
		maxChunk = maxChunkSize
	}
	chunks := (len(msg) + maxChunk - 1) / maxChunk
	dst = frameGrow(dst, len(msg)+chunks*maxChunkHeader+4)
	for len(msg) > 0 {
		n := min(len(msg), maxChunk)
		dst = append(dst, '\n', '#')
		dst = strconv.AppendUint(dst, uint64(n), 10)
		dst = append(dst, '\n')
		dst = append(dst, msg[:n]...)
		msg = msg[n:]
	}
	return append(dst, "\n##\n"...)
}

// AppendEOM appends msg followed by the end-of-message marker (RFC 6242
// §4.3). It does not check msg: a message containing the marker cannot be
// framed this way (the peer would cut it at the marker); WriteMessage
// refuses such messages.
func AppendEOM(dst, msg []byte) []byte {
	dst = frameGrow(dst, len(msg)+len(eomMarker))
	dst = append(dst, msg...)
	return append(dst, eomMarker...)
}

// DecodeChunked decodes one chunked-framed message (RFC 6242 §4.2) from the
// front of data and returns it with the bytes that follow it. msg is a new
// slice; rest aliases data. maxMessage bounds the total of the chunk sizes
// (<= 0 means DefaultMaxMessage) and is checked from each chunk header
// before its data is looked at.
//
// Errors: io.EOF if data is empty; io.ErrUnexpectedEOF if data holds only
// the beginning of a message; otherwise a *FramingError. On error msg is nil
// and rest is data.
func DecodeChunked(data []byte, maxMessage int) (msg, rest []byte, err error) {
	if len(data) == 0 {
		return nil, data, io.EOF
	}
	limit := uint64(frameMaxMessage(maxMessage))
	// First pass: validate and measure, so that msg is allocated once.
	var total uint64
	pos := 0
	for {
		size, n, err := parseChunkHeader(data[pos:])
		if err != nil {
			return nil, data, err
		}
		pos += n
		if size == 0 {
			if total == 0 {
				return nil, data, frameMalformed("end-of-chunks before any chunk")
			}
			break
		}
		if total+size > limit {
			return nil, data, frameTooLarge("chunks add up to more than %d bytes", limit)
		}
		if uint64(len(data)-pos) < size {
			return nil, data, io.ErrUnexpectedEOF
		}
		total += size
		pos += int(size)
	}
	msg = make([]byte, 0, int(total))
	for p := 0; p < pos; {
		size, n, _ := parseChunkHeader(data[p:])
		p += n
		msg = append(msg, data[p:p+int(size)]...)
		p += int(size)
	}
	return msg, data[pos:], nil
}

// DecodeEOM decodes one end-of-message-framed message (RFC 6242 §4.3) from
// the front of data: everything before the first "]]>]]>", leading
// whitespace included. msg is a new slice; rest aliases data. A message
// longer than maxMessage (<= 0 means DefaultMaxMessage) is
// ErrMessageTooLarge, decided from the first maxMessage+5 bytes as a reader
// would.
//
// Errors: io.EOF if data is empty or only XML whitespace (nothing of a
// message); io.ErrUnexpectedEOF if data holds the beginning of a message
// but no marker; otherwise a *FramingError. On error msg is nil and rest is
// data.
func DecodeEOM(data []byte, maxMessage int) (msg, rest []byte, err error) {
	limit := frameMaxMessage(maxMessage)
	window := data
	if len(window) > limit+len(eomMarker) {
		window = window[:limit+len(eomMarker)]
	}
	if i := bytes.Index(window, []byte(eomMarker)); i >= 0 {
		return bytes.Clone(data[:i]), data[i+len(eomMarker):], nil
	}
	if len(data) > limit+len(eomMarker)-1 {
		return nil, data, frameTooLarge("no end-of-message marker within %d bytes", limit)
	}
	if framingAllSpace(data) {
		return nil, data, io.EOF
	}
	return nil, data, io.ErrUnexpectedEOF
}

// framingAllSpace reports whether b holds only XML white space (XML 1.0
// §2.3 S): what may trail the last message of a session.
func framingAllSpace(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

// frameGrow makes room for n more bytes in b.
func frameGrow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	nb := make([]byte, len(b), len(b)+n)
	copy(nb, b)
	return nb
}

// frameExtend returns b lengthened by n bytes, growing the backing array
// geometrically but never beyond limit (>= len(b)+n), so that a reader's
// buffer stays within its message limit.
func frameExtend(b []byte, n, limit int) []byte {
	need := len(b) + n
	if need <= cap(b) {
		return b[:need]
	}
	c := max(need, 2*cap(b))
	if c > limit {
		c = limit
	}
	nb := make([]byte, need, c)
	copy(nb, b)
	return nb
}

// FrameReader reads whole NETCONF messages from a byte stream (an SSH
// channel). It is not safe for concurrent use; one goroutine per session
// reads.
//
// It never consumes a byte past the message it returns, so SetFraming takes
// effect exactly at the next message. It buffers at most the message limit
// plus its 64 KiB read buffer, and checks every chunk header against the
// limit before reading the chunk.
type FrameReader struct {
	br      *bufio.Reader
	max     int
	framing Framing
	err     error // sticky: after any error the stream is out of step
}

// NewFrameReader returns a reader of messages of at most maxMessage bytes
// (<= 0 means DefaultMaxMessage), starting in FramingEOM (RFC 6242 §4.1).
func NewFrameReader(r io.Reader, maxMessage int) *FrameReader {
	return &FrameReader{
		br:      bufio.NewReaderSize(r, frameReadBuffer),
		max:     frameMaxMessage(maxMessage),
		framing: FramingEOM,
	}
}

// SetFraming switches the framing for the next message; call it between
// ReadMessage calls (after the hello exchange, RFC 6242 §4.1). Bytes
// already buffered are parsed in the new framing.
func (fr *FrameReader) SetFraming(f Framing) { fr.framing = f }

// Framing returns the current framing mode.
func (fr *FrameReader) Framing() Framing { return fr.framing }

// ReadMessage returns the next message without its framing, in a newly
// allocated slice. It returns io.EOF when the stream ends cleanly between
// messages (in FramingEOM, after nothing but white space),
// io.ErrUnexpectedEOF when it ends inside a message, a *FramingError on a
// framing violation, or the error of the underlying reader. Errors are
// sticky: every later call returns the same error.
func (fr *FrameReader) ReadMessage() ([]byte, error) {
	if fr.err != nil {
		return nil, fr.err
	}
	var msg []byte
	var err error
	if fr.framing == FramingChunked {
		msg, err = fr.readChunked()
	} else {
		msg, err = fr.readEOM()
	}
	if err != nil {
		fr.err = err
		return nil, err
	}
	return msg, nil
}

// readChunked reads one message in RFC 6242 §4.2 framing.
func (fr *FrameReader) readChunked() ([]byte, error) {
	var msg []byte
	for {
		size, err := fr.readChunkHeader(msg == nil)
		if err != nil {
			return nil, err
		}
		if size == 0 {
			if msg == nil {
				return nil, frameMalformed("end-of-chunks before any chunk")
			}
			return msg, nil
		}
		// The limit is checked against the announced size before any
		// chunk data is read or allocated.
		if uint64(len(msg))+size > uint64(fr.max) {
			return nil, frameTooLarge("chunks add up to more than %d bytes", fr.max)
		}
		start := len(msg)
		msg = frameExtend(msg, int(size), fr.max)
		if _, err := io.ReadFull(fr.br, msg[start:]); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

// readChunkHeader reads a chunk header or end-of-chunks (size 0). It looks
// at what is buffered and waits for one more byte only while the header is
// incomplete, so it never blocks on bytes the peer has not sent.
func (fr *FrameReader) readChunkHeader(first bool) (uint64, error) {
	n := 1
	for {
		n = min(max(n, fr.br.Buffered()), maxChunkHeader)
		b, rerr := fr.br.Peek(n)
		size, hl, err := parseChunkHeader(b)
		if err == nil {
			fr.br.Discard(hl)
			return size, nil
		}
		if err != io.ErrUnexpectedEOF {
			return 0, err
		}
		if rerr != nil {
			if rerr == io.EOF {
				if first && len(b) == 0 {
					return 0, io.EOF
				}
				return 0, io.ErrUnexpectedEOF
			}
			return 0, rerr
		}
		if len(b) >= maxChunkHeader { // cannot happen: 13 bytes always parse or fail
			return 0, frameMalformed("chunk header longer than %d bytes", maxChunkHeader)
		}
		n = len(b) + 1
	}
}

// readEOM reads one message in RFC 6242 §4.3 framing. It scans the
// buffered bytes for the marker, keeps at most maxMessage+5 bytes of a
// message without one, and consumes exactly up to the end of the marker.
func (fr *FrameReader) readEOM() ([]byte, error) {
	const m = len(eomMarker)
	limit := fr.max + m - 1 // bytes of a message that may lack a marker
	var acc []byte
	for {
		if fr.br.Buffered() == 0 {
			if _, err := fr.br.Peek(1); err != nil {
				if err == io.EOF {
					if framingAllSpace(acc) {
						return nil, io.EOF
					}
					return nil, io.ErrUnexpectedEOF
				}
				return nil, err
			}
		}
		buf, _ := fr.br.Peek(fr.br.Buffered())
		prev := len(acc)
		// A marker that began in earlier bytes: it has at most m-1 of
		// them, the last ones kept.
		if prev > 0 {
			var w [2*m - 2]byte
			tail := acc[max(prev-(m-1), 0):]
			ww := append(append(w[:0], tail...), buf[:min(len(buf), m-1)]...)
			if i := bytes.Index(ww, []byte(eomMarker)); i >= 0 {
				end := prev - len(tail) + i
				if end > fr.max {
					return nil, frameTooLarge("message exceeds %d bytes", fr.max)
				}
				fr.br.Discard(end + m - prev)
				return acc[:end], nil
			}
		}
		if i := bytes.Index(buf, []byte(eomMarker)); i >= 0 {
			if prev+i > fr.max {
				return nil, frameTooLarge("message exceeds %d bytes", fr.max)
			}
			acc = frameExtend(acc, i, prev+i)
			copy(acc[prev:], buf[:i])
			fr.br.Discard(i + m)
			if acc == nil {
				acc = []byte{} // "]]>]]>" alone: an empty message, not nil
			}
			return acc, nil
		}
		if prev+len(buf) > limit {
			return nil, frameTooLarge("no end-of-message marker within %d bytes", fr.max)
		}
		acc = frameExtend(acc, len(buf), limit)
		copy(acc[prev:], buf)
		fr.br.Discard(len(buf))
	}
}

// FrameWriter writes NETCONF messages to a byte stream. It is safe for
// concurrent use: each message is encoded whole and handed to the
// underlying writer in a single Write call under a lock, so messages of
// concurrent writers never interleave.
type FrameWriter struct {
	mu       sync.Mutex
	w        io.Writer
	framing  Framing
	maxChunk int    // chunk size; MaxChunkWrite (tests lower it)
	buf      []byte // encoding buffer, reused
	err      error  // sticky write error
}

// NewFrameWriter returns a writer starting in FramingEOM (RFC 6242 §4.1).
func NewFrameWriter(w io.Writer) *FrameWriter {
	return &FrameWriter{w: w, framing: FramingEOM, maxChunk: MaxChunkWrite}
}

// SetFraming switches the framing for the next message (after our <hello>
// and the peer's, RFC 6242 §4.1).
func (fw *FrameWriter) SetFraming(f Framing) {
	fw.mu.Lock()
	fw.framing = f
	fw.mu.Unlock()
}

// WriteMessage frames msg and writes it. In chunked framing the message is
// split into chunks of at most MaxChunkWrite bytes. An empty message, and
// in FramingEOM a message the marker would cut short (one containing
// "]]>]]>" or ending in a prefix of it that completes a marker early), are
// refused with ErrMalformedFrame before anything is written. An error of
// the underlying writer is sticky, since the peer may have received part of
// a frame.
func (fw *FrameWriter) WriteMessage(msg []byte) error {
	if len(msg) == 0 {
		// RFC 6242 §4.2: chunk-data is 1*OCTET.
		return frameMalformed("cannot frame an empty message")
	}
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if fw.err != nil {
		return fw.err
	}
	if fw.framing == FramingChunked {
		fw.buf = AppendChunked(fw.buf[:0], msg, fw.maxChunk)
	} else {
		fw.buf = AppendEOM(fw.buf[:0], msg)
		if bytes.Index(fw.buf, []byte(eomMarker)) != len(msg) {
			return frameMalformed("message contains the end-of-message marker")
		}
	}
	_, err := fw.w.Write(fw.buf)
	if cap(fw.buf) > frameWriteKeep {
		fw.buf = nil
	}
	if err != nil {
		fw.err = err
	}
	return err
}

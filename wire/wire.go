// Package wire is the MYNO wire protocol over MQTT: every topic name the
// project uses (topics.go) and every text format on them (bootstrap chunks,
// commands, answers, firmware status), as pure codecs. Bytes in, values
// out: no I/O, no goroutines. The bridge, the virtual devices and the
// Update Server all speak through it; nothing else builds a topic string.
package wire

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// Answers on the bootstrap topics.
const (
	AnswerOK       = "OK"
	AnswerNotFound = "NOTFOUND"
	AnswerError    = "ERROR"
	endMarker      = "END"
)

// Refused reports whether a device's answer to a command refuses it:
// ERROR, ERROR;<reason>, or a state whose value ends in ERROR, as MYNO's
// descriptions name their error states (20_ERROR).
func Refused(answer string) bool {
	head, _, _ := strings.Cut(answer, ";")
	return strings.HasSuffix(strings.ToUpper(head), AnswerError)
}

// MaxFieldLength bounds a request id and a method.
const MaxFieldLength = 256

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("wire: malformed payload")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// Chunk is one bootstrap message: "<uuid>;<chunk>" or "<uuid>;END".
type Chunk struct {
	UUID string
	Data []byte // nil for END
	End  bool
}

// DecodeChunk parses a bootstrap message.
func DecodeChunk(b []byte) (Chunk, error) {
	i := bytes.IndexByte(b, ';')
	if i < 0 {
		return Chunk{}, malformed("bootstrap message without ';'")
	}
	uuid := string(b[:i])
	if !ValidUUID(uuid) {
		return Chunk{}, malformed("bad device uuid %q", short(uuid))
	}
	rest := b[i+1:]
	if string(rest) == endMarker {
		return Chunk{UUID: uuid, End: true}, nil
	}
	return Chunk{UUID: uuid, Data: rest}, nil
}

// Encode renders the chunk.
func (c Chunk) Encode() []byte {
	if c.End {
		return []byte(c.UUID + ";" + endMarker)
	}
	out := make([]byte, 0, len(c.UUID)+1+len(c.Data))
	out = append(out, c.UUID...)
	out = append(out, ';')
	return append(out, c.Data...)
}

// SplitDescription cuts a description into bootstrap messages of at most
// size bytes of description each, followed by END. size <= 0 means one
// chunk.
func SplitDescription(uuid string, desc []byte, size int) []Chunk {
	if size <= 0 {
		size = len(desc)
	}
	var out []Chunk
	for len(desc) > 0 {
		n := min(size, len(desc))
		out = append(out, Chunk{UUID: uuid, Data: desc[:n]})
		desc = desc[n:]
	}
	return append(out, Chunk{UUID: uuid, End: true})
}

// Request is a command: "<reqId>;<method>[;<arg>...]".
type Request struct {
	ReqID  string
	Method string
	Args   []string
}

// DecodeRequest parses a command.
func DecodeRequest(b []byte) (Request, error) {
	parts := strings.Split(string(b), ";")
	if len(parts) < 2 {
		return Request{}, malformed("command needs <reqId>;<method>")
	}
	r := Request{ReqID: parts[0], Method: parts[1], Args: parts[2:]}
	if r.ReqID == "" || len(r.ReqID) > MaxFieldLength {
		return Request{}, malformed("bad request id %q", short(r.ReqID))
	}
	if r.Method == "" || len(r.Method) > MaxFieldLength {
		return Request{}, malformed("bad method %q", short(r.Method))
	}
	if len(r.Args) == 0 {
		r.Args = nil
	}
	return r, nil
}

// Encode renders the command. Fields must not contain ';'.
func (r Request) Encode() []byte {
	return []byte(strings.Join(append([]string{r.ReqID, r.Method}, r.Args...), ";"))
}

// Response is a device's answer: "<reqId>;<value>[;<output>...]".
type Response struct {
	ReqID   string
	Value   string
	Outputs []string
}

// DecodeResponse parses an answer.
func DecodeResponse(b []byte) (Response, error) {
	parts := strings.Split(string(b), ";")
	if len(parts) < 2 {
		return Response{}, malformed("answer needs <reqId>;<value>")
	}
	r := Response{ReqID: parts[0], Value: parts[1], Outputs: parts[2:]}
	if r.ReqID == "" || len(r.ReqID) > MaxFieldLength {
		return Response{}, malformed("bad request id %q", short(r.ReqID))
	}
	if len(r.Outputs) == 0 {
		r.Outputs = nil
	}
	return r, nil
}

// Encode renders the answer.
func (r Response) Encode() []byte {
	return []byte(strings.Join(append([]string{r.ReqID, r.Value}, r.Outputs...), ";"))
}

// ErrorAnswer renders "ERROR;<reason>" for the bootstrap topics; the reason
// loses any ';' and line break so that it stays one field.
func ErrorAnswer(reason string) []byte {
	reason = strings.Map(func(r rune) rune {
		if r == ';' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, reason)
	return []byte(AnswerError + ";" + reason)
}

func short(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// EncodeFirmwareStatus renders a firmware status report.
func EncodeFirmwareStatus(version uint32) []byte { return fmt.Appendf(nil, "VERSION;%d", version) }

// DecodeFirmwareStatus reads a firmware status report: the version, in
// decimal, at most 10 digits.
func DecodeFirmwareStatus(b []byte) (string, error) {
	v, ok := bytes.CutPrefix(b, []byte("VERSION;"))
	if !ok || len(v) == 0 || len(v) > 10 {
		return "", malformed("firmware status %.32q: want VERSION;<n>", b)
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return "", malformed("firmware status %.32q: version is not a number", b)
		}
	}
	return string(v), nil
}

// Presence is a device's announcement on its presence topic: online or
// not, and the session it is about (a random word the device draws when
// it starts, the same in its Will), so that a late Will of an earlier
// session cannot take a device offline that has connected again.
type Presence struct {
	Online  bool
	Session string
}

// Presence payloads: "online;<session>", "offline;<session>".
const (
	presenceOnline  = "online"
	presenceOffline = "offline"
)

// Encode renders a presence announcement.
func (p Presence) Encode() []byte {
	state := presenceOffline
	if p.Online {
		state = presenceOnline
	}
	return []byte(state + ";" + p.Session)
}

// DecodePresence reads a presence announcement; the session is 1 to 64
// printable characters without ';'.
func DecodePresence(b []byte) (Presence, error) {
	state, session, ok := bytes.Cut(b, []byte(";"))
	if !ok || len(session) == 0 || len(session) > 64 || bytes.IndexByte(session, ';') >= 0 || !Printable(string(session)) {
		return Presence{}, malformed("presence %.32q: want online;<session> or offline;<session>", b)
	}
	switch string(state) {
	case presenceOnline:
		return Presence{Online: true, Session: string(session)}, nil
	case presenceOffline:
		return Presence{Session: string(session)}, nil
	}
	return Presence{}, malformed("presence %.32q: want online;<session> or offline;<session>", b)
}

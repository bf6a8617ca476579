package v1

import "bytes"

// The rpcs of a MUP v1 device (§1, §2), the method keyword the bridge
// puts in each MQTT command `<reqId>;<METHOD>[;<value>]`, and their leaves.
// Every rpc's first leaf is the device UUID (LeafUUID); the manifest
// leaves are Leaf(0) … Leaf(9).
const (
	RPCGetDeviceToken    = "funcGetDeviceToken"
	RPCPubUpdateManifest = "funcPubUpdateManifest"
	RPCPubUpdateImage    = "funcPubUpdateImage"

	MethodGetDeviceToken    = "GET-DEVICE-TOKEN"
	MethodPubUpdateManifest = "PUB-UPDATE-MANIFEST"
	MethodPubUpdateImage    = "PUB-UPDATE-IMAGE"

	LeafUUID  = "uuidInput"
	LeafImage = "inputUpdateImage"
)

// Fin is the one value of funcPubUpdateImage (leaf inputUpdateImage),
// sent after the last slice is acknowledged (§2.4): the device compares
// the SHA-256 of the slices with the manifest's Hash and answers
// FIRMWARE-SUCCESS or ERROR. Any other value is answered ERROR.
const Fin = "FIN"

// Answer is a device's answer text (the bridge's <retval>) to a manifest
// field or to FIN (§2, §5).
type Answer string

const (
	// AnswerOK answers every manifest field 0–8, and field 9 when a
	// signature does not verify (§5): after START-UPDATE, OK means
	// refused.
	AnswerOK Answer = "OK"
	// AnswerManifestSuccess answers field 9 when both signatures verify;
	// the device then takes slices.
	AnswerManifestSuccess Answer = "MANIFEST-SUCCESS"
	// AnswerFirmwareSuccess answers FIN when the image's SHA-256 matches.
	AnswerFirmwareSuccess Answer = "FIRMWARE-SUCCESS"
	// AnswerError answers FIN when it does not, and an unknown command.
	AnswerError Answer = "ERROR"
	// AnswerNoResponse is not the device's: MYNO's bridge returns it as
	// <retval> when no answer came within about 120 s (§2).
	AnswerNoResponse Answer = "NO RESPONSE FROM DEVICE"
)

// MaxAnswerLen is the length of the longest Answer.
const MaxAnswerLen = len(AnswerNoResponse)

// Encode renders a known answer.
func (a Answer) Encode() ([]byte, error) {
	if _, err := DecodeAnswer([]byte(a)); err != nil {
		return nil, err
	}
	return []byte(a), nil
}

// DecodeAnswer takes exactly one of the answers above, case and all. The
// firmware's unused codes 3–11 (MANIFEST-NOT-VALID …) and the ontology's
// numbered states (10_OK …) are refused: no MUP v1 peer sends them (§5).
func DecodeAnswer(b []byte) (Answer, error) {
	if len(b) <= MaxAnswerLen {
		switch a := Answer(b); a {
		case AnswerOK, AnswerManifestSuccess, AnswerFirmwareSuccess, AnswerError, AnswerNoResponse:
			return a, nil
		}
	}
	return "", malformed("answer %s: want OK, MANIFEST-SUCCESS, FIRMWARE-SUCCESS, ERROR or %q", quote(b), AnswerNoResponse)
}

// Token is the answer of funcGetDeviceToken as the Update Server reads
// it, `<nonce>,<version>` (§2.1, §7 D2): both canonical decimals (see
// MaxInt), since the nonce becomes the manifest's DeviceNonce and the
// version its OldVersion. MYNO's firmware always answers "123456,1".
//
// The device's MQTT answer is `<reqId>;<token>;OK` (TokenTrailer); MYNO's
// bridge keeps the text between the first and the second ';', so the
// trailer never reaches the Update Server.
type Token struct {
	Nonce   uint32
	Version uint32
}

// TokenTrailer is the field MYNO's firmware sends after the token.
const TokenTrailer = "OK"

// MaxTokenLen is the length of the longest token.
const MaxTokenLen = 2*maxIntDigits + 1

// Encode renders the token as `<nonce>,<version>`.
func (t Token) Encode() ([]byte, error) {
	if err := checkInt("token nonce", t.Nonce); err != nil {
		return nil, err
	}
	if err := checkInt("token version", t.Version); err != nil {
		return nil, err
	}
	b := make([]byte, 0, MaxTokenLen)
	b = appendInt(b, t.Nonce)
	b = append(b, ',')
	return appendInt(b, t.Version), nil
}

// DecodeToken parses `<nonce>,<version>`: two canonical decimals and
// exactly one ','; at most MaxTokenLen bytes. The firmware's ";OK" must
// be gone (the bridge cuts it).
func DecodeToken(b []byte) (Token, error) {
	if len(b) > MaxTokenLen {
		return Token{}, malformed("token of %d bytes, longer than any (%d)", len(b), MaxTokenLen)
	}
	nonce, version, ok := bytes.Cut(b, []byte{','})
	if !ok {
		return Token{}, malformed("token %s: want <nonce>,<version>", quote(b))
	}
	n, err := parseInt(nonce)
	if err != nil {
		return Token{}, malformed("token nonce: %v", err)
	}
	v, err := parseInt(version)
	if err != nil {
		return Token{}, malformed("token version: %v", err)
	}
	return Token{Nonce: n, Version: v}, nil
}

// SliceSize is the most image bytes in one slice: MYNO's Update Server
// reads the image 600 bytes at a time (UPDATE_SLICE_SIZE, §2.3).
const SliceSize = 600

// MaxSliceLen is the length of the longest slice payload.
const MaxSliceLen = maxIntDigits + 1 + SliceSize

// Slice is one piece of the image on the slice topic (§2.3): the number
// in decimal (from 0, no padding), ',', then the raw image bytes, which
// may hold ',', ';' and NUL. Vector B's slice 0 begins
// "0,MUPv1,\x00\x01;FIN;".
type Slice struct {
	Index uint32 // at most MaxInt
	Data  []byte // 1 to SliceSize bytes
}

// Encode renders the slice.
func (s Slice) Encode() ([]byte, error) {
	return s.Append(make([]byte, 0, maxIntDigits+1+len(s.Data)))
}

// Append appends the rendered slice to b.
func (s Slice) Append(b []byte) ([]byte, error) {
	if err := checkInt("slice number", s.Index); err != nil {
		return nil, err
	}
	if len(s.Data) == 0 || len(s.Data) > SliceSize {
		return nil, malformed("slice %d of %d bytes, want 1 to %d", s.Index, len(s.Data), SliceSize)
	}
	b = appendInt(b, s.Index)
	b = append(b, ',')
	return append(b, s.Data...), nil
}

// DecodeSlice parses a slice: a canonical decimal number (see MaxInt),
// ',', then 1 to SliceSize bytes taken as they are (every ',' after the
// first belongs to the data). Data aliases b. The firmware reads "the
// leading digits" and takes no size limit (§2.3); this decoder refuses a
// number that is not canonical, an empty slice (MYNO's server never sends
// one) and more than SliceSize bytes.
func DecodeSlice(b []byte) (Slice, error) {
	if len(b) > MaxSliceLen {
		return Slice{}, malformed("slice of %d bytes, longer than any (%d)", len(b), MaxSliceLen)
	}
	comma := bytes.IndexByte(b[:min(len(b), maxIntDigits+1)], ',')
	if comma < 0 {
		return Slice{}, malformed("slice %s: want <number>,<data>", quote(b))
	}
	n, err := parseInt(b[:comma])
	if err != nil {
		return Slice{}, malformed("slice number: %v", err)
	}
	data := b[comma+1:]
	if len(data) == 0 || len(data) > SliceSize {
		return Slice{}, malformed("slice %d of %d bytes, want 1 to %d", n, len(data), SliceSize)
	}
	return Slice{Index: n, Data: data}, nil
}

// SplitImage cuts an image into slices of SliceSize bytes, numbered from
// 0, as MYNO's Update Server does; the last one holds the rest. An empty
// image has no slice. The slices alias image. An image of more than
// (MaxInt+1)·SliceSize bytes cannot be numbered: SplitImage returns an
// error for it.
func SplitImage(image []byte) ([]Slice, error) {
	if uint64(len(image)) > (MaxInt+1)*SliceSize {
		return nil, malformed("image of %d bytes needs more than %d slices", len(image), uint64(MaxInt)+1)
	}
	out := make([]Slice, 0, (len(image)+SliceSize-1)/SliceSize)
	for i := 0; len(image) > 0; i++ {
		n := min(SliceSize, len(image))
		out = append(out, Slice{Index: uint32(i), Data: image[:n:n]})
		image = image[n:]
	}
	return out, nil
}

// Ack acknowledges one slice, `<n>,OK`, on the slice topic + "/response"
// (§2.3). It is not cumulative: the Update Server ticks off the one
// number. A device that receives a slice out of order re-acknowledges
// the last one it took, `<expected-1>,OK`; for a first slice other than
// 0 MYNO's firmware thus sends "-1,OK", which DecodeAck refuses like any
// negative number (it acknowledges nothing; MYNO's Update Server drops
// it as an unknown slice).
type Ack struct {
	Index uint32 // at most MaxInt
}

const ackOK = ",OK"

// MaxAckLen is the length of the longest ack.
const MaxAckLen = maxIntDigits + len(ackOK)

// Encode renders the ack.
func (a Ack) Encode() ([]byte, error) {
	if err := checkInt("ack number", a.Index); err != nil {
		return nil, err
	}
	return append(appendInt(make([]byte, 0, MaxAckLen), a.Index), ackOK...), nil
}

// DecodeAck parses `<n>,OK`: a canonical decimal number (see MaxInt),
// then exactly ",OK" (no NUL, no newline).
func DecodeAck(b []byte) (Ack, error) {
	if len(b) > MaxAckLen {
		return Ack{}, malformed("ack of %d bytes, longer than any (%d)", len(b), MaxAckLen)
	}
	num, ok := bytes.CutSuffix(b, []byte(ackOK))
	if !ok {
		return Ack{}, malformed("ack %s: want <number>,OK", quote(b))
	}
	n, err := parseInt(num)
	if err != nil {
		return Ack{}, malformed("ack number: %v", err)
	}
	return Ack{Index: n}, nil
}

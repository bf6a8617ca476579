package v1

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
)

// The manifest field indexes (§2.2, §3). The Update Server sends one field
// per funcPubUpdateManifest rpc as `<index>,<value>`; the device stores the
// value by that index alone, and index 9 (START-UPDATE) makes it verify.
const (
	IndexAppID          = 0
	IndexLinkOffset     = 1
	IndexHash           = 2
	IndexSize           = 3
	IndexVersion        = 4
	IndexOldVersion     = 5
	IndexInnerSignature = 6
	IndexNonce          = 7
	IndexOuterSignature = 8
	IndexStart          = 9

	// NumFields counts the fields of a manifest, START-UPDATE included.
	NumFields = 10
)

// StartUpdate is the value of field 9, the end of the manifest (§2.2):
// the device verifies both signatures when it arrives. MYNO's firmware
// ignores the value; DecodeField takes no other.
const StartUpdate = "START-UPDATE"

// Bounds of the manifest texts (§3).
const (
	// MaxAppIDLen: the firmware prints the AppId into a 32-byte buffer.
	MaxAppIDLen = 31
	// HashHexLen: the SHA-256 of the image as 64 lower-case hex digits.
	HashHexLen = 2 * sha256.Size
	// SignatureHexLen: r‖s, 64 bytes, as 128 hex digits.
	SignatureHexLen = 2 * SignatureSize
	// MaxFieldLen: the longest field, `8,<128 hex>`.
	MaxFieldLen = 2 + SignatureHexLen
	// MaxInnerLen and MaxOuterLen: the longest signed strings.
	MaxInnerLen = MaxAppIDLen + 1 + HashHexLen + 4*(1+maxIntDigits)
	MaxOuterLen = MaxInnerLen + 1 + SignatureHexLen + 1 + maxIntDigits
)

// leaves are the NETCONF leaf names of the fields (§2, §3): index 9
// travels in the leaf of index 8 again.
var leaves = [NumFields]string{
	"input_1_AppId", "input_2_LinkOffset", "input_3_Hash", "input_4_Size", "input_5_Version",
	"input_6_OldVersion", "input_7_InnerSignature", "input_8_DeviceNonce", "input_9_OuterSignature",
	"input_9_OuterSignature",
}

// Leaf returns the leaf of rpc funcPubUpdateManifest that carries field
// index (§2): input_1_AppId … input_9_OuterSignature, and for index 9
// (START-UPDATE) input_9_OuterSignature again. It returns "" for an
// index out of 0–9. The leaf name identifies nothing on MQTT: only the
// index prefix does (§8).
func Leaf(index int) string {
	if index < 0 || index >= NumFields {
		return ""
	}
	return leaves[index]
}

// Manifest is a MUP v1 manifest: the nine values of §3.
//
// The inner (vendor) signature covers AppID, LinkOffset, Hash, Size,
// Version and OldVersion; the outer (Update Server) signature covers
// those, the inner signature's text and the nonce (§4). Neither covers a
// device UUID.
type Manifest struct {
	// AppID: 1–31 characters from '!' to '~' (printable ASCII, no
	// space), without '%' (the firmware uses the value as a printf
	// format), ';' (it separates the signed fields and the MQTT command)
	// or ',' (it separates index and value).
	AppID      string
	LinkOffset uint32 // at most MaxInt
	// Hash is the SHA-256 of the image bytes as sent (§2.4, §6); it
	// travels as 64 lower-case hex digits, the only case the firmware's
	// check at FIN accepts.
	Hash       [sha256.Size]byte
	Size       uint32 // at most MaxInt; never checked by the firmware
	Version    uint32 // at most MaxInt; never compared by the firmware
	OldVersion uint32 // at most MaxInt
	// InnerSignature is the vendor's signature as text, 128 hex digits of
	// either case, kept as sent: the outer string holds it as is, so
	// another case is another string (vector C).
	InnerSignature string
	// Nonce is the DeviceNonce, the first value of the device's token
	// (§2.1). At most MaxInt. MYNO's firmware never compares it with
	// the token.
	Nonce uint32
	// OuterSignature is the Update Server's signature as text, 128 hex
	// digits of either case.
	OuterSignature string
}

// NewManifest describes image for the vendor to sign: its SHA-256 and
// size, and the given values.
func NewManifest(image []byte, appID string, linkOffset, version, oldVersion uint32) (Manifest, error) {
	if len(image) > MaxInt {
		return Manifest{}, malformed("image of %d bytes: the size is over %d", len(image), MaxInt)
	}
	m := Manifest{AppID: appID, LinkOffset: linkOffset, Hash: sha256.Sum256(image), Size: uint32(len(image)), Version: version, OldVersion: oldVersion}
	if err := m.check(IndexAppID, IndexOldVersion); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// set parses v as the text of field i and stores it. Its errors say which
// rule v breaks; callers add the field's name.
func (m *Manifest) set(i int, v []byte) error {
	switch i {
	case IndexAppID:
		if err := checkAppID(v); err != nil {
			return err
		}
		m.AppID = string(v)
	case IndexLinkOffset, IndexSize, IndexVersion, IndexOldVersion, IndexNonce:
		n, err := parseInt(v)
		if err != nil {
			return err
		}
		*m.intField(i) = n
	case IndexHash:
		if len(v) != HashHexLen || !isHex(v, true) {
			return fmt.Errorf("%s is not %d lower-case hex digits (the device compares it, case-sensitively, with its own lower-case SHA-256, §2.4)", quote(v), HashHexLen)
		}
		_, _ = hex.Decode(m.Hash[:], v)
	case IndexInnerSignature, IndexOuterSignature:
		if err := checkSignatureText(v); err != nil {
			return err
		}
		if i == IndexInnerSignature {
			m.InnerSignature = string(v)
		} else {
			m.OuterSignature = string(v)
		}
	case IndexStart:
		if string(v) != StartUpdate {
			return fmt.Errorf("%s: field 9 is %q, nothing else", quote(v), StartUpdate)
		}
	default:
		return fmt.Errorf("no field %d", i)
	}
	return nil
}

func (m *Manifest) intField(i int) *uint32 {
	switch i {
	case IndexLinkOffset:
		return &m.LinkOffset
	case IndexSize:
		return &m.Size
	case IndexVersion:
		return &m.Version
	case IndexOldVersion:
		return &m.OldVersion
	case IndexNonce:
		return &m.Nonce
	}
	return nil
}

// appendValue appends the text of field i.
func (m *Manifest) appendValue(b []byte, i int) []byte {
	switch i {
	case IndexAppID:
		return append(b, m.AppID...)
	case IndexHash:
		return hex.AppendEncode(b, m.Hash[:])
	case IndexInnerSignature:
		return append(b, m.InnerSignature...)
	case IndexOuterSignature:
		return append(b, m.OuterSignature...)
	case IndexStart:
		return append(b, StartUpdate...)
	}
	return appendInt(b, *m.intField(i))
}

// check validates fields from to to (inclusive).
func (m *Manifest) check(from, to int) error {
	for i := from; i <= to; i++ {
		var err error
		switch i {
		case IndexAppID:
			err = checkAppID([]byte(m.AppID))
		case IndexHash, IndexStart:
		case IndexInnerSignature:
			err = checkSignatureText([]byte(m.InnerSignature))
		case IndexOuterSignature:
			err = checkSignatureText([]byte(m.OuterSignature))
		default:
			if n := *m.intField(i); n > MaxInt {
				err = fmt.Errorf("%d is over %d (a 32-bit long on the device)", n, MaxInt)
			}
		}
		if err != nil {
			return fieldError(i, err)
		}
	}
	return nil
}

func fieldError(i int, err error) error {
	return malformed("field %d (%s): %v", i, Leaf(i), err)
}

func checkAppID(v []byte) error {
	if len(v) == 0 || len(v) > MaxAppIDLen {
		return fmt.Errorf("AppId of %d characters, want 1 to %d (the device's buffer holds 32 bytes)", len(v), MaxAppIDLen)
	}
	for _, c := range v {
		switch {
		case c == '%':
			return fmt.Errorf("AppId %s holds '%%' (the device uses it as a printf format)", quote(v))
		case c == ';' || c == ',':
			return fmt.Errorf("AppId %s holds %q (a separator of the signed strings and the fields)", quote(v), c)
		case c < '!' || c > '~':
			return fmt.Errorf("AppId %s holds byte 0x%02x; want printable ASCII without space", quote(v), c)
		}
	}
	return nil
}

func checkSignatureText(v []byte) error {
	if len(v) != SignatureHexLen || !isHex(v, false) {
		return fmt.Errorf("%s is not a signature: want %d hex digits (r‖s)", quote(v), SignatureHexLen)
	}
	return nil
}

// Validate checks every value of the manifest against the rules of §3
// (see the fields of Manifest).
func (m *Manifest) Validate() error { return m.check(IndexAppID, IndexOuterSignature) }

// EncodeInner returns the string the vendor signs (§4):
//
//	AppId;LinkOffset;Hash;Size;Version;OldVersion
//
// as the firmware prints it, "%s;%ld;%.64s;%ld;%ld;%ld". Vector A:
// "APP;0;17c36f0a…540d;100719;2;1".
func (m *Manifest) EncodeInner() ([]byte, error) {
	if err := m.check(IndexAppID, IndexOldVersion); err != nil {
		return nil, err
	}
	return m.appendInner(make([]byte, 0, MaxOuterLen)), nil
}

func (m *Manifest) appendInner(b []byte) []byte {
	for i := IndexAppID; i <= IndexOldVersion; i++ {
		if i > IndexAppID {
			b = append(b, ';')
		}
		b = m.appendValue(b, i)
	}
	return b
}

// EncodeOuter returns the string the Update Server signs (§4): the inner
// string, ';', the inner signature's text exactly as sent, ';', the nonce
// ("…;%s;%ld"). No UUID, and version and nonce are not appended again.
func (m *Manifest) EncodeOuter() ([]byte, error) {
	if err := m.check(IndexAppID, IndexNonce); err != nil {
		return nil, err
	}
	b := m.appendInner(make([]byte, 0, MaxOuterLen))
	b = append(b, ';')
	b = append(b, m.InnerSignature...)
	b = append(b, ';')
	return appendInt(b, m.Nonce), nil
}

// DecodeInner parses an inner string: exactly six ';'-separated values,
// each by the rules of its field (§3); it returns a Manifest with only
// those six set. Encoding it again gives b.
func DecodeInner(b []byte) (Manifest, error) {
	var m Manifest
	if err := decodeSigned(&m, b, "inner", MaxInnerLen, IndexOldVersion); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// DecodeOuter parses an outer string: the six inner values, the inner
// signature's text and the nonce, ';'-separated and nothing after (an
// appended UUID is refused: MYNO signs none, §7 D3). It returns a
// Manifest without OuterSignature. Encoding it again gives b.
func DecodeOuter(b []byte) (Manifest, error) {
	var m Manifest
	if err := decodeSigned(&m, b, "outer", MaxOuterLen, IndexNonce); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

func decodeSigned(m *Manifest, b []byte, name string, maxLen, last int) error {
	if len(b) > maxLen {
		return malformed("%s string of %d bytes, longer than any (%d)", name, len(b), maxLen)
	}
	if n := bytes.Count(b, []byte{';'}) + 1; n != last+1 {
		return malformed("%s string %s has %d ';'-separated values, want %d", name, quote(b), n, last+1)
	}
	for i := 0; i <= last; i++ {
		v, rest, _ := bytes.Cut(b, []byte{';'})
		if err := m.set(i, v); err != nil {
			return malformed("%s string, value %d (%s): %v", name, i, Leaf(i), err)
		}
		b = rest
	}
	return nil
}

// Field is one manifest rpc's parameter: `<index>,<value>` (§2.2), e.g.
// "0,APP" in leaf input_1_AppId. The bridge forwards it verbatim to the
// device as the value of `R;PUB-UPDATE-MANIFEST;<index>,<value>`.
type Field struct {
	Index int    // 0–9
	Value string // the value's text, by the rules of its index (§3)
}

// Fields returns the ten fields of the manifest in the order the Update
// Server sends them: 0 to 8, then 9 with START-UPDATE.
func (m *Manifest) Fields() ([]Field, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	out := make([]Field, NumFields)
	for i := range out {
		out[i] = Field{Index: i, Value: string(m.appendValue(nil, i))}
	}
	return out, nil
}

// Encode renders the field as `<index>,<value>`, the index as one decimal
// digit. The value must follow the rules of its index.
func (f Field) Encode() ([]byte, error) {
	var scratch Manifest
	if f.Index < 0 || f.Index >= NumFields {
		return nil, malformed("field index %d, want 0 to %d", f.Index, NumFields-1)
	}
	if err := scratch.set(f.Index, []byte(f.Value)); err != nil {
		return nil, fieldError(f.Index, err)
	}
	b := make([]byte, 0, 2+len(f.Value))
	b = strconv.AppendInt(b, int64(f.Index), 10)
	b = append(b, ',')
	return append(b, f.Value...), nil
}

// DecodeField parses `<index>,<value>`: the index is one digit 0–9 (no
// sign, no leading zero, no space), then one ',', then the value by the
// rules of that index (§3). At most MaxFieldLen bytes.
func DecodeField(b []byte) (Field, error) {
	if len(b) > MaxFieldLen {
		return Field{}, malformed("field of %d bytes, longer than any (%d)", len(b), MaxFieldLen)
	}
	if len(b) < 2 || b[0] < '0' || b[0] > '9' || b[1] != ',' {
		return Field{}, malformed("field %s: want <index>,<value> with the index one digit 0 to 9", quote(b))
	}
	i := int(b[0] - '0')
	var scratch Manifest
	if err := scratch.set(i, b[2:]); err != nil {
		return Field{}, fieldError(i, err)
	}
	return Field{Index: i, Value: string(b[2:])}, nil
}

// Apply stores the field's value in the manifest, as the device does: by
// index alone, a later value overwriting an earlier one. Field 9 stores
// nothing.
func (m *Manifest) Apply(f Field) error {
	if f.Index < 0 || f.Index >= NumFields {
		return malformed("field index %d, want 0 to %d", f.Index, NumFields-1)
	}
	next := *m
	if err := next.set(f.Index, []byte(f.Value)); err != nil {
		return fieldError(f.Index, err)
	}
	*m = next
	return nil
}

// ErrIncomplete is returned by Assembler.Add for START-UPDATE before each
// of the fields 0–8 has arrived.
var ErrIncomplete = errors.New("mup/v1: manifest incomplete at START-UPDATE")

// Assembler collects a manifest field by field on the device side (§2.2,
// §5): values are stored by index, a repeated index overwrites, and field
// 9 (START-UPDATE) completes the manifest. The zero value is ready.
type Assembler struct {
	m    Manifest
	have [IndexStart]bool
}

// Add stores one field. For field 9 it returns the manifest and done,
// or ErrIncomplete naming the fields still missing. MYNO's firmware
// verifies whatever its save file holds instead; the Assembler keeps its
// values after START-UPDATE, like the firmware, until Reset.
func (a *Assembler) Add(f Field) (m Manifest, done bool, err error) {
	if err := a.m.Apply(f); err != nil {
		return Manifest{}, false, err
	}
	if f.Index != IndexStart {
		a.have[f.Index] = true
		return Manifest{}, false, nil
	}
	var missing []int
	for i, ok := range a.have {
		if !ok {
			missing = append(missing, i)
		}
	}
	if missing != nil {
		return Manifest{}, false, fmt.Errorf("%w: fields %v missing", ErrIncomplete, missing)
	}
	return a.m, true, nil
}

// Reset forgets every field.
func (a *Assembler) Reset() { *a = Assembler{} }

package v1

import (
	"bytes"
)

// The vendor's part of a v1 manifest travels from `myno manifest sign
// --format v1` to `myno update` as a small text file (this project's, not
// MYNO's: MYNO's Update Server takes the values from a web form):
//
//	<inner string>\n<inner signature>\n
//
// the inner string as EncodeInner writes it and the signature as Sign
// writes it (128 hex digits).

// maxVendorFile bounds a vendor file: the longest inner string, a
// signature and two newlines.
const maxVendorFile = MaxInnerLen + SignatureHexLen + 2

// EncodeVendorFile renders m's inner values and inner signature as a
// vendor file.
func (m *Manifest) EncodeVendorFile() ([]byte, error) {
	inner, err := m.EncodeInner()
	if err != nil {
		return nil, err
	}
	if err := checkSignatureText([]byte(m.InnerSignature)); err != nil {
		return nil, fieldError(IndexInnerSignature, err)
	}
	b := append(inner, '\n')
	b = append(b, m.InnerSignature...)
	return append(b, '\n'), nil
}

// DecodeVendorFile parses a vendor file: exactly two lines, the inner
// string and the inner signature. It does not verify the signature
// (Manifest.Verify does, with the vendor's public key).
func DecodeVendorFile(b []byte) (Manifest, error) {
	if len(b) > maxVendorFile {
		return Manifest{}, malformed("vendor file of %d bytes, longer than any (%d)", len(b), maxVendorFile)
	}
	lines := bytes.Split(b, []byte{'\n'})
	if len(lines) != 3 || len(lines[2]) != 0 {
		return Manifest{}, malformed("vendor file: want two lines, each ended by a newline (the inner string, the inner signature)")
	}
	m, err := DecodeInner(lines[0])
	if err != nil {
		return Manifest{}, err
	}
	if err := checkSignatureText(lines[1]); err != nil {
		return Manifest{}, fieldError(IndexInnerSignature, err)
	}
	m.InnerSignature = string(lines[1])
	return m, nil
}

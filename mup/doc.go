// Package mup implements the MYNO Update Protocol: pure codecs for device
// tokens, vendor and extended manifests (CBOR, COSE_Sign1 ES256), firmware
// slices and acks, and the Update Server that drives an update end to end.
//
// The implementation arrives with issue 6; until then the package holds
// only this description (see the README's status table).
package mup

// Package mup holds the pure codecs of the MYNO Update Protocol (MUP paper,
// Sensors 2021): device tokens, vendor and extended manifests (CBOR inside
// COSE_Sign1 with ES256, so the algorithm is named in the manifest),
// firmware slices and acks, the slice cipher of confidential transfers,
// keys and certificates, and the device-side manifest check that returns
// the MYNO state codes. It does no I/O besides reading and writing key
// files. The byte formats are in PROTOCOL.md, with test vectors that the
// tests check.
//
// The Update Server, which drives updates end to end over NETCONF and
// MQTT, is package mup/updateserver; the device side is in package
// devices (mup.go).
package mup

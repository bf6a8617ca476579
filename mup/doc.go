// Package mup implements the MYNO Update Protocol (MUP paper, Sensors 2021):
// pure codecs for device tokens, vendor and extended manifests (CBOR inside
// COSE_Sign1 with ES256, so the algorithm is named in the manifest),
// firmware slices and acks, and the device-side manifest check that returns
// the MYNO state codes. The byte formats are in PROTOCOL.md, with test
// vectors that the tests check.
//
// The Update Server that drives an update end to end (token, extended
// manifest, slices with stop-and-wait or windowed flow control, image
// check, reboot) is still to come (issue 6).
package mup

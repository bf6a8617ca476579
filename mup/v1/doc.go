// Package v1 is the MYNO Update Protocol's original wire format (MUP v1, as
// MYNO's CC2538 firmware and Flask Update Server speak it): pure codecs, no
// I/O.
//
// Section numbers (§) in this package refer to MUP-V1.md, the description
// of that format read from MYNO's code (ksahlmann/myno, commit b67f9de);
// README.md says where it and the test vectors come from.
//
// What travels, and the codec of each:
//
//   - the token answer `<nonce>,<version>` (§2.1, §7 D2): [Token],
//     [DecodeToken];
//   - the manifest, one field per rpc as `<index>,<value>` (§2.2, §3):
//     [Field], [DecodeField], [Manifest.Fields], and [Assembler] on the
//     device side; the leaf names are [Leaf];
//   - the strings the two signatures cover (§4): [Manifest.EncodeInner],
//     [DecodeInner], [Manifest.EncodeOuter], [DecodeOuter];
//   - the signatures, ECDSA P-256 over SHA-256 of those strings, as 128
//     hex digits r‖s (§4): [Sign], [Verify], [DecodeSignature],
//     [Manifest.SignInner], [Manifest.SignOuter], [Manifest.Verify];
//   - the keys in MYNO's form, a 32-byte private scalar and a 64-byte X‖Y
//     public point, in hex (§4): [DecodePrivateKey], [EncodePrivateKey],
//     [DecodePublicKey], [EncodePublicKey];
//   - the image slices `<n>,<raw bytes>` and their acks `<n>,OK` (§2.3):
//     [Slice], [DecodeSlice], [SplitImage], [Ack], [DecodeAck];
//   - the device's answers OK, MANIFEST-SUCCESS, FIRMWARE-SUCCESS, ERROR
//     (§2, §2.4, §5): [Answer], [DecodeAnswer]; the keywords START-UPDATE
//     and FIN, the method keywords and the rpc names are constants.
//
// Every decoder is strict: it takes only the canonical spelling of each
// value, within the bounds MYNO's firmware can hold, and says which rule
// a refused input breaks (errors wrap [ErrMalformed]). For every type,
// Decode(Encode(x)) == x, and Encode(Decode(b)) == b for every b a decoder
// accepts, except the hex keys and signatures, which are accepted in
// either case (see [DecodePublicKey] and [DecodeSignature]).
//
// Topic names (§2, §2.3) are not built here: the project's rule is that
// package wire builds every topic string. The request envelope
// `<reqId>;<METHOD>[;<value>]` and the answer envelope `<reqId>;<text>`
// are wire.Request and wire.Response.
//
// MUP v1 binds no device UUID and only the nonce the device hands out, a
// constant in MYNO's firmware; package mup (COSE) stays the protocol for
// new devices. README.md lists what v1 does not protect.
package v1

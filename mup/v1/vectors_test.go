package v1

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/myno-bridge/myno/wire"
)

// The vectors of MUP-V1.md §9, copied into testdata/ (README.md says from
// where). Signatures were made by MYNO's createSig and are checked here by
// verifying them: ECDSA signatures are randomized, never compared.

type vectorKeys struct {
	PrivManufacturer  string `json:"priv_manufacturer"`
	PubManufacturer   string `json:"pub_manufacturer_xy"`
	PrivUpdateServer  string `json:"priv_updateserver"`
	PubUpdateServer   string `json:"pub_updateserver_xy"`
	ReadmeInnerSig    string `json:"update_server_README_inner_signature"`
	InnerSignedString string `json:"inner_signed_string"`
	InnerSHA256       string `json:"inner_sha256"`
	InnerSignature    string `json:"inner_signature"`
	OuterSignedString string `json:"outer_signed_string"`
	OuterSHA256       string `json:"outer_sha256"`
	OuterSignature    string `json:"outer_signature"`
}

type vector struct {
	vectorKeys
	Name                  string                        `json:"name"`
	ImageFile             string                        `json:"image_file"`
	ImageLen              int                           `json:"image_len"`
	ImageSHA256           string                        `json:"image_sha256"`
	Manifest              map[string]string             `json:"manifest"`
	NegOuterWithUUIDValid *bool                         `json:"neg_outer_with_uuid_appended_valid"`
	NegInnerSizePaddedVal *bool                         `json:"neg_inner_with_size_0padded_valid"`
	RPCLeafValues         []struct{ Leaf, Text string } `json:"rpc_leaf_values"`
	MQTTManifestPayloads  []string                      `json:"mqtt_manifest_payloads_reqid_R"`
	MQTTSlices            []struct {
		N             int    `json:"n"`
		PayloadLen    int    `json:"payload_len"`
		PayloadHead   string `json:"payload_head_hex"`
		PayloadSHA256 string `json:"payload_sha256"`
	} `json:"mqtt_slices"`
}

type vectorFile struct {
	A    vectorKeys `json:"A_repository_keys"`
	Keys vectorKeys `json:"keys_BC"`
	B, C vector
}

func loadVectors(t testing.TB) vectorFile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vf vectorFile
	if err := json.Unmarshal(data, &vf); err != nil {
		t.Fatal(err)
	}
	if vf.B.Name != "B" || vf.C.Name != "C" || len(vf.B.RPCLeafValues) != NumFields || len(vf.C.RPCLeafValues) != NumFields {
		t.Fatal("testdata/vectors.json is not the expected file")
	}
	return vf
}

// keyPair decodes a private and a public key and checks that they belong
// together, and that both encode back to the text given (lower case).
func keyPair(t *testing.T, privHex, pubHex string) (*ecdsa.PrivateKey, *ecdsa.PublicKey) {
	t.Helper()
	priv, err := DecodePrivateKey([]byte(privHex))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := DecodePublicKey([]byte(pubHex))
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(&priv.PublicKey) {
		t.Fatalf("public key %.16s… is not the private key's", pubHex)
	}
	if got, _ := EncodePrivateKey(priv); string(got) != privHex {
		t.Errorf("private key encodes as %.16s…", got)
	}
	if got, _ := EncodePublicKey(pub); string(got) != pubHex {
		t.Errorf("public key encodes as %s, want %s", got, pubHex)
	}
	return priv, pub
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkSigned checks the inner and outer strings of a vector: they decode,
// encode back byte for byte, hash to the given SHA-256, and the signatures
// verify with the given keys (and not with the other key).
func checkSigned(t *testing.T, v vectorKeys, manufacturer, updateServer *ecdsa.PublicKey) Manifest {
	t.Helper()
	inner, err := DecodeInner([]byte(v.InnerSignedString))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := inner.EncodeInner(); string(got) != v.InnerSignedString {
		t.Errorf("inner string encodes as\n%s\nwant\n%s", got, v.InnerSignedString)
	}
	if got := sha256Hex([]byte(v.InnerSignedString)); got != v.InnerSHA256 {
		t.Errorf("inner SHA-256 %s, want %s", got, v.InnerSHA256)
	}
	if err := Verify(manufacturer, []byte(v.InnerSignedString), v.InnerSignature); err != nil {
		t.Errorf("inner signature: %v", err)
	}
	if err := Verify(updateServer, []byte(v.InnerSignedString), v.InnerSignature); !errors.Is(err, ErrBadSignature) {
		t.Errorf("inner signature verifies with the Update Server key: %v", err)
	}

	m, err := DecodeOuter([]byte(v.OuterSignedString))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := m.EncodeOuter(); string(got) != v.OuterSignedString {
		t.Errorf("outer string encodes as\n%s\nwant\n%s", got, v.OuterSignedString)
	}
	if got, _ := m.EncodeInner(); string(got) != v.InnerSignedString {
		t.Errorf("the outer string's inner part is\n%s", got)
	}
	if m.InnerSignature != v.InnerSignature {
		t.Errorf("the outer string carries inner signature %s", m.InnerSignature)
	}
	if got := sha256Hex([]byte(v.OuterSignedString)); got != v.OuterSHA256 {
		t.Errorf("outer SHA-256 %s, want %s", got, v.OuterSHA256)
	}
	if err := Verify(updateServer, []byte(v.OuterSignedString), v.OuterSignature); err != nil {
		t.Errorf("outer signature: %v", err)
	}
	if err := Verify(manufacturer, []byte(v.OuterSignedString), v.OuterSignature); !errors.Is(err, ErrBadSignature) {
		t.Errorf("outer signature verifies with the manufacturer key: %v", err)
	}
	m.OuterSignature = v.OuterSignature
	if err := m.Verify(manufacturer, updateServer); err != nil {
		t.Errorf("manifest: %v", err)
	}
	if err := m.Verify(updateServer, manufacturer); !errors.Is(err, ErrInnerSignature) {
		t.Errorf("manifest with the keys swapped: %v, want the inner signature refused", err)
	}
	return m
}

// Vector A: the keys of MYNO's repository and the example of its
// keys-signatures.md.
func TestVectorA(t *testing.T) {
	a := loadVectors(t).A
	_, manufacturer := keyPair(t, a.PrivManufacturer, a.PubManufacturer)
	_, updateServer := keyPair(t, a.PrivUpdateServer, a.PubUpdateServer)
	m := checkSigned(t, a, manufacturer, updateServer)
	if m.AppID != "APP" || m.LinkOffset != 0 || m.Size != 100719 || m.Version != 2 || m.OldVersion != 1 || m.Nonce != 123456 {
		t.Errorf("vector A decodes as %+v", m)
	}
	// The Update Server README's own signature of the same inner string.
	if err := Verify(manufacturer, []byte(a.InnerSignedString), a.ReadmeInnerSig); err != nil {
		t.Errorf("README inner signature: %v", err)
	}
	if a.ReadmeInnerSig == a.InnerSignature {
		t.Error("two createSig signatures of one string are equal: k is not random?")
	}
}

// Vectors B and C: fresh keys (the key files in testdata), a real image,
// every field, rpc leaf text and MQTT payload.
func TestVectorsBC(t *testing.T) {
	vf := loadVectors(t)
	for _, v := range []vector{vf.B, vf.C} {
		t.Run(v.Name, func(t *testing.T) { checkVector(t, vf.Keys, v) })
	}
}

func checkVector(t *testing.T, keys vectorKeys, v vector) {
	file := func(name string) string { return strings.TrimSuffix(string(readTestdata(t, name)), "\n") }
	for _, kv := range [][2]string{
		{file("key-manufacturer.pub-xy.hex"), keys.PubManufacturer}, {v.PubManufacturer, keys.PubManufacturer},
		{file("key-updateserver.pub-xy.hex"), keys.PubUpdateServer}, {v.PubUpdateServer, keys.PubUpdateServer},
		{file("key-manufacturer.priv.hex"), keys.PrivManufacturer}, {file("key-updateserver.priv.hex"), keys.PrivUpdateServer},
	} {
		if kv[0] != kv[1] {
			t.Fatalf("key files and vectors.json disagree: %.16s… %.16s…", kv[0], kv[1])
		}
	}
	mPriv, mPub := keyPair(t, file("key-manufacturer.priv.hex"), file("key-manufacturer.pub-xy.hex"))
	uPriv, uPub := keyPair(t, file("key-updateserver.priv.hex"), file("key-updateserver.pub-xy.hex"))

	// The signed strings, on their own.
	checkSigned(t, v.vectorKeys, mPub, uPub)

	// The image and its hash.
	image := readTestdata(t, v.ImageFile)
	if len(image) != v.ImageLen || sha256Hex(image) != v.ImageSHA256 || v.Manifest["input_3_Hash"] != v.ImageSHA256 {
		t.Fatalf("image %s: %d bytes, SHA-256 %s", v.ImageFile, len(image), sha256Hex(image))
	}

	// The manifest, field by field from the vector's form values: each
	// field encodes to the rpc leaf text of the vector, in its leaf.
	var m Manifest
	for i := range IndexOuterSignature {
		value, ok := v.Manifest[Leaf(i)]
		if !ok {
			t.Fatalf("vector has no %s", Leaf(i))
		}
		f := Field{Index: i, Value: value}
		got, err := f.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if want := v.RPCLeafValues[i]; string(got) != want.Text || Leaf(i) != want.Leaf {
			t.Errorf("field %d encodes as %s in %s, want %s in %s", i, got, Leaf(i), want.Text, want.Leaf)
		}
		if err := m.Apply(f); err != nil {
			t.Fatal(err)
		}
	}
	inner, _ := m.EncodeInner()
	outer, _ := m.EncodeOuter()
	if string(inner) != v.InnerSignedString || string(outer) != v.OuterSignedString {
		t.Errorf("the fields give\n%s\n%s\nwant\n%s\n%s", inner, outer, v.InnerSignedString, v.OuterSignedString)
	}
	// What the vendor describes from the image is the same inner part.
	described, err := NewManifest(image, m.AppID, m.LinkOffset, m.Version, m.OldVersion)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := described.EncodeInner(); string(got) != v.InnerSignedString {
		t.Errorf("NewManifest gives %s", got)
	}

	// With the outer signature: the ten fields, the rpc leaf texts and
	// the MQTT commands of the vector, through package wire's envelope.
	m.OuterSignature = v.OuterSignature
	if err := m.Verify(mPub, uPub); err != nil {
		t.Fatal(err)
	}
	fields, err := m.Fields()
	if err != nil {
		t.Fatal(err)
	}
	var asm Assembler
	for i, f := range fields {
		text, _ := f.Encode()
		if want := v.RPCLeafValues[i]; string(text) != want.Text || Leaf(i) != want.Leaf {
			t.Errorf("field %d: %s in %s, want %s in %s", i, text, Leaf(i), want.Text, want.Leaf)
		}
		payload := wire.Request{ReqID: "R", Method: MethodPubUpdateManifest, Args: []string{string(text)}}.Encode()
		if string(payload) != v.MQTTManifestPayloads[i] {
			t.Errorf("MQTT payload %s, want %s", payload, v.MQTTManifestPayloads[i])
		}
		// The device side: the command, its field, the assembled manifest.
		req, err := wire.DecodeRequest(payload)
		if err != nil || req.Method != MethodPubUpdateManifest || len(req.Args) != 1 {
			t.Fatalf("%s: %+v %v", payload, req, err)
		}
		got, err := DecodeField([]byte(req.Args[0]))
		if err != nil || got != f {
			t.Fatalf("%s decodes as %+v, %v", req.Args[0], got, err)
		}
		assembled, done, err := asm.Add(got)
		if err != nil || done != (i == IndexStart) {
			t.Fatalf("field %d: done %v, %v", i, done, err)
		}
		if done && assembled != m {
			t.Errorf("assembled %+v\nwant %+v", assembled, m)
		}
	}

	// The slices: lengths, heads and SHA-256 of each payload; the data
	// together is the image; each is acknowledged as "<n>,OK".
	slices, err := SplitImage(image)
	if err != nil || len(slices) != len(v.MQTTSlices) {
		t.Fatalf("%d slices, want %d (%v)", len(slices), len(v.MQTTSlices), err)
	}
	var joined []byte
	for i, s := range slices {
		want := v.MQTTSlices[i]
		payload, err := s.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if int(s.Index) != want.N || len(payload) != want.PayloadLen || !bytes.HasPrefix(payload, mustHex(t, want.PayloadHead)) || sha256Hex(payload) != want.PayloadSHA256 {
			t.Errorf("slice %d: %d bytes, head %x, SHA-256 %s", s.Index, len(payload), payload[:16], sha256Hex(payload))
		}
		back, err := DecodeSlice(payload)
		if err != nil || back.Index != s.Index || !bytes.Equal(back.Data, s.Data) {
			t.Errorf("slice %d decodes as %v, %v", s.Index, back.Index, err)
		}
		joined = append(joined, back.Data...)
		ack, _ := Ack{Index: s.Index}.Encode()
		if string(ack) != strconv.Itoa(i)+",OK" {
			t.Errorf("ack %s", ack)
		}
	}
	if !bytes.Equal(joined, image) {
		t.Error("the slices do not join to the image")
	}
	if sum := sha256.Sum256(joined); sum != m.Hash {
		t.Error("the slices' SHA-256 is not the manifest's Hash (FIN would answer ERROR)")
	}

	// Negative checks: a UUID appended to the outer string, the size
	// written with a leading zero. Neither verifies (vectors.json says
	// so, and we agree), and neither decodes.
	if v.NegOuterWithUUIDValid == nil || *v.NegOuterWithUUIDValid || v.NegInnerSizePaddedVal == nil || *v.NegInnerSizePaddedVal {
		t.Fatal("vectors.json: the negative checks are missing or claim validity")
	}
	withUUID := v.OuterSignedString + ";MYNO-UPDATE-8A12-4F4F-8F69-6B8F3C2E78DD"
	if err := Verify(uPub, []byte(withUUID), v.OuterSignature); !errors.Is(err, ErrBadSignature) {
		t.Errorf("outer string with a UUID: %v", err)
	}
	if _, err := DecodeOuter([]byte(withUUID)); !errors.Is(err, ErrMalformed) {
		t.Errorf("outer string with a UUID decodes: %v", err)
	}
	size := v.Manifest["input_4_Size"]
	padded := strings.Replace(v.InnerSignedString, ";"+size+";", ";0"+size+";", 1)
	if padded == v.InnerSignedString {
		t.Fatal("size not found in the inner string")
	}
	if err := Verify(mPub, []byte(padded), v.InnerSignature); !errors.Is(err, ErrBadSignature) {
		t.Errorf("inner string with size %s: %v", "0"+size, err)
	}
	if _, err := DecodeInner([]byte(padded)); !errors.Is(err, ErrMalformed) {
		t.Errorf("inner string with size 0%s decodes: %v", size, err)
	}
	if _, err := DecodeField([]byte("3,0" + size)); !errors.Is(err, ErrMalformed) {
		t.Errorf("size field 0%s decodes: %v", size, err)
	}

	// The inner signature's text is signed as sent: in the other case
	// the outer string differs and the outer signature fails, although
	// the inner signature still verifies (vector C sends upper case).
	other := strings.ToLower(m.InnerSignature)
	if other == m.InnerSignature {
		other = strings.ToUpper(m.InnerSignature)
	}
	recased := m
	recased.InnerSignature = other
	if err := recased.Verify(mPub, uPub); !errors.Is(err, ErrOuterSignature) {
		t.Errorf("inner signature in the other case: %v, want the outer signature refused", err)
	}

	// New signatures with the vector keys verify, as createSig's do.
	fresh := m
	if err := fresh.SignInner(mPriv); err != nil {
		t.Fatal(err)
	}
	if err := fresh.SignOuter(uPriv); err != nil {
		t.Fatal(err)
	}
	if err := fresh.Verify(mPub, uPub); err != nil {
		t.Errorf("fresh signatures: %v", err)
	}
	if fresh.InnerSignature == m.InnerSignature {
		t.Error("a fresh inner signature equals createSig's: k is not random?")
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

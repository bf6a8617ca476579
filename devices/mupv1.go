package devices

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strings"

	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/mup"
	v1 "github.com/myno-bridge/myno/mup/v1"
	"github.com/myno-bridge/myno/ontology"
	"github.com/myno-bridge/myno/wire"
)

// MUPv1Config makes a device built from a MUP v1 description (MYNO's
// original MUP: funcGetDeviceToken, funcPubUpdateManifest,
// funcPubUpdateImage, matched by their method keywords) speak MUP v1 on
// the wire as MYNO's CC2538 firmware does (MUP-V1.md §2, §5, §8), with
// stronger checks that stay wire-compatible.
type MUPv1Config struct {
	// Version is the running firmware version, the second value of the
	// token.
	Version uint32
	// SlotSize is the largest image the update slot holds (bytes, > 0).
	SlotSize uint32
	// VendorKey verifies the inner signature (MYNO's publicManufacturer),
	// ServerKey the outer one (publicUpdateserver).
	VendorKey *ecdsa.PublicKey
	ServerKey *ecdsa.PublicKey
	// AppID, when set, must equal the manifest's AppId.
	AppID string
	// FirmwareCompat answers a refused START-UPDATE with OK, as MYNO's
	// firmware does (§5), instead of ERROR. Either way the device does
	// not take slices then.
	FirmwareCompat bool
}

// mupV1 is the device side of MUP v1.
type mupV1 struct {
	d   *Device
	cfg MUPv1Config
	// core holds the running version, the transfer's progress and the
	// lock (core.mu guards every field below too); its progressStep,
	// publishProgress and reportVersion are reused from the COSE side.
	core       *mupDevice
	sliceTopic string // yang/update/image/<uuid>

	nonce     uint32 // of the last token
	haveNonce bool   // a token is out and not yet used
	asm       v1.Assembler

	manifest *v1.Manifest // accepted; slices are taken while set
	next     uint32       // the next slice expected
	digest   hash.Hash
	image    []byte // the image being received
	// installed is the last image that passed FIN.
	installed []byte
}

// EnableMUPv1 installs the MUP v1 handlers on a device made by New, before
// Connect. The description must have the three MUP v1 operations (by
// their method keywords GET-DEVICE-TOKEN, PUB-UPDATE-MANIFEST,
// PUB-UPDATE-IMAGE), on their own topics or all on one (MYNO's firmware
// listens only on yang/update/<uuid>: commands are told apart by the
// method keyword), and PUB-UPDATE-IMAGE needs an input data point, the
// base of the slice topic.
func (d *Device) EnableMUPv1(cfg MUPv1Config) error {
	if cfg.VendorKey == nil || cfg.ServerKey == nil {
		return errors.New("mup v1: want the vendor and the Update Server public keys")
	}
	if cfg.SlotSize == 0 {
		return errors.New("mup v1: want a slot size")
	}
	if cfg.Version > v1.MaxInt {
		return fmt.Errorf("mup v1: version %d is over %d", cfg.Version, v1.MaxInt)
	}
	if d.mup != nil {
		return errors.New("mup v1: the device speaks MUP (COSE) already")
	}
	m := &mupV1{d: d, cfg: cfg, core: &mupDevice{d: d, version: cfg.Version, progress: -1}}
	for i := range d.model.Sensors {
		if isUpdateProgress(&d.model.Sensors[i]) {
			m.core.progressTopic = d.model.Sensors[i].Topic
		}
	}
	handlers := map[string]CommandHandler{
		v1.MethodGetDeviceToken:    m.token,
		v1.MethodPubUpdateManifest: m.manifestCmd,
		v1.MethodPubUpdateImage:    m.imageCmd,
	}
	found := map[string]bool{}
	for i := range d.model.Functions {
		f := &d.model.Functions[i]
		if _, ok := handlers[f.Method]; !ok {
			continue
		}
		found[f.Method] = true
		if f.Method == v1.MethodPubUpdateImage {
			if f.InputTopic == "" {
				return fmt.Errorf("mup v1: %s has no input data point for the slices", f.Name)
			}
			m.sliceTopic = sliceTopicV1(f.InputTopic, d.cfg.UUID)
		}
	}
	if len(found) != len(handlers) {
		return fmt.Errorf("mup v1: description lacks %s, %s or %s", v1.RPCGetDeviceToken, v1.RPCPubUpdateManifest, v1.RPCPubUpdateImage)
	}
	if d.cfg.Handlers == nil {
		d.cfg.Handlers = map[string]CommandHandler{}
	}
	for method, h := range handlers {
		d.cfg.Handlers[method] = h
	}
	// funcPubUpdateManifest declares nine leaves, but the bridge forwards
	// only the one present (§2): `R;PUB-UPDATE-MANIFEST;<i>,<value>`. The
	// device's commands see it with one text input, so that the generic
	// argument check takes the one field; DecodeField checks it. The
	// model (Model) keeps the description's inputs.
	for topic, funcs := range d.commandTopics {
		repl := make([]*ontology.Function, len(funcs))
		for i, f := range funcs {
			repl[i] = f
			if f.Method != v1.MethodPubUpdateManifest {
				continue
			}
			c := *f
			c.Inputs = nil
			for _, in := range f.Inputs {
				if in.Kind == ontology.InputSelector {
					c.Inputs = append(c.Inputs, in)
				}
			}
			c.Inputs = append(c.Inputs, ontology.Input{Name: "field", Kind: ontology.InputValue, Type: ontology.TypeString})
			repl[i] = &c
		}
		d.commandTopics[topic] = repl
	}
	d.mupv1 = m
	return nil
}

// SpeaksMUPv1 tells whether the device's description has MUP v1's three
// operations (by their method keywords; MUP-V1.md §2): EnableMUPv1 can
// make it speak v1.
func (d *Device) SpeaksMUPv1() bool {
	found := map[string]bool{}
	for i := range d.model.Functions {
		switch m := d.model.Functions[i].Method; m {
		case v1.MethodGetDeviceToken, v1.MethodPubUpdateManifest, v1.MethodPubUpdateImage:
			found[m] = true
		}
	}
	return len(found) == 3
}

// sliceTopicV1 is the slice topic of MUP v1 (§2.3): the input data point's
// topic and "/<uuid>" (wire.CommandTopic, as the Update Server makes it
// from the module), unless the description's topic names the UUID
// already (a description published with its "%s" filled in).
func sliceTopicV1(input, uuid string) string {
	if slices.Contains(strings.Split(input, "/"), uuid) {
		return input
	}
	return wire.CommandTopic(input, uuid)
}

// MUPv1Version is the running firmware version of a MUP v1 device (0 for
// another device).
func (d *Device) MUPv1Version() uint32 {
	if d.mupv1 == nil {
		return 0
	}
	d.mupv1.core.mu.Lock()
	defer d.mupv1.core.mu.Unlock()
	return d.mupv1.core.version
}

// MUPv1Image is a copy of the last image a MUP v1 device accepted at FIN
// (nil before the first).
func (d *Device) MUPv1Image() []byte {
	if d.mupv1 == nil {
		return nil
	}
	d.mupv1.core.mu.Lock()
	defer d.mupv1.core.mu.Unlock()
	return append([]byte(nil), d.mupv1.installed...)
}

// MUPv1SliceTopic is the topic a MUP v1 device takes slices on, while a
// transfer is allowed ("" for another device).
func (d *Device) MUPv1SliceTopic() string {
	if d.mupv1 == nil {
		return ""
	}
	return d.mupv1.sliceTopic
}

// newNonceV1 draws a nonce for a token: 31 random bits (the format holds
// no more, §3), not 0.
func newNonceV1() uint32 {
	var b [4]byte
	for {
		_, _ = rand.Read(b[:]) // crypto/rand.Read does not fail
		if n := binary.BigEndian.Uint32(b[:]) & v1.MaxInt; n != 0 {
			return n
		}
	}
}

// token answers GET-DEVICE-TOKEN with a fresh nonce and the running
// version, `<nonce>,<version>`, and the firmware's trailer: `R;<token>;OK`.
func (m *mupV1) token(ctx context.Context, d *Device, f *ontology.Function, args []string) (string, []string) {
	m.core.mu.Lock()
	m.nonce, m.haveNonce = newNonceV1(), true
	t := v1.Token{Nonce: m.nonce, Version: m.core.version}
	m.core.mu.Unlock()
	b, err := t.Encode()
	if err != nil {
		return string(v1.AnswerError), nil
	}
	return string(b), []string{v1.TokenTrailer}
}

// refuse answers a refused manifest: ERROR, or OK as MYNO's firmware.
func (m *mupV1) refuse(why string, err error) (string, []string) {
	m.d.log.Warn("mup v1 manifest refused", "why", why, "err", err)
	if m.cfg.FirmwareCompat {
		return string(v1.AnswerOK), nil
	}
	return string(v1.AnswerError), nil
}

// manifestCmd takes one manifest field (§2.2); at START-UPDATE it checks
// the manifest and, only if it passes, subscribes to the slice topic. An
// accepted manifest replaces a transfer in progress (the Update Server
// starts again); a refused one leaves it as it was.
func (m *mupV1) manifestCmd(ctx context.Context, d *Device, f *ontology.Function, args []string) (string, []string) {
	if len(args) != 1 {
		return m.refuse("want one field", nil)
	}
	field, err := v1.DecodeField([]byte(args[0]))
	if err != nil {
		return m.refuse("malformed field", err)
	}
	m.core.mu.Lock()
	man, done, err := m.asm.Add(field)
	if !done && err == nil {
		m.core.mu.Unlock()
		return string(v1.AnswerOK), nil
	}
	// START-UPDATE: every manifest comes whole, with a token of its own.
	m.asm.Reset()
	nonce, haveNonce := m.nonce, m.haveNonce
	m.haveNonce = false // single use, whatever the outcome
	version := m.core.version
	m.core.mu.Unlock()
	switch {
	case err != nil:
		return m.refuse("incomplete", err)
	case !haveNonce || man.Nonce != nonce:
		return m.refuse("nonce is not the last token's", nil)
	}
	if err := man.Verify(m.cfg.VendorKey, m.cfg.ServerKey); err != nil {
		return m.refuse("signature", err)
	}
	switch {
	case man.Version <= version:
		return m.refuse(fmt.Sprintf("version %d is not above %d", man.Version, version), nil)
	case man.Size == 0 || man.Size > m.cfg.SlotSize:
		return m.refuse(fmt.Sprintf("size %d does not fit the slot of %d", man.Size, m.cfg.SlotSize), nil)
	case m.cfg.AppID != "" && man.AppID != m.cfg.AppID:
		return m.refuse(fmt.Sprintf("app %q is not %q", man.AppID, m.cfg.AppID), nil)
	}
	// Only now does the device listen for slices, before it answers: the
	// Update Server sends slice 0 as soon as it reads MANIFEST-SUCCESS.
	if err := d.tr.Subscribe(ctx, m.sliceTopic); err != nil {
		d.log.Warn("mup v1: slice topic not subscribed", "err", err)
		return string(v1.AnswerError), nil
	}
	m.core.mu.Lock()
	m.manifest, m.next, m.digest, m.image = &man, 0, sha256.New(), make([]byte, 0, man.Size)
	m.core.manifest, m.core.received, m.core.progress = &mup.VendorManifest{Size: man.Size}, 0, -1
	progress := m.core.progressStep()
	m.core.mu.Unlock()
	m.core.publishProgress(progress)
	d.log.Info("mup v1 manifest accepted", "version", man.Version, "size", man.Size)
	return string(v1.AnswerManifestSuccess), nil
}

// onSlice takes slices in order from 0, hashing them as they stream, and
// acks each on the slice topic + "/response"; a duplicate, a slice out of
// order, one beyond the manifest's size or a malformed one is answered by
// re-acking the last good slice, as the firmware does (§2.3).
func (m *mupV1) onSlice(msg client.Message) {
	s, err := v1.DecodeSlice(msg.Payload)
	m.core.mu.Lock()
	if m.manifest == nil {
		m.core.mu.Unlock()
		return
	}
	switch {
	case err != nil:
		m.d.log.Warn("mup v1: malformed slice", "err", err)
	case s.Index != m.next:
		m.d.log.Debug("mup v1: slice out of order", "got", s.Index, "want", m.next)
	case uint64(len(m.image))+uint64(len(s.Data)) > uint64(m.manifest.Size):
		m.d.log.Warn("mup v1: slice beyond the manifest's size refused", "slice", s.Index, "size", m.manifest.Size)
	default:
		m.digest.Write(s.Data)
		m.image = append(m.image, s.Data...)
		m.core.received = uint32(len(m.image))
		m.next++
	}
	var ack []byte
	if m.next > 0 {
		ack, _ = v1.Ack{Index: m.next - 1}.Encode() // next-1 < MaxInt: slice numbers decode within it
	}
	progress := m.core.progressStep()
	m.core.mu.Unlock()
	if ack != nil {
		// QoS 0, as the firmware: the Update Server resends a slice it
		// hears no ack for.
		_ = m.d.tr.Publish(context.Background(), client.Message{Topic: wire.MUPv1AckTopic(m.sliceTopic), Payload: ack}, 0)
	}
	m.core.publishProgress(progress)
}

// imageCmd answers PUB-UPDATE-IMAGE: FIN ends the transfer; the image is
// taken, as the new version, if its size and SHA-256 are the manifest's.
func (m *mupV1) imageCmd(ctx context.Context, d *Device, f *ontology.Function, args []string) (string, []string) {
	if len(args) != 1 || args[0] != v1.Fin {
		return string(v1.AnswerError), nil
	}
	m.core.mu.Lock()
	man, image := m.manifest, m.image
	var sum []byte
	if m.digest != nil {
		sum = m.digest.Sum(nil)
	}
	m.manifest, m.digest, m.image, m.next = nil, nil, nil, 0
	m.core.manifest = nil
	m.core.mu.Unlock()
	if man == nil {
		d.log.Warn("mup v1: FIN without an accepted manifest")
		return string(v1.AnswerError), nil
	}
	_ = d.tr.Unsubscribe(ctx, m.sliceTopic)
	if uint64(len(image)) != uint64(man.Size) || subtle.ConstantTimeCompare(sum, man.Hash[:]) != 1 {
		d.log.Warn("mup v1: image invalid", "bytes", len(image), "size", man.Size)
		return string(v1.AnswerError), nil
	}
	m.core.mu.Lock()
	m.installed = image
	m.core.version = man.Version
	m.core.mu.Unlock()
	d.log.Info("mup v1: firmware installed", "version", man.Version)
	m.core.reportVersion(ctx)
	return string(v1.AnswerFirmwareSuccess), nil
}

// reportVersion publishes the running version on the firmware status
// topic (wire.FirmwareStatusTopic), as a MUP device does once registered.
func (m *mupV1) reportVersion(ctx context.Context) { m.core.reportVersion(ctx) }

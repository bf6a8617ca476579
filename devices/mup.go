package devices

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/mup"
	"github.com/myno-bridge/myno/ontology"
	"github.com/myno-bridge/myno/wire"
)

// MUPConfig makes a device MUP-capable: it answers getDeviceToken,
// sendExtendedManifest and sendFirmwareImage (matched by function name)
// and receives firmware slices on the sendFirmwareImage input data point.
type MUPConfig struct {
	AppID     string
	Version   uint32 // the running firmware version
	SlotSize  uint32 // the largest image the update slot holds
	VendorKey *ecdsa.PublicKey
	// ServerKey is the Update Server key, from a certificate the device
	// checked against the vendor CA (mup.VerifyServerCertificate).
	ServerKey *ecdsa.PublicKey
	// VendorCA, when ServerKey is nil, lets the device take the Update
	// Server key from the certificate the bridge publishes retained on
	// yang/update/server-cert, once it verifies against this CA. Until
	// then every extended manifest is refused.
	VendorCA *x509.Certificate
	// NeverReboots simulates a device that accepts an image but never comes
	// back with it: the version stays as it was.
	NeverReboots bool
	// TransferStall is how long a transfer may go without a slice before
	// the device abandons it and frees its update slot (default
	// DefaultTransferStall): an Update Server that died mid-transfer does
	// not leave the device answering 26_SAVESLOT-IN-USE for ever.
	TransferStall time.Duration
	// FailedReboots simulates a device whose first FailedReboots accepted
	// images do not come up: it boots its old version again (an A/B
	// slot's rollback), as after a crash in the new image's first boot.
	FailedReboots int
	// RequireEncryptedFirmware refuses plaintext slices: the firmware must
	// come sealed under a key received over the E2E channel (EnableE2E).
	RequireEncryptedFirmware bool
}

// DefaultTransferStall is MUPConfig.TransferStall's default.
const DefaultTransferStall = 30 * time.Second

// mupDevice is the device side of MUP (MUP paper, Fig. 2).
type mupDevice struct {
	d   *Device
	cfg MUPConfig

	mu       sync.Mutex
	version  uint32
	nonce    []byte // of the last token; single use
	manifest *mup.VendorManifest
	topic    string // firmware topic while a transfer is allowed
	next     uint32 // the next slice index expected
	// serverKey is the trusted Update Server key (configured, or from a
	// verified certificate).
	serverKey *ecdsa.PublicKey
	received  uint32
	lastSlice time.Time // when the transfer last moved
	digest    hash.Hash
	// slices decrypts the slices of this transfer, under the firmware key
	// a manager sent over the E2E channel for the manifest's app and
	// version and this attempt's token.
	slices     *mup.SliceCipher
	tokenNonce []byte
	// progressTopic is the topic of the description's updateProgress
	// sensor ("" without one); progress is the percentage last published
	// there, -1 before the first transfer.
	progressTopic string
	progress      int
	// failedReboots counts the simulated failed boots (FailedReboots);
	// installs the images installed.
	failedReboots int
	installs      int
	// RefusedSlices counts slices that did not decrypt (tampered, or
	// sealed under another key) or came in plaintext when encryption is
	// required.
	RefusedSlices atomic.Uint64
}

// EnableMUP installs the MUP handlers on a device made by New.
func (d *Device) EnableMUP(cfg MUPConfig) error {
	m := &mupDevice{d: d, cfg: cfg, version: cfg.Version, serverKey: cfg.ServerKey, progress: -1}
	for i := range d.model.Sensors {
		if isUpdateProgress(&d.model.Sensors[i]) {
			m.progressTopic = d.model.Sensors[i].Topic
		}
	}
	if d.cfg.Handlers == nil {
		d.cfg.Handlers = map[string]CommandHandler{}
	}
	found := 0
	for i := range d.model.Functions {
		f := &d.model.Functions[i]
		switch f.Name {
		case "getDeviceToken":
			d.cfg.Handlers[f.Method] = m.token
		case "sendExtendedManifest":
			d.cfg.Handlers[f.Method] = m.manifestCmd
		case "sendFirmwareImage":
			if f.InputTopic == "" {
				return fmt.Errorf("sendFirmwareImage has no input data point for the firmware")
			}
			d.cfg.Handlers[f.Method] = m.image
		default:
			continue
		}
		found++
	}
	if found != 3 {
		return fmt.Errorf("description lacks getDeviceToken, sendExtendedManifest or sendFirmwareImage")
	}
	d.mup = m
	return nil
}

// FirmwareInstalls is how many images the device installed (MUP; not
// counting those that did not come up, FailedReboots).
func (d *Device) FirmwareInstalls() int {
	if d.mup == nil {
		return 0
	}
	d.mup.mu.Lock()
	defer d.mup.mu.Unlock()
	return d.mup.installs
}

// FirmwareVersion is the running version.
func (d *Device) FirmwareVersion() uint32 {
	if d.mup == nil {
		return 0
	}
	d.mup.mu.Lock()
	defer d.mup.mu.Unlock()
	return d.mup.version
}

func (m *mupDevice) token(ctx context.Context, d *Device, f *ontology.Function, args []string) (string, []string) {
	m.mu.Lock()
	m.nonce = mup.NewNonce()
	t := mup.Token{UUID: d.cfg.UUID, Nonce: m.nonce, Version: m.version}
	m.mu.Unlock()
	return mup.StateOK, t.Outputs()
}

func (m *mupDevice) manifestCmd(ctx context.Context, d *Device, f *ontology.Function, args []string) (string, []string) {
	raw, err := base64.StdEncoding.DecodeString(args[0])
	if err != nil {
		return mup.StateManifestInvalid, nil
	}
	m.mu.Lock()
	st := &mup.DeviceState{UUID: d.cfg.UUID, Nonce: m.nonce, AppID: m.cfg.AppID, Version: m.version, SlotSize: m.cfg.SlotSize,
		VendorKey: m.cfg.VendorKey, ServerKey: m.serverKey, SlotInUse: m.transferring()}
	m.nonce = nil // single use, whatever the outcome
	m.mu.Unlock()
	state, vm := mup.CheckManifest(raw, st)
	if state != mup.StateOK {
		d.log.Warn("manifest refused", "state", state)
		return state, nil
	}
	// Only now does the device listen for firmware (the DoS window is minimal).
	topic := firmwareTopic(d)
	if err := d.tr.Subscribe(ctx, topic); err != nil {
		return mup.StateError, nil
	}
	m.mu.Lock()
	m.manifest, m.topic, m.next, m.received, m.digest, m.slices = vm, topic, 0, 0, sha256.New(), nil
	m.lastSlice = time.Now()
	m.tokenNonce = st.Nonce // the attempt a firmware key must be for
	m.progress = -1
	progress := m.progressStep()
	m.mu.Unlock()
	m.publishProgress(progress)
	d.log.Info("manifest accepted", "version", vm.Version, "size", vm.Size)
	return mup.StateOK, nil
}

// transferring reports whether a transfer holds the update slot: begun,
// and not stalled for TransferStall (mup/PROTOCOL.md). Called with m.mu
// held.
func (m *mupDevice) transferring() bool {
	stall := m.cfg.TransferStall
	if stall <= 0 {
		stall = DefaultTransferStall
	}
	return m.topic != "" && m.manifest != nil && m.received > 0 && time.Since(m.lastSlice) < stall
}

func firmwareTopic(d *Device) string {
	for i := range d.model.Functions {
		if d.model.Functions[i].Name == "sendFirmwareImage" {
			return d.model.Functions[i].InputTopic // bound to the UUID
		}
	}
	return ""
}

// onSlice takes slices in order, hashing as they stream; anything else is
// answered by re-acking the last good slice.
func (m *mupDevice) onSlice(msg client.Message) {
	s, err := mup.DecodeSlice(msg.Payload)
	m.mu.Lock()
	if m.manifest == nil || msg.Topic != m.topic {
		m.mu.Unlock()
		return
	}
	if err == nil && s.Index == m.next && m.next == 0 && m.d.e2e != nil {
		// The key arrives before the first slice.
		if k := m.d.e2e.FirmwareKey(m.manifest.AppID, m.manifest.Version, m.tokenNonce); k != nil {
			m.slices, _ = mup.NewSliceCipher(k) // the length was checked on receipt
		}
	}
	if err == nil && s.Index == m.next {
		switch {
		case m.slices != nil:
			if s, err = m.slices.Open(s); err != nil {
				m.RefusedSlices.Add(1)
				m.d.log.Warn("firmware slice refused", "err", err)
			}
		case m.cfg.RequireEncryptedFirmware:
			err = errors.New("plaintext firmware slice; encryption is required")
			m.RefusedSlices.Add(1)
			m.d.log.Warn("firmware slice refused", "err", err)
		}
	}
	if err == nil && s.Index == m.next && m.received+uint32(len(s.Data)) <= m.manifest.Size {
		m.digest.Write(s.Data)
		m.received += uint32(len(s.Data))
		m.lastSlice = time.Now()
		m.next++
	}
	var ack []byte
	if m.next > 0 {
		ack = mup.Ack{Index: m.next - 1}.Encode()
	}
	topic := m.topic
	progress := m.progressStep()
	m.mu.Unlock()
	if ack != nil {
		_ = m.d.tr.Publish(context.Background(), client.Message{Topic: wire.FirmwareAckTopic(topic), Payload: ack}, 0) // MUP resends; see updateserver.transfer
	}
	m.publishProgress(progress)
}

// isUpdateProgress reports whether a sensor is the device's update
// progress (MYNO's updateProgress event): a reading only the MUP side
// knows, so telemetry never makes one up.
func isUpdateProgress(s *ontology.Sensor) bool {
	return strings.EqualFold(strings.TrimPrefix(s.Name, "func"), "updateProgress")
}

// progressStep returns the percentage of the image received when it is
// due on the updateProgress topic (at the start, then at least 5 points
// on, and at 100), or -1; the caller holds mu.
func (m *mupDevice) progressStep() int {
	if m.progressTopic == "" || m.manifest == nil {
		return -1
	}
	pct := 100
	if m.manifest.Size > 0 {
		pct = int(uint64(m.received) * 100 / uint64(m.manifest.Size))
	}
	if m.progress >= 0 && pct < m.progress+5 && (pct != 100 || m.progress == 100) {
		return -1
	}
	m.progress = pct
	return pct
}

// publishProgress publishes a percentage from progressStep (QoS 0: the
// next one supersedes it).
func (m *mupDevice) publishProgress(pct int) {
	if pct < 0 {
		return
	}
	if err := m.d.tr.Publish(context.Background(), client.Message{Topic: m.progressTopic, Payload: []byte(strconv.Itoa(pct))}, 0); err == nil {
		m.d.Readings.Add(1)
	}
}

func (m *mupDevice) image(ctx context.Context, d *Device, f *ontology.Function, args []string) (string, []string) {
	m.mu.Lock()
	vm, topic := m.manifest, m.topic
	var got []byte
	if m.digest != nil {
		got = m.digest.Sum(nil)
	}
	complete := vm != nil && m.received == vm.Size
	nonce := m.tokenNonce
	m.manifest, m.topic, m.digest, m.tokenNonce = nil, "", nil, nil
	m.mu.Unlock()
	if vm == nil {
		return mup.StateError, nil
	}
	_ = d.tr.Unsubscribe(ctx, topic)
	if d.e2e != nil {
		d.e2e.dropFirmwareKey(vm.AppID, vm.Version) // used, or useless now
	}
	claimed, _ := hex.DecodeString(strings.TrimSpace(args[0]))
	if !complete || hex.EncodeToString(got) != hex.EncodeToString(vm.Digest) || hex.EncodeToString(claimed) != hex.EncodeToString(vm.Digest) {
		d.log.Warn("image invalid", "complete", complete)
		return mup.StateImageInvalid, nil
	}
	// The receipt is signed after the image check, before the reboot:
	// it says which image the device took as which version, for this
	// update (the token's nonce) only.
	outs := m.receiptOutputs(f, vm, got, nonce)
	if m.cfg.NeverReboots {
		d.log.Warn("image accepted; simulating a device that never reboots")
		return mup.StateOK, outs
	}
	m.mu.Lock()
	if m.failedReboots < m.cfg.FailedReboots {
		m.failedReboots++
		m.mu.Unlock()
		d.log.Warn("image accepted; simulating a failed first boot: the old version runs again", "version", m.version)
		m.reportVersion(ctx)
		return mup.StateOK, outs
	}
	// "Reboot" into the new version.
	m.version = vm.Version
	m.installs++
	m.mu.Unlock()
	d.log.Info("firmware installed", "version", vm.Version)
	m.reportVersion(ctx)
	return mup.StateOK, outs
}

// receiptOutputs are sendFirmwareImage's outputs after a good image: a
// signed receipt (mup.SignReceipt) where the description declares one, if
// the device holds a device certificate (its E2E one); "" where it cannot
// sign, which the Update Server refuses, since the module says it would.
func (m *mupDevice) receiptOutputs(f *ontology.Function, vm *mup.VendorManifest, digest, nonce []byte) []string {
	var outs []string
	for i, o := range f.Outputs {
		if !mup.IsReceiptOutput(o.Name) {
			continue
		}
		if outs == nil {
			outs = make([]string, len(f.Outputs))
		}
		if m.d.e2e == nil {
			m.d.log.Warn("the description declares a receipt, but the device holds no device certificate to sign it")
			continue
		}
		cert, key := m.d.e2e.credentials()
		raw, err := mup.SignReceipt(mup.Receipt{UUID: m.d.cfg.UUID, Nonce: nonce, Digest: digest, Version: vm.Version}, cert, key)
		if err != nil {
			m.d.log.Warn("receipt not signed", "err", err)
			continue
		}
		outs[i] = base64.StdEncoding.EncodeToString(raw)
	}
	return outs
}

// reportVersion publishes the running version on the firmware status
// topic, where the bridge records it.
func (m *mupDevice) reportVersion(ctx context.Context) {
	m.mu.Lock()
	v := m.version
	m.mu.Unlock()
	if err := m.d.tr.Publish(ctx, client.Message{Topic: wire.FirmwareStatusTopic(m.d.cfg.UUID), Payload: wire.EncodeFirmwareStatus(v)}, 1); err != nil {
		m.d.log.Warn("firmware status not published", "err", err)
	}
}

// onServerCert takes the Update Server key from a certificate published by
// the bridge, only if it verifies against the vendor CA.
func (m *mupDevice) onServerCert(msg client.Message) {
	blk, _ := pem.Decode(msg.Payload)
	if blk == nil || blk.Type != "CERTIFICATE" {
		m.d.log.Warn("update server certificate: not PEM")
		return
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		m.d.log.Warn("update server certificate", "err", err)
		return
	}
	key, err := mup.VerifyServerCertificate(cert, m.cfg.VendorCA)
	if err != nil {
		m.d.log.Warn("update server certificate refused", "err", err)
		return
	}
	m.mu.Lock()
	m.serverKey = key
	m.mu.Unlock()
	m.d.log.Info("update server certificate accepted", "subject", cert.Subject.CommonName)
}

// TrustsUpdateServer reports whether the device has an Update Server key.
func (d *Device) TrustsUpdateServer() bool {
	if d.mup == nil {
		return false
	}
	d.mup.mu.Lock()
	defer d.mup.mu.Unlock()
	return d.mup.serverKey != nil
}

// RefusedSlices counts firmware slices refused for encryption: they did
// not decrypt, or came in plaintext when encryption is required.
func (d *Device) RefusedSlices() uint64 {
	if d.mup == nil {
		return 0
	}
	return d.mup.RefusedSlices.Load()
}

package updateserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	gonetconf "github.com/Juniper/go-netconf/netconf"

	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/mup"
	"github.com/myno-bridge/myno/wire"
)

// FlowControl says how slices are paced.
type FlowControl string

// Flow control modes.
const (
	StopAndWait FlowControl = "stop-and-wait" // one slice in flight, as in the paper
	Windowed    FlowControl = "windowed"      // up to Window slices in flight, cumulative acks
)

// Defaults of UpdateConfig and CampaignConfig, also myno update's.
const (
	// DefaultSliceSize is the MUP paper's slice size (bytes of image).
	DefaultSliceSize = 600
	// DefaultWindow is the slices in flight with Windowed flow control.
	DefaultWindow = 8
	// DefaultParallel is the updates a campaign runs at once.
	DefaultParallel = 4
)

// UpdateConfig is one device update.
type UpdateConfig struct {
	UUID         string
	VendorSigned []byte // the vendor manifest (COSE_Sign1), from myno manifest sign
	Image        []byte
	ServerKey    *ecdsa.PrivateKey
	NETCONF      *gonetconf.Session
	MQTTURL      string // the broker the slices go through, straight
	// MQTTCredentials authenticate the Update Server to that broker.
	MQTTCredentials client.Credentials
	// V1Manifest is the vendor's MUP v1 manifest file (myno manifest sign
	// --format v1: the inner string and signature), for devices that
	// speak MUP v1. A campaign over a mixed fleet gives both manifests.
	V1Manifest []byte
	// Protocol forces the protocol; "" takes it from the device's module
	// (DetectProtocol).
	Protocol  Protocol
	SliceSize int // default DefaultSliceSize; MUP v1 slices are v1.SliceSize
	// Flow paces the slices; "" is Windowed for this project's MUP and
	// StopAndWait for MUP v1, as MYNO's Update Server sends (its flow
	// control type 0) and its constrained devices expect.
	Flow       FlowControl
	Window     int           // default DefaultWindow
	AckTimeout time.Duration // before a slice is sent again; default 1s
	MaxRetries int           // per slice; default 10
	RebootWait time.Duration // for the new version to show; default 10s
	// Progress is called after each acknowledged slice.
	Progress func(sent, total int, bytes int)
	// OpenKeyChannel, when set, makes the transfer confidential. Update
	// opens the channel (the E2E handshake) while the token is fetched,
	// draws a fresh 32-byte firmware key for this update alone, and sends
	// it bound to the token's nonce while the manifest is checked; every
	// slice is sealed under it (SliceCipher). An error aborts the update
	// before any firmware byte is published.
	OpenKeyChannel func(ctx context.Context, uuid string) (KeyChannel, error)

	// DeviceCA checks the receipts of devices that sign them (the E2E CA
	// that issues device certificates; mup.VerifyReceipt). A device whose
	// module declares a receipt cannot be updated without it.
	DeviceCA *x509.Certificate
	// RequireReceipt fails the update of a device that cannot sign (its
	// module declares no receipt) instead of reporting it unverified.
	RequireReceipt bool

	// Modules caches the modules' firmware topics across updates (a
	// campaign shares one between its workers; a long-lived Update Server
	// keeps one); nil: a cache for this update alone.
	Modules *ModuleCache

	// Observer, when set, is told of the update as it ends (Observer);
	// nil: nobody is. A campaign's template gives it every update.
	Observer Observer
}

// KeyChannel is a confidential channel to one device: the E2E channel of
// package mup/e2e/manager.
type KeyChannel interface {
	// SendFirmwareKey delivers the key of the transfer of appID at
	// version, for the update that uses the token with nonce, and returns
	// once the device confirmed it.
	SendFirmwareKey(ctx context.Context, appID string, version uint32, nonce, key []byte) error
}

// Result tells how an update went, phase by phase.
type Result struct {
	State  string // the device's last state code
	Phases map[string]time.Duration
	Topic  string // the firmware topic the slices went to
	Slices int
	Resent int // slices sent again after an ack timeout
	// Bytes is the image bytes the device acknowledged: the whole image
	// once the transfer is done, less where it failed.
	Bytes   int
	Version uint32 // the version the device reports at the end
	// Verdict is Verified when the device signed a receipt that checked
	// against the CA, Unverified when it cannot sign; "" until the image
	// check.
	Verdict Verdict
	// Signer is the subject of the certificate that signed the receipt.
	Signer string
	// Protocol is the MUP the update spoke.
	Protocol Protocol
	// Note says what an operator should know of a successful update
	// (MUP v1: a constant nonce, a version the device does not report).
	Note string
}

// phaseOrder is the order of an update's phases on the wire: MUP's token,
// extended manifest, firmware key, transfer, image check and reboot; MUP
// v1's version after FIN.
var phaseOrder = []string{"token", "manifest", "key", "transfer", "image", "reboot", "version"}

// PhaseTime is one phase of an update and what it took.
type PhaseTime struct {
	Name     string
	Duration time.Duration
}

// OrderedPhases returns the phases the update went through, in protocol
// order.
func (r *Result) OrderedPhases() []PhaseTime {
	var out []PhaseTime
	for _, p := range phaseOrder {
		if d, ok := r.Phases[p]; ok {
			out = append(out, PhaseTime{p, d})
		}
	}
	return out
}

// Verdict is how far an update's success rests on the device's signature.
type Verdict string

const (
	// Verified: a receipt signed by the device key binds the device, this
	// update's token, the image and the version (mup/PROTOCOL.md).
	Verified Verdict = "verified"
	// Unverified: the device cannot sign (its module declares no
	// receipt); success rests on answers anyone who can publish on its
	// topics could forge.
	Unverified Verdict = "unverified"
)

// UnverifiedReason says why an unverified update is one.
const UnverifiedReason = "the device cannot sign"

// UpdateError is a refused or failed update, with the step and the state.
type UpdateError struct {
	Step  string
	State string
	Err   error
}

func (e *UpdateError) Error() string {
	msg := "update failed at " + e.Step
	if e.State != "" {
		msg += ": device answered " + e.State
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *UpdateError) Unwrap() error { return e.Err }

// Update runs MUP for one device (MUP paper, Fig. 2): token, extended
// manifest, slices straight to the broker, image check, the device's
// signed receipt where it signs (mup/PROTOCOL.md; beyond the paper), new
// version. The Result is never nil: on an error it holds the phases the
// update went through. cfg.Observer, when set, is told of both as Update
// returns.
func Update(ctx context.Context, cfg UpdateConfig) (*Result, error) {
	res, err := update(ctx, cfg)
	if cfg.Observer != nil {
		// After update's helpers have ended: nothing changes res now.
		cfg.Observer.UpdateDone(cfg.UUID, res, err)
	}
	return res, err
}

func update(ctx context.Context, cfg UpdateConfig) (*Result, error) {
	if cfg.SliceSize <= 0 {
		cfg.SliceSize = DefaultSliceSize
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = time.Second
	}
	if cfg.MaxRetries <= 0 {
		cfg.MaxRetries = 10
	}
	if cfg.RebootWait <= 0 {
		cfg.RebootWait = 10 * time.Second
	}
	res := &Result{Phases: map[string]time.Duration{}}
	phase := func(name string, start time.Time) { res.Phases[name] = time.Since(start) }

	// Confidential transfer: the key channel's handshake, and the sealing
	// of the slices under a fresh key, run beside the first rpcs.
	var keyChannel chan keyChannelResult
	var sliceKey []byte
	var sealed chan sealedSlices
	// Update owns the goroutines below: it cancels them and waits for
	// them before it returns (the deferred calls run in reverse order).
	var helpers sync.WaitGroup
	defer helpers.Wait()
	kctx, kcancel := context.WithCancel(ctx)
	defer kcancel()
	if cfg.OpenKeyChannel != nil {
		sliceKey = make([]byte, 32)
		if _, err := rand.Read(sliceKey); err != nil {
			return res, &UpdateError{Step: "key", Err: err}
		}
		keyChannel = make(chan keyChannelResult, 1)
		helpers.Go(func() {
			ch, err := cfg.OpenKeyChannel(kctx, cfg.UUID)
			keyChannel <- keyChannelResult{ch, err}
		})
		sealed = make(chan sealedSlices, 1)
		helpers.Go(func() {
			s, err := sealImage(cfg.Image, cfg.SliceSize, sliceKey)
			sealed <- sealedSlices{s, err}
		})
	}

	// Which module serves the device: its devices list names it.
	start := time.Now()
	if !wire.ValidUUID(cfg.UUID) {
		return res, &UpdateError{Step: "find device", Err: fmt.Errorf("%q is not a device uuid", cfg.UUID)}
	}
	if cfg.NETCONF == nil {
		return res, &UpdateError{Step: "find device", Err: errors.New("no NETCONF session")}
	}
	nc := NewClient(cfg.NETCONF)
	dev, err := nc.Device(cfg.UUID)
	if err != nil {
		return res, &UpdateError{Step: "find device", Err: err}
	}
	// The firmware topic, from the device's module, before anything
	// reaches the device.
	if cfg.Modules == nil {
		cfg.Modules = NewModuleCache()
	}
	facts, err := cfg.Modules.facts(ctx, nc, dev.Module)
	if err != nil {
		return res, &UpdateError{Step: "find device", Err: fmt.Errorf("module %s: %w", dev.Module, err)}
	}
	res.Protocol = facts.protocol
	if cfg.Protocol != "" {
		res.Protocol = cfg.Protocol
	}
	switch res.Protocol {
	case ProtocolV1:
		if cfg.Flow == "" {
			cfg.Flow = StopAndWait
		}
		return updateV1(ctx, cfg, nc, dev, facts, res)
	case ProtocolCOSE:
		if cfg.Flow == "" {
			cfg.Flow = Windowed
		}
	default:
		return res, &UpdateError{Step: "find device", Err: fmt.Errorf("protocol %q: want %s or %s", res.Protocol, ProtocolV1, ProtocolCOSE)}
	}
	if len(cfg.VendorSigned) == 0 {
		return res, &UpdateError{Step: "manifest", Err: fmt.Errorf("device %s speaks MUP (COSE, module %s), and no COSE vendor manifest is given (myno manifest sign)", cfg.UUID, dev.Module)}
	}
	if res.Topic, err = firmwareTopic(ctx, nc, dev, cfg.Modules); err != nil {
		return res, &UpdateError{Step: "firmware topic", Err: err}
	}
	receiptLeaf, err := receiptOutput(ctx, nc, dev, cfg.Modules)
	if err != nil {
		return res, &UpdateError{Step: "firmware topic", Err: err}
	}
	if receiptLeaf != "" && cfg.DeviceCA == nil {
		// Checked before anything reaches the device: the update could
		// never be verified.
		return res, &UpdateError{Step: "receipt", Err: fmt.Errorf("the module of device %s declares a signed receipt (%s), and no CA is given to check it", cfg.UUID, receiptLeaf)}
	}
	if receiptLeaf == "" && cfg.RequireReceipt {
		return res, &UpdateError{Step: "receipt", Err: fmt.Errorf("a receipt is required, and %s (its module %s declares no receipt)", UnverifiedReason, dev.Module)}
	}
	vm, err := mup.DecodeSignedVendorManifest(cfg.VendorSigned)
	if err != nil {
		return res, &UpdateError{Step: "manifest", Err: err}
	}
	// call runs one of the device's MUP rpcs; the device selector comes
	// first, as MYNO sends inputs positionally.
	callOutput := func(rpc string, inputs ...Leaf) (*Output, error) {
		return nc.Call(dev.Namespace, rpc, append([]Leaf{{Name: "uuidInput", Value: cfg.UUID}}, inputs...)...)
	}
	call := func(rpc string, inputs ...Leaf) (string, []string, error) {
		out, err := callOutput(rpc, inputs...)
		if err != nil {
			return "", nil, err
		}
		return out.Retval, out.Values(), nil
	}

	// 1. Token.
	state, outs, err := call(tokenRPC)
	if err != nil || state != mup.StateOK {
		return res, &UpdateError{Step: tokenRPC, State: state, Err: err}
	}
	tok, err := mup.DecodeToken(outs)
	if err != nil {
		return res, &UpdateError{Step: tokenRPC, Err: err}
	}
	phase("token", start)

	// The firmware key, bound to this token, goes beside the manifest.
	var keySent chan error
	if keyChannel != nil {
		keySent = make(chan error, 1)
		helpers.Go(func() {
			r := <-keyChannel
			if r.err != nil {
				keySent <- r.err
				return
			}
			keySent <- r.ch.SendFirmwareKey(kctx, vm.AppID, vm.Version, tok.Nonce, sliceKey)
		})
	}

	// 2. Extended manifest.
	start = time.Now()
	ext, err := mup.SignExtendedManifest(cfg.VendorSigned, cfg.UUID, tok.Nonce, cfg.ServerKey)
	if err != nil {
		return res, &UpdateError{Step: "sign", Err: err}
	}
	state, _, err = call(manifestRPC, Leaf{Name: "input_1_Manifest", Value: base64.StdEncoding.EncodeToString(ext)})
	res.State = state
	if err != nil || state != mup.StateOK {
		return res, &UpdateError{Step: manifestRPC, State: state, Err: err}
	}
	phase("manifest", start)

	// 3. The device holds the firmware key (the wait, if any, is phase "key").
	if keySent != nil {
		start = time.Now()
		if err := <-keySent; err != nil {
			return res, &UpdateError{Step: "key", Err: err}
		}
		phase("key", start)
		if receiptLeaf == "" {
			// The device proved a device certificate on the E2E channel:
			// it holds a key, so it must sign. Stopped before any
			// firmware byte is published.
			return res, &UpdateError{Step: "receipt", Err: fmt.Errorf("the device proved a device certificate on the E2E channel, but its module %s declares no receipt", dev.Module)}
		}
	}

	// 4. Slices straight to the broker.
	start = time.Now()
	slices := mup.SplitImage(cfg.Image, cfg.SliceSize)
	if sealed != nil {
		s := <-sealed
		if s.err != nil {
			return res, &UpdateError{Step: "transfer", Err: s.err}
		}
		slices = s.slices
	}
	if err := transfer(ctx, cfg, coseStream(slices, len(cfg.Image), cfg.SliceSize, res.Topic), res); err != nil {
		return res, &UpdateError{Step: "transfer", Err: err}
	}
	phase("transfer", start)

	// 5. Image check.
	start = time.Now()
	digest := sha256.Sum256(cfg.Image)
	out, err := callOutput(firmwareRPC, Leaf{Name: "input_1_ImageDigest", Value: hex.EncodeToString(digest[:])})
	if err == nil {
		res.State = out.Retval
	}
	if err != nil || res.State != mup.StateOK {
		return res, &UpdateError{Step: firmwareRPC, State: res.State, Err: err}
	}
	phase("image", start)

	// 6. The verdict: the device's signed receipt, where it can sign.
	switch {
	case receiptLeaf != "":
		signer, err := checkReceipt(out, receiptLeaf, cfg.DeviceCA, mup.Receipt{UUID: cfg.UUID, Nonce: tok.Nonce, Digest: digest[:], Version: vm.Version})
		if err != nil {
			return res, &UpdateError{Step: "receipt", Err: err}
		}
		res.Verdict, res.Signer = Verified, signer
	default: // with a key channel, refused before the transfer
		res.Verdict = Unverified
	}

	// 7. The device runs the new version (a forgeable answer: it is
	// reported, the verdict above is the receipt's).
	start = time.Now()
	deadline := time.Now().Add(cfg.RebootWait)
	for {
		state, outs, err = call(tokenRPC)
		if err == nil && state == mup.StateOK {
			if t, err := mup.DecodeToken(outs); err == nil {
				res.Version = t.Version
				if t.Version == vm.Version {
					break
				}
			}
		}
		if time.Now().After(deadline) {
			return res, &UpdateError{Step: "reboot", Err: ErrNoNewVersion}
		}
		select { // polling the device, not synchronising a test
		case <-ctx.Done():
			return res, &UpdateError{Step: "reboot", Err: ctx.Err()}
		case <-time.After(100 * time.Millisecond):
		}
	}
	phase("reboot", start)
	return res, nil
}

// checkReceipt reads the receipt from the image check's reply and
// verifies it (mup.VerifyReceipt); it returns the signer's name.
func checkReceipt(out *Output, leaf string, ca *x509.Certificate, want mup.Receipt) (string, error) {
	var value string
	found := false
	for _, l := range out.Leaves {
		if l.Name == leaf {
			value, found = l.Value, true
		}
	}
	if !found || value == "" {
		return "", fmt.Errorf("the device's module declares a signed receipt (%s), and the reply carries none", leaf)
	}
	raw, err := base64.StdEncoding.DecodeString(value)
	if err != nil {
		return "", fmt.Errorf("%w: %s is not base64: %v", mup.ErrBadReceipt, leaf, err)
	}
	cert, err := mup.VerifyReceipt(raw, ca, want, time.Now())
	if err != nil {
		return "", err
	}
	return cert.Subject.CommonName, nil
}

type sealedSlices struct {
	slices []mup.Slice
	err    error
}

// sealImage cuts the image into slices sealed under key. Each is sealed
// once: a resent slice is the same ciphertext.
func sealImage(image []byte, size int, key []byte) ([]mup.Slice, error) {
	c, err := mup.NewSliceCipher(key)
	if err != nil {
		return nil, err
	}
	slices := mup.SplitImage(image, size)
	for i := range slices {
		if slices[i], err = c.Seal(slices[i]); err != nil {
			return nil, err
		}
	}
	return slices, nil
}

type keyChannelResult struct {
	ch  KeyChannel
	err error
}

// sliceStream is what a transfer sends and how acks read: the protocol's
// slice payloads, each encoded once (a resent slice is the same bytes),
// and its ack topic and codec.
type sliceStream struct {
	payloads  [][]byte
	plainSize []int // image bytes in each slice, for progress
	topic     string
	ackTopic  string
	// decodeAck returns the slice an ack acknowledges.
	decodeAck func([]byte) (uint32, error)
}

// coseStream is the stream of this project's MUP (mup/PROTOCOL.md):
// binary slices, 4-byte acks on wire.FirmwareAckTopic.
func coseStream(slices []mup.Slice, imageSize, sliceSize int, topic string) *sliceStream {
	st := &sliceStream{topic: topic, ackTopic: wire.FirmwareAckTopic(topic),
		decodeAck: func(b []byte) (uint32, error) {
			a, err := mup.DecodeAck(b)
			return a.Index, err
		}}
	for i, sl := range slices {
		st.payloads = append(st.payloads, sl.Encode())
		st.plainSize = append(st.plainSize, min(sliceSize, imageSize-i*sliceSize))
	}
	return st
}

// transfer publishes the slices and waits for acks, resending after a
// timeout from the last acknowledged slice.
func transfer(ctx context.Context, cfg UpdateConfig, st *sliceStream, res *Result) error {
	res.Slices = len(st.payloads)
	topic, ackTopic, plainSize := st.topic, st.ackTopic, st.plainSize
	acks := make(chan uint32, 1024)
	var mu sync.Mutex
	acked := -1
	mq, err := client.Dial(ctx, client.Config{URL: cfg.MQTTURL, Credentials: cfg.MQTTCredentials, ClientID: "myno-update-" + hex.EncodeToString(mup.NewNonce()[:6]), Protocol: client.MQTT5,
		TopicAliases: 4, // every publish here is QoS 0: slices carry an alias, not their topic
		OnMessage: func(m client.Message) {
			if m.Topic != ackTopic {
				return
			}
			// An ack beyond the last slice is forged (the broker, or anyone
			// who can publish): it must not end the transfer early.
			if n, err := st.decodeAck(m.Payload); err == nil && int(n) < len(st.payloads) {
				select {
				case acks <- n:
				default:
				}
			}
		}})
	if err != nil {
		return err
	}
	defer mq.Close(context.Background())
	if err := mq.Subscribe(ctx, ackTopic); err != nil {
		return err
	}
	window := 1
	if cfg.Flow == Windowed {
		window = cfg.Window
	}
	next := 0 // next slice to send
	retries := 0
	sentBytes := 0
	for {
		mu.Lock()
		base := acked + 1
		mu.Unlock()
		if base >= len(st.payloads) {
			return nil
		}
		for next < base+window && next < len(st.payloads) {
			// QoS 0: MUP has its own acks and resends, so the broker need not
			// track each slice (and mochi-mqtt v2.7.9 can stall doing so).
			if err := mq.Publish(ctx, client.Message{Topic: topic, Payload: st.payloads[next]}, 0); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				// The broker connection is down (a restart, a network cut):
				// the client reconnects by itself, and the ack timeout below
				// resends from the last acknowledged slice, not from the start.
				break
			}
			next++
		}
		timer := time.NewTimer(cfg.AckTimeout)
		select {
		case idx := <-acks:
			timer.Stop()
			mu.Lock()
			if int(idx) > acked {
				for i := acked + 1; i <= int(idx); i++ {
					sentBytes += plainSize[i]
				}
				acked = int(idx)
				retries = 0
				res.Bytes = sentBytes
			}
			a := acked
			mu.Unlock()
			if cfg.Progress != nil {
				cfg.Progress(a+1, len(st.payloads), sentBytes)
			}
		case <-timer.C:
			// A lost slice or ack: go back to the first unacknowledged one.
			retries++
			if retries > cfg.MaxRetries {
				return fmt.Errorf("%w for slice %d after %d tries", ErrNoAck, base, retries)
			}
			res.Resent += next - base
			next = base
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		}
	}
}

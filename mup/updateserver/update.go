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
	// DefaultRPCTimeout bounds the wait for each answer: a NETCONF rpc's
	// reply from the bridge (whose own --rpc-timeout, 5 s by default,
	// answers first for a device that is silent), and each step of the
	// E2E key exchange.
	DefaultRPCTimeout = 30 * time.Second
	// DefaultAckTimeout is the wait for a slice's ack before the slices
	// from the first unacknowledged one are sent again.
	DefaultAckTimeout = time.Second
	// DefaultMaxRetries is how often a slice is sent again without an
	// ack before the transfer fails.
	DefaultMaxRetries = 10
	// DefaultRebootWait bounds the wait for the device to report the new
	// version after the image check.
	DefaultRebootWait = 10 * time.Second
)

// UpdateConfig is one device update.
type UpdateConfig struct {
	UUID         string
	VendorSigned []byte // the vendor manifest (COSE_Sign1), from myno manifest sign
	Image        []byte
	ServerKey    *ecdsa.PrivateKey
	// NETCONF is the session to the bridge. An rpc it does not answer
	// within RPCTimeout closes it (ErrNoAnswer): a late reply could not
	// be told from the next rpc's.
	NETCONF *gonetconf.Session
	// Broker is the connection the slices go through, shared with other
	// updates (a campaign's; DialBroker); nil: Update connects to MQTTURL
	// itself, before it asks for a token, and closes the connection as it
	// returns.
	Broker  *Broker
	MQTTURL string // the broker the slices go through, straight
	// MQTTCredentials authenticate the Update Server to that broker.
	MQTTCredentials client.Credentials
	// MQTTConnectTimeout bounds the connection to MQTTURL and the
	// subscription to the device's ack topic; default
	// DefaultMQTTConnectTimeout.
	MQTTConnectTimeout time.Duration
	// RPCTimeout bounds each NETCONF rpc and each step of the E2E key
	// exchange; default DefaultRPCTimeout.
	RPCTimeout time.Duration
	// VendorKeys check the vendor's signature of each manifest before
	// anything leaves the Update Server (CheckLocal): it must verify with
	// one of them. nil: only the device checks it.
	VendorKeys []*ecdsa.PublicKey
	// ServerPublicKey is the Update Server key devices trust (its
	// certificate's, or MUP v1's public key file): what ServerKey signs
	// must verify with it (CheckLocal). nil: not checked.
	ServerPublicKey *ecdsa.PublicKey
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
	AckTimeout time.Duration // before a slice is sent again; default DefaultAckTimeout
	MaxRetries int           // per slice; default (0) DefaultMaxRetries, <0 none
	RebootWait time.Duration // for the new version to show; default DefaultRebootWait
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
	msg := e.Step
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
		cfg.AckTimeout = DefaultAckTimeout
	}
	switch {
	case cfg.MaxRetries == 0:
		cfg.MaxRetries = DefaultMaxRetries
	case cfg.MaxRetries < 0:
		cfg.MaxRetries = 0
	}
	if cfg.RebootWait <= 0 {
		cfg.RebootWait = DefaultRebootWait
	}
	if cfg.RPCTimeout <= 0 {
		cfg.RPCTimeout = DefaultRPCTimeout
	}
	if cfg.MQTTConnectTimeout <= 0 {
		cfg.MQTTConnectTimeout = DefaultMQTTConnectTimeout
	}
	res := &Result{Phases: map[string]time.Duration{}}

	// The order is the point: what can be refused here is refused before
	// anything leaves the Update Server (the image, the manifests, the
	// keys), then before the device hears of the update (the device and
	// its module, from the bridge; the broker connection), and only then
	// does the device get an rpc.
	if !wire.ValidUUID(cfg.UUID) {
		return res, &UpdateError{Step: "find device", Err: fmt.Errorf("%q is not a device uuid", cfg.UUID)}
	}
	if cfg.NETCONF == nil {
		return res, &UpdateError{Step: "find device", Err: errors.New("no NETCONF session")}
	}
	if err := CheckLocal(cfg); err != nil {
		return res, err
	}

	// Which module serves the device: its devices list names it.
	nc := newDeadlineClient(ctx, cfg.NETCONF, cfg.RPCTimeout)
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
	// The broker, and the device's acks subscribed, before the token.
	st := &sliceStream{topic: res.Topic, ackTopic: wire.FirmwareAckTopic(res.Topic)}
	acks, done, err := subscribeAcks(ctx, cfg, st.ackTopic)
	if err != nil {
		return res, err
	}
	defer done()
	return updateCOSE(ctx, cfg, nc, dev, vm, receiptLeaf, st, acks, res)
}

// subscribeAcks subscribes to the device's ack topic on cfg.Broker, or on
// a connection of the update's own to cfg.MQTTURL (within
// cfg.MQTTConnectTimeout); done ends the subscription, and closes such a
// connection.
func subscribeAcks(ctx context.Context, cfg UpdateConfig, ackTopic string) (*ackSubscription, func(), error) {
	b := cfg.Broker
	closeBroker := func() {}
	if b == nil {
		var err error
		if b, err = DialBroker(ctx, BrokerConfig{URL: cfg.MQTTURL, Credentials: cfg.MQTTCredentials, ConnectTimeout: cfg.MQTTConnectTimeout}); err != nil {
			return nil, nil, &UpdateError{Step: "broker", Err: err}
		}
		closeBroker = func() { _ = b.Close() }
	}
	ch, unsubscribe, err := b.acks(ctx, ackTopic)
	if err != nil {
		closeBroker()
		return nil, nil, &UpdateError{Step: "broker", Err: err}
	}
	return &ackSubscription{broker: b, acks: ch}, func() { unsubscribe(); closeBroker() }, nil
}

// ackSubscription is where a transfer publishes and hears its acks.
type ackSubscription struct {
	broker *Broker
	acks   <-chan []byte
}

// updateCOSE runs this project's MUP once the device, its module and the
// broker are known good: token, extended manifest, the firmware key where
// the transfer is confidential, slices, image check, receipt, new version.
func updateCOSE(ctx context.Context, cfg UpdateConfig, nc *Client, dev *DeviceEntry, vm *mup.VendorManifest, receiptLeaf string,
	st *sliceStream, acks *ackSubscription, res *Result) (*Result, error) {
	phase := func(name string, start time.Time) { res.Phases[name] = time.Since(start) }

	// Confidential transfer: the key channel's handshake, and the sealing
	// of the slices under a fresh key, run beside the first rpcs. Update
	// owns the goroutines below: it cancels them and waits for them
	// before it returns (the deferred calls run in reverse order).
	var keyChannel chan keyChannelResult
	var sliceKey []byte
	var sealed chan sealedSlices
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
			octx, cancel := context.WithTimeout(kctx, cfg.RPCTimeout)
			defer cancel()
			ch, err := cfg.OpenKeyChannel(octx, cfg.UUID)
			if err != nil && errors.Is(err, context.DeadlineExceeded) && kctx.Err() == nil {
				err = fmt.Errorf("the E2E channel to device %s did not open within %s: %w", cfg.UUID, cfg.RPCTimeout, err)
			}
			keyChannel <- keyChannelResult{ch, err}
		})
		sealed = make(chan sealedSlices, 1)
		helpers.Go(func() {
			s, err := sealImage(cfg.Image, cfg.SliceSize, sliceKey)
			sealed <- sealedSlices{s, err}
		})
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
	start := time.Now()
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
			sctx, cancel := context.WithTimeout(kctx, cfg.RPCTimeout)
			defer cancel()
			err := r.ch.SendFirmwareKey(sctx, vm.AppID, vm.Version, tok.Nonce, sliceKey)
			if err != nil && errors.Is(err, context.DeadlineExceeded) && kctx.Err() == nil {
				err = fmt.Errorf("device %s did not confirm the firmware key within %s: %w", cfg.UUID, cfg.RPCTimeout, err)
			}
			keySent <- err
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

	// 3. The device holds the firmware key (the wait, if any, is phase
	// "key"; both of its steps are bounded by RPCTimeout).
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
	coseStream(st, slices, len(cfg.Image), cfg.SliceSize)
	if err := transfer(ctx, cfg, st, acks, res); err != nil {
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
	// reported, the verdict above is the receipt's). Each poll is an rpc
	// bounded by RPCTimeout; the whole wait by RebootWait.
	start = time.Now()
	deadline := time.Now().Add(cfg.RebootWait)
	for {
		state, outs, err = call(tokenRPC)
		if errors.Is(err, ErrNoAnswer) {
			return res, &UpdateError{Step: "reboot", Err: err} // the session is closed
		}
		if err == nil && state == mup.StateOK {
			if t, err := mup.DecodeToken(outs); err == nil {
				res.Version = t.Version
				if t.Version == vm.Version {
					break
				}
			}
		}
		if time.Now().After(deadline) {
			return res, &UpdateError{Step: "reboot", Err: fmt.Errorf("%w %d within %s (it reports %d)", ErrNoNewVersion, vm.Version, cfg.RebootWait, res.Version)}
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

// coseStream fills st with this project's MUP (mup/PROTOCOL.md): binary
// slices, 4-byte acks on wire.FirmwareAckTopic.
func coseStream(st *sliceStream, slices []mup.Slice, imageSize, sliceSize int) {
	st.decodeAck = func(b []byte) (uint32, error) {
		a, err := mup.DecodeAck(b)
		return a.Index, err
	}
	for i, sl := range slices {
		st.payloads = append(st.payloads, sl.Encode())
		st.plainSize = append(st.plainSize, min(sliceSize, imageSize-i*sliceSize))
	}
}

// transfer publishes the slices and waits for acks, resending after a
// timeout from the last acknowledged slice. Every wait is bounded: a
// publish and an ack by AckTimeout, a slice by MaxRetries+1 of them.
func transfer(ctx context.Context, cfg UpdateConfig, st *sliceStream, sub *ackSubscription, res *Result) error {
	res.Slices = len(st.payloads)
	topic, plainSize := st.topic, st.plainSize
	window := 1
	if cfg.Flow == Windowed {
		window = cfg.Window
	}
	acked := -1
	next := 0 // next slice to send
	tries := 1
	sentBytes := 0
	// The ack timer runs from the last progress (or resend): acks that
	// acknowledge nothing new do not hold it back.
	timer := time.NewTimer(cfg.AckTimeout)
	defer timer.Stop()
	for {
		base := acked + 1
		if base >= len(st.payloads) {
			return nil
		}
		for next < base+window && next < len(st.payloads) {
			// QoS 0: MUP has its own acks and resends, so the broker need not
			// track each slice.
			if err := sub.broker.publish(ctx, topic, st.payloads[next], cfg.AckTimeout); err != nil {
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
		select {
		case payload := <-sub.acks:
			// An ack beyond the last slice is forged (the broker, or anyone
			// who can publish): it must not end the transfer early.
			n, err := st.decodeAck(payload)
			if err != nil || int(n) >= len(st.payloads) || int(n) <= acked {
				continue
			}
			for i := acked + 1; i <= int(n); i++ {
				sentBytes += plainSize[i]
			}
			acked = int(n)
			tries = 1
			timer.Reset(cfg.AckTimeout)
			res.Bytes = sentBytes
			if cfg.Progress != nil {
				cfg.Progress(acked+1, len(st.payloads), sentBytes)
			}
		case <-timer.C:
			// A lost slice or ack: go back to the first unacknowledged one.
			if tries > cfg.MaxRetries {
				return fmt.Errorf("%w of slice %d within %s (%d tries of %s)", ErrNoAck, base, time.Duration(tries)*cfg.AckTimeout, tries, cfg.AckTimeout)
			}
			tries++
			res.Resent += next - base
			next = base
			timer.Reset(cfg.AckTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

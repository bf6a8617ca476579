package updateserver

import (
	"context"
	"errors"
	"fmt"
	"time"

	v1 "github.com/myno-bridge/myno/mup/v1"
	"github.com/myno-bridge/myno/wire"
	"github.com/myno-bridge/myno/yang"
)

// ErrV1Refused is wrapped by the error of a MUP v1 update the device
// refused: its answer to START-UPDATE or to FIN was not a success.
var ErrV1Refused = errors.New("the device refused")

// firmwareConstantNonce is the nonce MYNO's CC2538 firmware puts in every
// token (MUP-V1.md §2.1, §7 D2): such a device takes any replayed manifest.
const firmwareConstantNonce = 123456

// updateV1 runs MYNO's original MUP (MUP-V1.md §2) for one device through
// the bridge: the token, the ten manifest fields one rpc at a time, the
// slices straight to the broker on the image data point's topic + "/" +
// uuid (as MYNO's 2020 bridge makes topics), FIN, and the version the
// device then reports. The device holds no key, so the verdict is
// Unverified.
func updateV1(ctx context.Context, cfg UpdateConfig, nc *Client, dev *DeviceEntry, facts *moduleFacts, res *Result) (*Result, error) {
	phase := func(name string, start time.Time) { res.Phases[name] = time.Since(start) }
	var start time.Time
	// Everything that could stop the update is checked before the device
	// hears of it.
	if cfg.OpenKeyChannel != nil {
		return res, &UpdateError{Step: "key", Err: fmt.Errorf("device %s speaks MUP v1, which has no key channel: its firmware cannot be sent confidentially", cfg.UUID)}
	}
	if cfg.RequireReceipt {
		return res, &UpdateError{Step: "receipt", Err: fmt.Errorf("a receipt is required, and %s (device %s speaks MUP v1)", UnverifiedReason, cfg.UUID)}
	}
	template, ok := facts.topics[v1.RPCPubUpdateImage]
	if !ok {
		return res, &UpdateError{Step: "firmware topic", Err: fmt.Errorf("%w: module %s has no %s statement in rpc %s", ErrNoFirmwareTopic, dev.Module, yang.InputTopicExtension, v1.RPCPubUpdateImage)}
	}
	res.Topic = wire.CommandTopic(template, cfg.UUID)
	if err := wire.CheckDeviceTopic(res.Topic); err != nil {
		return res, &UpdateError{Step: "firmware topic", Err: fmt.Errorf("module %s: %w", dev.Module, err)}
	}
	if len(cfg.V1Manifest) == 0 {
		return res, &UpdateError{Step: "manifest", Err: fmt.Errorf("device %s speaks MUP v1 (module %s), and no v1 vendor manifest is given (myno manifest sign --format v1)", cfg.UUID, dev.Module)}
	}
	// CheckLocal has checked the manifest against the image, and its
	// signature where the vendor's key is given.
	m, err := v1.DecodeVendorFile(cfg.V1Manifest)
	if err != nil {
		return res, &UpdateError{Step: "manifest", Err: err}
	}
	slices, err := v1.SplitImage(cfg.Image)
	if err != nil {
		return res, &UpdateError{Step: "manifest", Err: err}
	}
	st := &sliceStream{topic: res.Topic, ackTopic: wire.MUPv1AckTopic(res.Topic),
		decodeAck: func(b []byte) (uint32, error) {
			a, err := v1.DecodeAck(b)
			return a.Index, err
		}}
	for _, s := range slices {
		p, err := s.Encode()
		if err != nil {
			return res, &UpdateError{Step: "manifest", Err: err}
		}
		st.payloads = append(st.payloads, p)
		st.plainSize = append(st.plainSize, len(s.Data))
	}
	// The broker, and the device's acks subscribed, before the token.
	acks, done, err := subscribeAcks(ctx, cfg, st.ackTopic)
	if err != nil {
		return res, err
	}
	defer done()

	// call runs a MUP v1 rpc: the device selector, then at most one leaf,
	// as MYNO's Update Server sends them (§2). The answer is the device's
	// word without the state number a module may give it (v1Answer).
	call := func(rpc string, inputs ...Leaf) (string, error) {
		out, err := nc.Call(dev.Namespace, rpc, append([]Leaf{{Name: v1.LeafUUID, Value: cfg.UUID}}, inputs...)...)
		if err != nil {
			return "", err
		}
		return v1Answer(out.Retval), nil
	}
	token := func() (v1.Token, error) {
		answer, err := call(v1.RPCGetDeviceToken)
		if err != nil {
			return v1.Token{}, err
		}
		return v1.DecodeToken([]byte(answer))
	}

	// 1. Token (§2.1).
	start = time.Now()
	tok, err := token()
	if err != nil {
		return res, &UpdateError{Step: v1.RPCGetDeviceToken, Err: err}
	}
	if tok.Version >= m.Version {
		return res, &UpdateError{Step: "manifest", Err: fmt.Errorf("device %s runs version %d: the manifest's version %d is no upgrade", cfg.UUID, tok.Version, m.Version)}
	}
	phase("token", start)

	// 2. The manifest, one field per rpc (§2.2): the vendor's values and
	// inner signature, the token's nonce, the outer signature, then
	// START-UPDATE.
	start = time.Now()
	m.Nonce = tok.Nonce
	if err := m.SignOuter(cfg.ServerKey); err != nil {
		return res, &UpdateError{Step: "sign", Err: err}
	}
	fields, err := m.Fields()
	if err != nil {
		return res, &UpdateError{Step: "sign", Err: err}
	}
	for _, f := range fields {
		text, err := f.Encode()
		if err != nil {
			return res, &UpdateError{Step: "sign", Err: err}
		}
		answer, err := call(v1.RPCPubUpdateManifest, Leaf{Name: v1.Leaf(f.Index), Value: string(text)})
		res.State = answer
		step := fmt.Sprintf("%s field %d", v1.RPCPubUpdateManifest, f.Index)
		switch {
		case err != nil:
			return res, &UpdateError{Step: step, Err: err}
		case f.Index < v1.IndexStart && answer != string(v1.AnswerOK):
			return res, &UpdateError{Step: step, State: answer, Err: ErrV1Refused}
		case f.Index == v1.IndexStart && answer == string(v1.AnswerOK):
			// MYNO's firmware answers a signature that does not verify
			// with OK, and takes no slice (§5).
			return res, &UpdateError{Step: step, State: answer, Err: fmt.Errorf("%w the manifest: OK after START-UPDATE is MYNO firmware's answer to a signature that does not verify", ErrV1Refused)}
		case f.Index == v1.IndexStart && answer != string(v1.AnswerManifestSuccess):
			return res, &UpdateError{Step: step, State: answer, Err: fmt.Errorf("%w the manifest", ErrV1Refused)}
		}
	}
	phase("manifest", start)

	// 3. Slices straight to the broker (§2.3).
	start = time.Now()
	if err := transfer(ctx, cfg, st, acks, res); err != nil {
		return res, &UpdateError{Step: "transfer", Err: err}
	}
	phase("transfer", start)

	// 4. FIN: the device checks the image's SHA-256 (§2.4).
	start = time.Now()
	answer, err := call(v1.RPCPubUpdateImage, Leaf{Name: v1.LeafImage, Value: v1.Fin})
	res.State = answer
	if err != nil {
		return res, &UpdateError{Step: v1.RPCPubUpdateImage, Err: err}
	}
	if answer != string(v1.AnswerFirmwareSuccess) {
		return res, &UpdateError{Step: v1.RPCPubUpdateImage, State: answer, Err: fmt.Errorf("%w the image", ErrV1Refused)}
	}
	phase("image", start)
	res.Verdict = Unverified

	// 5. The version the device reports now. MYNO's firmware keeps
	// reporting its old one (§7 D7): noted, not failed, since FIN's
	// FIRMWARE-SUCCESS is all the protocol says.
	start = time.Now()
	if after, err := token(); err == nil {
		res.Version = after.Version
		if after.Version != m.Version {
			res.Note = fmt.Sprintf("the device reports version %d, not %d (MYNO's firmware does not report a new version)", after.Version, m.Version)
		}
	} else {
		res.Note = fmt.Sprintf("the device's version after the update is unknown: %v", err)
	}
	if tok.Nonce == firmwareConstantNonce {
		res.Note = joinNotes(res.Note, fmt.Sprintf("the device's nonce is %d, MYNO firmware's constant: it would take a replayed manifest", firmwareConstantNonce))
	}
	phase("version", start)
	return res, nil
}

func joinNotes(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// v1Answer is a device's MUP v1 answer as the bridge returns it, without
// a state number: a module whose states are MYNO's ontology patterns
// (10_OK, 11_MANIFEST-SUCCESS …) gives the answer OK as the state 10_OK
// (MUP-V1.md §5), MYNO's bridge as OK. A retval that is not such a state
// is returned as it is.
func v1Answer(retval string) string {
	i := 0
	for i < len(retval) && retval[i] >= '0' && retval[i] <= '9' {
		i++
	}
	if i > 0 && i < len(retval) && retval[i] == '_' {
		if a, err := v1.DecodeAnswer([]byte(retval[i+1:])); err == nil {
			return string(a)
		}
	}
	return retval
}

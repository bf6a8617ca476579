package updateserver_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	gonetconf "github.com/Juniper/go-netconf/netconf"

	"github.com/myno-bridge/myno/mup/updateserver"
	"github.com/myno-bridge/myno/netconf"
)

// recorder is an Observer that keeps what it is told.
type recorder struct {
	mu   sync.Mutex
	done []observed
}

type observed struct {
	uuid string
	res  *updateserver.Result
	err  error
}

func (r *recorder) UpdateDone(uuid string, res *updateserver.Result, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done = append(r.done, observed{uuid, res, err})
}

func (r *recorder) all() []observed {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.done)
}

func phaseNames(res *updateserver.Result) []string {
	var names []string
	for _, p := range res.OrderedPhases() {
		names = append(names, p.Name)
	}
	return names
}

// The observer is told of each Update once, as it returns, with the very
// Result and error Update returns: a success with every phase and the
// image's bytes; a refusal by the device with the phases before it; a
// failure before any rpc; a transfer without acks, with its resends.
func TestObserverIsToldOfEachUpdate(t *testing.T) {
	fb := startFakeBridge(t)
	mod := fb.addModule("mup-device.jsonld", nil)
	dev := fb.addDevice(mod, "mup-1", 3)
	image := make([]byte, 20000)
	rand.Read(image)
	var rec recorder
	run := func(uuid string, cfg updateserver.UpdateConfig) (*updateserver.Result, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cfg.UUID, cfg.ServerKey, cfg.NETCONF, cfg.MQTTURL, cfg.RebootWait, cfg.Observer = uuid, fb.serverKey, fb.session(t), fb.brokerURL, 5*time.Second, &rec
		before := len(rec.all())
		res, err := updateserver.Update(ctx, cfg)
		got := rec.all()
		if len(got) != before+1 {
			t.Fatalf("update of %s: the observer was told %d times, want once", uuid, len(got)-before)
		}
		if o := got[before]; o.uuid != uuid || o.res != res || o.err != err {
			t.Errorf("observer told %s %p %v; Update returned %s %p %v", o.uuid, o.res, o.err, uuid, res, err)
		}
		return res, err
	}

	// A success.
	res, err := run(dev.uuid, updateserver.UpdateConfig{VendorSigned: fb.signed(t, image, 4), Image: image})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"token", "manifest", "transfer", "image", "reboot"}; !slices.Equal(phaseNames(res), want) || res.Bytes != len(image) || res.Resent != 0 {
		t.Errorf("success: phases %v, %d bytes, %d resent; want %v, %d, 0", phaseNames(res), res.Bytes, res.Resent, want, len(image))
	}
	if o := updateserver.Outcome(err); o != updateserver.OutcomeOK {
		t.Errorf("success: outcome %q", o)
	}

	// A downgrade, which the device refuses at the manifest.
	res, err = run(dev.uuid, updateserver.UpdateConfig{VendorSigned: fb.signed(t, image, 2), Image: image})
	var ue *updateserver.UpdateError
	if !errors.As(err, &ue) || updateserver.Outcome(err) != updateserver.OutcomeRefused || ue.Phase() != "manifest" ||
		!slices.Equal(phaseNames(res), []string{"token"}) || res.Bytes != 0 {
		t.Errorf("downgrade: %v (outcome %q), phases %v, %d bytes", err, updateserver.Outcome(err), phaseNames(res), res.Bytes)
	}

	// A device the bridge does not know: nothing reached a device.
	res, err = run("mup-2", updateserver.UpdateConfig{VendorSigned: fb.signed(t, image, 5), Image: image})
	if !errors.As(err, &ue) || updateserver.Outcome(err) != updateserver.OutcomeError || ue.Phase() != "setup" || len(res.Phases) != 0 {
		t.Errorf("unknown device: %v (outcome %q), phases %v", err, updateserver.Outcome(err), phaseNames(res))
	}

	// A device that takes no slice, so acks none. The first window (8
	// slices) goes out twice.
	dev.mu.Lock()
	dev.deaf = true
	dev.mu.Unlock()
	res, err = run(dev.uuid, updateserver.UpdateConfig{VendorSigned: fb.signed(t, image, 5), Image: image,
		Flow: updateserver.Windowed, Window: 8, AckTimeout: 100 * time.Millisecond, MaxRetries: 1})
	if !errors.As(err, &ue) || !errors.Is(err, updateserver.ErrNoAck) || updateserver.Outcome(err) != updateserver.OutcomeTimeout || ue.Phase() != "transfer" ||
		!slices.Equal(phaseNames(res), []string{"token", "manifest"}) || res.Resent != 8 || res.Bytes != 0 {
		t.Errorf("no acks: %v (outcome %q), phases %v, %d resent, %d bytes", err, updateserver.Outcome(err), phaseNames(res), res.Resent, res.Bytes)
	}
	if dev.version() != 4 {
		t.Errorf("device at %d", dev.version())
	}
}

// A campaign's template gives its observer to every update: told once
// per device that was updated, not for one the campaign could not reach.
func TestCampaignUpdatesAreObserved(t *testing.T) {
	fb := startFakeBridge(t)
	mod := fb.addModule("mup-device.jsonld", nil)
	devs := []string{fb.addDevice(mod, "mup-1", 3).uuid, fb.addDevice(mod, "mup-2", 3).uuid}
	image := make([]byte, 3000)
	rand.Read(image)
	var rec recorder
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	results := updateserver.Campaign(ctx, updateserver.CampaignConfig{Devices: devs, Parallel: 2,
		Dial: func(context.Context) (*gonetconf.Session, error) { return fb.dial(nil) },
		Update: updateserver.UpdateConfig{VendorSigned: fb.signed(t, image, 4), Image: image, ServerKey: fb.serverKey,
			MQTTURL: fb.brokerURL, RebootWait: 5 * time.Second, Observer: &rec}})
	got := rec.all()
	var told []string
	for _, o := range got {
		told = append(told, o.uuid)
		if o.err != nil || o.res.Bytes != len(image) {
			t.Errorf("%s: %+v %v", o.uuid, o.res, o.err)
		}
	}
	slices.Sort(told)
	if !slices.Equal(told, devs) {
		t.Errorf("observer told of %v, want %v once each", told, devs)
	}
	for _, r := range results {
		if r.Err != nil {
			t.Errorf("%s: %v", r.UUID, r.Err)
		}
	}

	// No session to the bridge: no update ran, nobody is told.
	rec = recorder{}
	results = updateserver.Campaign(ctx, updateserver.CampaignConfig{Devices: devs[:1],
		Dial: func(context.Context) (*gonetconf.Session, error) { return nil, errors.New("no route") },
		Update: updateserver.UpdateConfig{VendorSigned: fb.signed(t, image, 5), Image: image, ServerKey: fb.serverKey,
			MQTTURL: fb.brokerURL, Observer: &rec}})
	var ue *updateserver.UpdateError
	if !errors.As(results[0].Err, &ue) || ue.Step != "connect" || ue.Phase() != "setup" || len(rec.all()) != 0 {
		t.Errorf("unreachable bridge: %v, observer told %d times", results[0].Err, len(rec.all()))
	}
}

// Outcome and Phase are each one of a fixed set, whatever the error says.
func TestOutcomeAndPhaseClasses(t *testing.T) {
	for _, tc := range []struct {
		err            error
		outcome, phase string
	}{
		{&updateserver.UpdateError{Step: "getDeviceToken", State: "0x10"}, updateserver.OutcomeRefused, "token"},
		{&updateserver.UpdateError{Step: "funcPubUpdateManifest field 3", State: "ERROR", Err: updateserver.ErrV1Refused}, updateserver.OutcomeRefused, "manifest"},
		{&updateserver.UpdateError{Step: "sign", Err: errors.New("bad key")}, updateserver.OutcomeError, "manifest"},
		{&updateserver.UpdateError{Step: "sendExtendedManifest", Err: &updateserver.RPCError{Tag: netconf.TagOperationFailed, AppTag: "device-timeout"}}, updateserver.OutcomeTimeout, "manifest"},
		{&updateserver.UpdateError{Step: "sendFirmwareImage", Err: &updateserver.RPCError{Tag: netconf.TagAccessDenied}}, updateserver.OutcomeError, "image"},
		{&updateserver.UpdateError{Step: "funcPubUpdateImage", State: "ERROR", Err: updateserver.ErrV1Refused}, updateserver.OutcomeRefused, "image"},
		{&updateserver.UpdateError{Step: "transfer", Err: fmt.Errorf("%w for slice 3 after 11 tries", updateserver.ErrNoAck)}, updateserver.OutcomeTimeout, "transfer"},
		{&updateserver.UpdateError{Step: "transfer", Err: context.Canceled}, updateserver.OutcomeCanceled, "transfer"},
		{&updateserver.UpdateError{Step: "reboot", Err: updateserver.ErrNoNewVersion}, updateserver.OutcomeTimeout, "reboot"},
		{&updateserver.UpdateError{Step: "key", Err: context.DeadlineExceeded}, updateserver.OutcomeTimeout, "key"},
		{&updateserver.UpdateError{Step: "receipt", Err: errors.New("does not verify")}, updateserver.OutcomeError, "receipt"},
		{&updateserver.UpdateError{Step: "firmware topic", Err: updateserver.ErrNoFirmwareTopic}, updateserver.OutcomeError, "setup"},
		{&updateserver.UpdateError{Step: "getDeviceToken", Err: fmt.Errorf("netconf getDeviceToken: %w within 30s", updateserver.ErrNoAnswer)}, updateserver.OutcomeTimeout, "token"},
		{&updateserver.UpdateError{Step: "broker", Err: &updateserver.BrokerError{URL: "mqtt://b", Timeout: time.Second, Err: context.DeadlineExceeded}}, updateserver.OutcomeTimeout, "setup"},
		{&updateserver.UpdateError{Step: "broker", Err: &updateserver.BrokerError{URL: "mqtt://b", Err: errors.New("not authorized")}}, updateserver.OutcomeError, "setup"},
		{&updateserver.UpdateError{Step: "manifest", Err: updateserver.ErrLocalCheck}, updateserver.OutcomeError, "manifest"},
		{&updateserver.UpdateError{Step: "something new"}, updateserver.OutcomeError, "other"},
	} {
		var ue *updateserver.UpdateError
		errors.As(tc.err, &ue)
		if o, p := updateserver.Outcome(tc.err), ue.Phase(); o != tc.outcome || p != tc.phase {
			t.Errorf("%v: outcome %q phase %q, want %q %q", tc.err, o, p, tc.outcome, tc.phase)
		}
	}
	if o := updateserver.Outcome(nil); o != updateserver.OutcomeOK {
		t.Errorf("nil: %q", o)
	}
}

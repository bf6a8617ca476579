package access_test

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/myno-bridge/myno/mqtt/access"
	"github.com/myno-bridge/myno/wire"
)

func TestPolicyRules(t *testing.T) {
	devs := &devicesMap{m: map[string]access.DeviceTopics{
		"d1": {Commands: []string{"actuator/led/d1", "actuator/led/d1"}, Images: coseImages("fw/d1"), Readings: []string{"sensor/t/d1"}},
		// MUP v1 (MUP-V1.md §2.3): acks on the slice topic + "/response".
		"v1": {Images: []access.ImageTopic{{Topic: "yang/update/image/v1", Ack: wire.MUPv1AckTopic("yang/update/image/v1")}}},
	}}
	p := access.Policy{Devices: devs}
	for _, tc := range []struct {
		id     access.Identity
		topic  string
		write  bool
		allows bool
	}{
		{access.Identity{Name: "d1", Role: access.RoleDevice}, wire.DeviceBootstrapTopic(wire.TopicCreate, "d1"), true, true},
		{access.Identity{Name: "d1", Role: access.RoleDevice}, wire.DeviceBootstrapTopic(wire.TopicCreate, "d2"), true, false},
		{access.Identity{Name: "d1", Role: access.RoleDevice}, wire.TopicCreate, true, false}, // shared topics: only with LegacyBootstrap
		{access.Identity{Name: "d1", Role: access.RoleDevice}, wire.ResponseTopic("d1"), true, true},
		{access.Identity{Name: "d1", Role: access.RoleDevice}, wire.ResponseTopic("d2"), true, false},
		{access.Identity{Name: "d1", Role: access.RoleDevice}, wire.InstanceResponseTopic("i1", "d1"), true, true},
		{access.Identity{Name: "d1", Role: access.RoleDevice}, "sensor/t/d1", true, true},
		{access.Identity{Name: "d1", Role: access.RoleDevice}, "actuator/led/d1", true, false}, // its commands are the bridge's to send
		{access.Identity{Name: "d1", Role: access.RoleDevice}, "actuator/led/d1", false, true},
		{access.Identity{Name: "d1", Role: access.RoleDevice}, "actuator/+/d1", false, false},
		{access.Identity{Name: "d1", Role: access.RoleDevice}, "fw/d1", false, true},
		{access.Identity{Name: "d1", Role: access.RoleDevice}, "fw/d1", true, false},
		{access.Identity{Name: "d1", Role: access.RoleDevice}, wire.FirmwareAckTopic("fw/d1"), true, true},
		{access.Identity{Name: "d1", Role: access.RoleDevice}, wire.FirmwareStatusTopic("d1"), true, true},
		{access.Identity{Name: "d1", Role: access.RoleDevice}, wire.PresenceTopic("d1"), true, true}, // its presence and Will
		{access.Identity{Name: "d1", Role: access.RoleDevice}, wire.PresenceTopic("d2"), true, false},
		{access.Identity{Name: "d1", Role: access.RoleDevice}, wire.TopicUpdateServerCert, false, true},
		{access.Identity{Name: "d1", Role: access.RoleDevice}, wire.TopicUpdateServerCert, true, false},
		{access.Identity{Name: "d1", Role: access.RoleDevice}, wire.TopicProject + "/cluster/c/registry/d1", true, false},
		{access.Identity{Name: "d1", Role: access.RoleDevice}, wire.DefaultE2EPrefix + "/+/d1/notify", false, true},
		{access.Identity{Name: "d1", Role: access.RoleDevice}, wire.DefaultE2EPrefix + "/m/d1/ready", true, true},
		{access.Identity{Name: "d1", Role: access.RoleDevice}, wire.DefaultE2EPrefix + "/m/d1/notify", true, false},
		{access.Identity{Name: "d2", Role: access.RoleDevice}, "actuator/led/d1", false, false}, // not registered: no commands
		{access.Identity{Name: "u", Role: access.RoleUpdateServer}, "fw/d1", true, true},
		{access.Identity{Name: "u", Role: access.RoleUpdateServer}, wire.FirmwareAckTopic("fw/d1"), false, true},
		{access.Identity{Name: "u", Role: access.RoleUpdateServer}, "actuator/led/d1", true, false},
		{access.Identity{Name: "u", Role: access.RoleUpdateServer}, wire.DefaultE2EPrefix + "/u/d1/notify", true, true},
		{access.Identity{Name: "u", Role: access.RoleUpdateServer}, wire.DefaultE2EPrefix + "/m/d1/notify", true, false},
		{access.Identity{Name: "v1", Role: access.RoleDevice}, "yang/update/image/v1", false, true},
		{access.Identity{Name: "v1", Role: access.RoleDevice}, "yang/update/image/v1/response", true, true},
		{access.Identity{Name: "v1", Role: access.RoleDevice}, wire.FirmwareAckTopic("yang/update/image/v1"), true, false},
		{access.Identity{Name: "u", Role: access.RoleUpdateServer}, "yang/update/image/v1", true, true},
		{access.Identity{Name: "u", Role: access.RoleUpdateServer}, "yang/update/image/v1/response", false, true},
		{access.Identity{Name: "u", Role: access.RoleUpdateServer}, "yang/update/image/v1/response", true, false},
		{access.Identity{Name: "m", Role: access.RoleE2EManager}, wire.DefaultE2EPrefix + "/m/+/ready", false, true},
		{access.Identity{Name: "m", Role: access.RoleE2EManager}, "fw/d1", true, false},
		{access.Identity{Name: "b", Role: access.RoleBridge}, "actuator/led/d1", true, true},
		{access.Identity{Name: "b", Role: access.RoleBridge}, "$SYS/x", false, false},
		{access.Identity{}, "anything", true, false},
	} {
		if got := p.Rules(tc.id).Allows(tc.topic, tc.write); got != tc.allows {
			t.Errorf("%s write=%v %s: %v, want %v", tc.id, tc.write, tc.topic, got, tc.allows)
		}
	}
	if r := p.Rules(access.Identity{Name: "d1", Role: access.RoleDevice}); len(r.Subscribe) != len(unique(r.Subscribe)) {
		t.Errorf("repeated filters: %v", r.Subscribe)
	}
	legacy := access.Policy{LegacyBootstrap: true}
	if !legacy.Rules(access.Identity{Name: "d1", Role: access.RoleDevice}).Allows(wire.TopicCreate, true) {
		t.Error("LegacyBootstrap does not allow the shared topics")
	}
}

func unique(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// Two stores on one file (the bridge and myno devices) add at once:
// nothing is lost, and each sees the other's additions after Reload,
// even a rewrite of the same size.
func TestStoreSharedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "creds.json")
	a, err := access.OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := access.OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := a
			if i%2 == 1 {
				s = b
			}
			if _, err := s.Add(fmt.Sprintf("dev-%02d", i), access.RoleDevice, access.AddOptions{}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for _, s := range []*access.Store{a, b} {
		if _, err := s.Reload(); err != nil {
			t.Fatal(err)
		}
		if s.Len() != 20 {
			t.Errorf("%d credentials, want 20", s.Len())
		}
	}
	// Same name, new token, same size: b must notice.
	if _, err := a.Add("dev-00", access.RoleDevice, access.AddOptions{Replace: true}); err != nil {
		t.Fatal(err)
	}
	before := b.List()
	if _, err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	after := b.List()
	if before[0].TokenSHA256 == after[0].TokenSHA256 {
		t.Error("a rewrite of the same size went unnoticed")
	}
	if removed, err := func() ([]string, error) {
		if _, err := a.Remove("dev-01"); err != nil {
			return nil, err
		}
		return b.Reload()
	}(); err != nil || len(removed) != 1 || removed[0] != "dev-01" {
		t.Errorf("removed %v %v, want [dev-01]", removed, err)
	}
	if _, err := a.Add("dev-00", access.RoleDevice, access.AddOptions{}); err == nil {
		t.Error("a second add of dev-00 without Replace succeeded")
	}
	if _, err := a.Add("bad name", access.RoleDevice, access.AddOptions{}); err == nil {
		t.Error("a name with a space was accepted")
	}
	if _, err := a.Add("m1", access.RoleE2EManager, access.AddOptions{Enrolment: true}); err == nil {
		t.Error("an enrolment token for a manager was accepted")
	}
}

// Devices that enrol at once (--enrol open, a fleet's first connection)
// share the file's writes, and none is lost; a second token for the same
// uuid in the same moment is refused.
func TestConcurrentEnrolmentsAreAllKept(t *testing.T) {
	store, err := access.OpenStore(filepath.Join(t.TempDir(), "creds.json"))
	if err != nil {
		t.Fatal(err)
	}
	c := &access.Controller{Store: store, Enrolment: access.EnrolOpen}
	const n = 500
	var wg sync.WaitGroup
	var mu sync.Mutex
	refused := 0
	for i := range n {
		for twin := range 2 { // two clients claim each uuid with different tokens
			wg.Add(1)
			go func() {
				defer wg.Done()
				name := fmt.Sprintf("dev-%03d", i)
				_, err := c.Authenticate(access.ConnectRequest{ClientID: name, Username: name, Password: []byte(fmt.Sprintf("token-%d-of-%s-0123456789abcdef", twin, name))})
				if err != nil {
					mu.Lock()
					refused++
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	again, err := access.OpenStore(store.Path())
	if err != nil {
		t.Fatal(err)
	}
	if again.Len() != n || refused != n {
		t.Errorf("%d devices on file and %d claims refused; want %d and %d", again.Len(), refused, n, n)
	}
}

// coseImages are image topics of this project's MUP, each with its ack.
func coseImages(topics ...string) []access.ImageTopic {
	var out []access.ImageTopic
	for _, t := range topics {
		out = append(out, access.ImageTopic{Topic: t, Ack: wire.FirmwareAckTopic(t)})
	}
	return out
}

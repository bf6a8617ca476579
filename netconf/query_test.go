package netconf

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/xml"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/ssh"
)

const nsDevices = "urn:test:devices"

// pushDownServer has the built-in state, a device list of n entries whose
// source narrows by key (ListKeys), and a source without roots.
func pushDownServer(t testing.TB, n int) (*Server, *atomic.Int64, *atomic.Int64) {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(Config{HostKey: signer, Users: NewUsers()})
	if err != nil {
		t.Fatal(err)
	}
	var built, rootless atomic.Int64 // device entries built; calls of the rootless source
	devices := xml.Name{Space: nsDevices, Local: "devices"}
	s.AddStateSource("devices", StateSource{Roots: []xml.Name{devices}, Get: func(_ context.Context, q *StateQuery) ([]*Element, error) {
		list := NewNode(nsDevices, "devices")
		entry := func(i int) *Element {
			built.Add(1)
			return NewNode(nsDevices, "device", NewLeaf(nsDevices, "uuid", fmt.Sprintf("d-%d", i)),
				NewLeaf(nsDevices, "online", fmt.Sprint(i%2 == 0)), NewNode(nsDevices, "sensors", NewLeaf(nsDevices, "t", fmt.Sprint(i))))
		}
		siblings, whole := q.Within(devices)
		if keys, ok := ListKeys(siblings, xml.Name{Space: nsDevices, Local: "device"}, "uuid"); !whole && ok {
			for _, k := range keys {
				var i int
				if _, err := fmt.Sscanf(k, "d-%d", &i); err == nil && i < n {
					list.Children = append(list.Children, entry(i))
				}
			}
			return []*Element{list}, nil
		}
		for i := range n {
			list.Children = append(list.Children, entry(i))
		}
		return []*Element{list}, nil
	}})
	s.AddState("other", func(context.Context) ([]*Element, error) {
		rootless.Add(1)
		return []*Element{NewNode("urn:test:other", "other", NewLeaf("urn:test:other", "x", "1"))}, nil
	})
	s.AddModule(Module{Name: "test-devices", Revision: "2026-01-01", Namespace: nsDevices, Source: "module test-devices {}"})
	return s, &built, &rootless
}

func getWith(t *testing.T, s *Server, filter string) string {
	t.Helper()
	op := NewNode(NSBase, "get")
	if filter != "" {
		f, err := ParseElement([]byte(`<filter xmlns="`+NSBase+`" type="subtree">`+filter+`</filter>`), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		op.Children = append(op.Children, f)
	}
	out, err := s.opGet(context.Background(), &session{info: SessionInfo{User: "u"}}, op)
	if err != nil {
		t.Fatal(err)
	}
	return out[0].String()
}

// A filter pushed down to the state sources gives exactly what the whole
// state filtered gives (RFC 6241 §6), for filters of every kind; and the
// sources build only what the filter can select.
func TestFilterPushDownSelectsTheSame(t *testing.T) {
	const n = 50
	s, built, rootless := pushDownServer(t, n)
	out, err := s.opGet(context.Background(), &session{info: SessionInfo{User: "u"}}, NewNode(NSBase, "get"))
	if err != nil {
		t.Fatal(err)
	}
	full := out[0]
	mon := `xmlns="` + NSMonitoring + `"`
	dev := `xmlns="` + nsDevices + `"`
	for _, tc := range []struct {
		name, filter string
		entries      int64 // device entries the source may build
		rootless     bool  // whether the rootless source is called (it always is)
	}{
		{"one schema's version", `<netconf-state ` + mon + `><schemas><schema><identifier>ietf-netconf-monitoring</identifier><version/></schema></schemas></netconf-state>`, 0, true},
		{"netconf-state whole", `<netconf-state ` + mon + `/>`, 0, true},
		{"statistics and sessions", `<netconf-state ` + mon + `><statistics/><sessions/></netconf-state>`, 0, true},
		{"content match inside netconf-state", `<netconf-state ` + mon + `><capabilities><capability>urn:ietf:params:netconf:base:1.1</capability></capabilities></netconf-state>`, 0, true},
		{"yang-library", `<yang-library xmlns="` + NSYangLibrary + `"/>`, 0, true},
		{"modules-state content match", `<modules-state xmlns="` + NSYangLibrary + `"><module><name>test-devices</name><revision/></module></modules-state>`, 0, true},
		{"nacm", `<nacm xmlns="` + NSNACM + `"/>`, 0, true},
		{"one device by key", `<devices ` + dev + `><device><uuid>d-7</uuid><online/></device></devices>`, 1, true},
		{"two devices by key", `<devices ` + dev + `><device><uuid>d-7</uuid></device><device><uuid>d-9</uuid><sensors/></device></devices>`, 2, true},
		{"an unknown device", `<devices ` + dev + `><device><uuid>nope</uuid></device></devices>`, 0, true},
		{"devices by another leaf", `<devices ` + dev + `><device><online>true</online><uuid/></device></devices>`, n, true},
		{"devices whole", `<devices ` + dev + `/>`, n, true},
		{"device key and a selection sibling", `<devices ` + dev + `><device><uuid>d-1</uuid></device><device/></devices>`, n, true},
		{"no namespace: every module", `<devices><device><uuid>d-3</uuid></device></devices>`, 1, true},
		{"no namespace top-level selection", `<netconf-state/>`, 0, true},
		{"top-level content match", `<other xmlns="urn:test:other">1</other>`, 0, true},
		{"top-level content match in the devices namespace", `<devices ` + dev + `>x</devices>`, n, true},
		{"two modules", `<netconf-state ` + mon + `><schemas/></netconf-state><devices ` + dev + `><device><uuid>d-2</uuid></device></devices>`, 1, true},
		{"empty filter", ``, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var filter []*Element
			if tc.filter != "" {
				f, err := ParseElement([]byte(`<filter xmlns="`+NSBase+`" type="subtree">`+tc.filter+`</filter>`), Limits{})
				if err != nil {
					t.Fatal(err)
				}
				filter = f.Children
			}
			want := NewNode(NSBase, "data", FilterSubtree(full.Children, filter)...).String()
			built.Store(0)
			rootless.Store(0)
			var got string
			if tc.filter == "" {
				op := NewNode(NSBase, "get", NewNode(NSBase, "filter"))
				op.Children[0].Attrs = []xml.Attr{{Name: xml.Name{Local: "type"}, Value: "subtree"}}
				out, err := s.opGet(context.Background(), &session{info: SessionInfo{User: "u"}}, op)
				if err != nil {
					t.Fatal(err)
				}
				got = out[0].String()
			} else {
				got = getWith(t, s, tc.filter)
			}
			// Session-less counters do not move between the two gets, so
			// the documents are equal byte for byte.
			if got != want {
				t.Errorf("pushed down:\n%s\nwhole then filtered:\n%s", got, want)
			}
			if b := built.Load(); b > tc.entries {
				t.Errorf("the source built %d device entries, want at most %d", b, tc.entries)
			}
			if r := rootless.Load() > 0; r != tc.rootless {
				t.Errorf("rootless source called: %v, want %v", r, tc.rootless)
			}
		})
	}
	if !strings.Contains(full.String(), "d-49") {
		t.Fatal("the full state lacks the devices")
	}
}

// BenchmarkStateGet is the server's side of a <get> (building, filtering,
// no transport) against a device list of 0 and 10,000 entries: a one-leaf
// get of a schema's version and a one-device get cost the same whatever
// the fleet (the filter is pushed down), a full get grows with it.
func BenchmarkStateGet(b *testing.B) {
	mon := `xmlns="` + NSMonitoring + `"`
	for _, n := range []int{0, 10000} {
		s, _, _ := pushDownServer(b, n)
		for _, f := range []struct{ name, filter string }{
			{"schema-version", `<netconf-state ` + mon + `><schemas><schema><identifier>ietf-netconf-monitoring</identifier><version/></schema></schemas></netconf-state>`},
			{"one-device", `<devices xmlns="` + nsDevices + `"><device><uuid>d-7</uuid></device></devices>`},
			{"full", ""},
		} {
			op := NewNode(NSBase, "get")
			if f.filter != "" {
				fe, err := ParseElement([]byte(`<filter xmlns="`+NSBase+`" type="subtree">`+f.filter+`</filter>`), Limits{})
				if err != nil {
					b.Fatal(err)
				}
				op.Children = append(op.Children, fe)
			}
			sess := &session{info: SessionInfo{User: "u"}}
			b.Run(fmt.Sprintf("devices=%d/%s", n, f.name), func(b *testing.B) {
				for b.Loop() {
					if _, err := s.opGet(context.Background(), sess, op); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

package access

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/myno-bridge/myno/wire"
)

// Bindings are kept in their file: a restart reads them back; a binding
// that cannot be written changes nothing; a broken file is an error that
// names it.
func TestBindingsPersist(t *testing.T) {
	file := filepath.Join(t.TempDir(), BindingsFile)
	b, err := OpenBindings(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"SIM1", "SIM2"} {
		if err := b.Bind(u, "sim-a"); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Bind("SIM3", "sim-b"); err != nil {
		t.Fatal(err)
	}
	if err := b.Unbind("SIM3"); err != nil {
		t.Fatal(err)
	}
	again, err := OpenBindings(file)
	if err != nil {
		t.Fatal(err)
	}
	if got := again.Devices("sim-a"); !slices.Equal(got, []string{"SIM1", "SIM2"}) {
		t.Errorf("after a restart sim-a holds %v", got)
	}
	if _, ok := again.Owner("SIM3"); ok {
		t.Error("an unbound device is bound after a restart")
	}
	if info, err := os.Stat(file); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("bindings file: %v %v", info, err)
	}
	// A file that cannot be written: the binding is not taken.
	ro, err := OpenBindings(filepath.Join(t.TempDir(), "missing-dir", BindingsFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := ro.Bind("SIM4", "sim-c"); err == nil {
		t.Fatal("a binding that could not be saved was reported kept")
	}
	if _, ok := ro.Owner("SIM4"); ok {
		t.Error("a binding that could not be saved is held")
	}
	if err := os.WriteFile(file, []byte("[1,2]"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenBindings(file); err == nil {
		t.Error("a broken bindings file was read")
	}
}

// An anonymous client may use the topics of its bound devices and
// register new ones, nothing of other devices'.
func TestAnonymousRules(t *testing.T) {
	r := Policy{}.AnonymousRules([]string{"SIM1"})
	for _, c := range []struct {
		topic string
		write bool
		want  bool
	}{
		{wire.ResponseTopic("SIM1"), true, true},
		{wire.PresenceTopic("SIM1"), true, true},
		{wire.TopicLegacy, true, true},
		{wire.DeviceBootstrapTopic(wire.TopicCreate, "NEW-7"), true, true},
		{wire.BootstrapResponseTopic(wire.TopicCreate, "NEW-7"), false, true},
		{wire.ResponseTopic("SIM2"), true, false},
		{wire.PresenceTopic("SIM2"), true, false},
		{wire.TopicUpdateServerCert, true, false},
		{"#", false, false},
	} {
		if got := r.Allows(c.topic, c.write); got != c.want {
			t.Errorf("%s write=%v: %v, want %v", c.topic, c.write, got, c.want)
		}
	}
}

package e2e

import "testing"

func TestCheckPrefix(t *testing.T) {
	for _, p := range []string{DefaultPrefix, "myno/e2e", "a", "x/y/z", "iot$", "a/b$c"} {
		if err := CheckPrefix(p); err != nil {
			t.Errorf("CheckPrefix(%q) = %v, want nil", p, err)
		}
	}
	for _, p := range []string{"", "$iot", "$SYS/x", "a/+/b", "+", "a/#", "#", "/a", "a/", "/", "a//b", "a\x00b", "\x00"} {
		if err := CheckPrefix(p); err == nil {
			t.Errorf("CheckPrefix(%q) = nil, want an error", p)
		}
	}
}

func TestCheckName(t *testing.T) {
	for _, n := range []string{"manager-1", "device-1", "a", "3f2a9c1e-0b4d-4e8a-9f1c-2d3e4f5a6b7c", "dev.ice_1", "ü"} {
		if err := CheckName(n); err != nil {
			t.Errorf("CheckName(%q) = %v, want nil", n, err)
		}
	}
	for _, n := range []string{"", "a/b", "/", "+", "dev+1", "#", "dev#", "$", "$dev", "dev$", "a\x00", "\x00"} {
		if err := CheckName(n); err == nil {
			t.Errorf("CheckName(%q) = nil, want an error", n)
		}
	}
}

func TestTopicBuilders(t *testing.T) {
	tp := Topics{Prefix: DefaultPrefix, Manager: "manager-1", Device: "device-1"}
	for _, tc := range []struct{ got, want string }{
		{tp.Notify(), "myno/e2e/manager-1/device-1/notify"},
		{tp.Ready(), "myno/e2e/manager-1/device-1/ready"},
		{tp.Update(), "myno/e2e/manager-1/device-1/update"},
		{tp.Status(), "myno/e2e/manager-1/device-1/update/status"},
		{Topics{Prefix: "x/y/z", Manager: "m", Device: "d"}.Notify(), "x/y/z/m/d/notify"},
		{ManagerFilter(DefaultPrefix, "manager-1", LeafReady), "myno/e2e/manager-1/+/ready"},
		{ManagerFilter(DefaultPrefix, "manager-1", LeafStatus), "myno/e2e/manager-1/+/update/status"},
		{ManagerFilter("a", "m", LeafNotify), "a/m/+/notify"},
		{DeviceFilter(DefaultPrefix, "device-1", LeafNotify), "myno/e2e/+/device-1/notify"},
		{DeviceFilter(DefaultPrefix, "device-1", LeafUpdate), "myno/e2e/+/device-1/update"},
		{DeviceFilter("x/y/z", "d", LeafStatus), "x/y/z/+/d/update/status"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	if DefaultPrefix != "myno/e2e" || CheckPrefix(DefaultPrefix) != nil {
		t.Errorf("DefaultPrefix %q is not the valid \"myno/e2e\"", DefaultPrefix)
	}
}

// Every leaf of every channel parses back into the Topics and leaf it was
// built from, under one- and many-level prefixes.
func TestParseTopicRoundTrip(t *testing.T) {
	leaves := map[string]func(Topics) string{
		LeafNotify: Topics.Notify,
		LeafReady:  Topics.Ready,
		LeafUpdate: Topics.Update,
		LeafStatus: Topics.Status,
	}
	for _, prefix := range []string{DefaultPrefix, "a", "x/y/z"} {
		for _, names := range [][2]string{{"manager-1", "device-1"}, {"m", "d"}, {"3f2a9c1e-0b4d", "dev.1"}} {
			want := Topics{Prefix: prefix, Manager: names[0], Device: names[1]}
			for leaf, build := range leaves {
				topic := build(want)
				got, gotLeaf, ok := ParseTopic(prefix, topic)
				if !ok || got != want || gotLeaf != leaf {
					t.Errorf("ParseTopic(%q, %q) = %+v, %q, %v; want %+v, %q, true", prefix, topic, got, gotLeaf, ok, want, leaf)
				}
			}
		}
	}
}

func TestParseTopicRefusals(t *testing.T) {
	for _, tc := range []struct{ prefix, topic string }{
		{DefaultPrefix, "other/e2e/m/d/notify"},
		{DefaultPrefix, "myno/m/d/notify"},
		{DefaultPrefix, "myno/e2ex/m/d/notify"}, // the prefix is whole levels
		{DefaultPrefix, "xmyno/e2e/m/d/notify"},
		{"x/y/z", "x/y/m/d/notify"},
		{DefaultPrefix, "myno/e2e"},
		{DefaultPrefix, "myno/e2e/"},
		{DefaultPrefix, "myno/e2e/m"},
		{DefaultPrefix, "myno/e2e/m/d"},
		{DefaultPrefix, "myno/e2e/m/d/"},
		{DefaultPrefix, "myno/e2e/notify"},
		{DefaultPrefix, "myno/e2e/m/notify"},
		{DefaultPrefix, "myno/e2e//d/notify"},
		{DefaultPrefix, "myno/e2e/m//notify"},
		{DefaultPrefix, "myno/e2e///notify"},
		{DefaultPrefix, "myno/e2e/m/d/other"},
		{DefaultPrefix, "myno/e2e/m/d/Notify"},
		{DefaultPrefix, "myno/e2e/m/d/status"},
		{DefaultPrefix, "myno/e2e/m/d/update/other"},
		{DefaultPrefix, "myno/e2e/m/d/update/status/x"},
		{DefaultPrefix, "myno/e2e/m/d/notify/x"},
		{DefaultPrefix, "myno/e2e/m/d/ready/"},
		{DefaultPrefix, ""},
	} {
		if got, leaf, ok := ParseTopic(tc.prefix, tc.topic); ok || got != (Topics{}) || leaf != "" {
			t.Errorf("ParseTopic(%q, %q) = %+v, %q, %v; want a refusal", tc.prefix, tc.topic, got, leaf, ok)
		}
	}
}

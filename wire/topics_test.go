package wire_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/myno-bridge/myno/wire"
)

// Topics a device may and may not use: wildcards, '$', control
// characters, over-long templates and the reserved trees are refused.
func TestCheckDeviceTopic(t *testing.T) {
	for _, tc := range []struct {
		topic string
		ok    bool
	}{
		{"actuator/led/%s", true},
		{"yang/update/image/%s", true}, // the device's own firmware topic
		{"yang/updates", true},
		{"responses/x", true},
		{"mynox/a", true},
		{"", false},
		{"a/+/b", false},
		{"a/#", false},
		{"$SYS/x", false},
		{"a\x00b", false},
		{"a\nb", false},
		{strings.Repeat("a", wire.MaxTopicTemplate+1), false},
		{"yang/config", false},
		{"yang/config/create", false},
		{"response", false},
		{"response/%s", false},
		{"yang/update/status/%s", false},
		{"yang/update/server-cert", false},
		{"myno/cluster/c1/registry/x", false},
		{"myno/e2e/m/d/notify", false},
	} {
		err := wire.CheckDeviceTopic(tc.topic)
		if (err == nil) != tc.ok {
			t.Errorf("%q: %v, want ok=%v", tc.topic, err, tc.ok)
		}
		if err != nil && !errors.Is(err, wire.ErrTopic) {
			t.Errorf("%q: %v does not wrap ErrTopic", tc.topic, err)
		}
	}
}

// Every topic built here is parsed back by its counterpart, and foreign
// topics are not mistaken for it.
func TestTopicRoundTrips(t *testing.T) {
	if u, ok := wire.ResponseUUID(wire.ResponseTopic("dev-1")); !ok || u != "dev-1" {
		t.Errorf("ResponseUUID: %q %v", u, ok)
	}
	if _, ok := wire.ResponseUUID(wire.InstanceResponseTopic("a", "dev-1")); ok {
		t.Error("an instance's response topic taken for a device's")
	}
	if u, ok := wire.InstanceResponseUUID("a", wire.InstanceResponseTopic("a", "dev-1")); !ok || u != "dev-1" {
		t.Errorf("InstanceResponseUUID: %q %v", u, ok)
	}
	if _, ok := wire.InstanceResponseUUID("b", wire.InstanceResponseTopic("a", "dev-1")); ok {
		t.Error("instance a's answer taken by b")
	}
	if u, ok := wire.FirmwareStatusUUID(wire.FirmwareStatusTopic("dev-1")); !ok || u != "dev-1" {
		t.Errorf("FirmwareStatusUUID: %q %v", u, ok)
	}
	for _, tc := range []struct {
		topic, shared, uuid string
		ok                  bool
	}{
		{wire.DeviceBootstrapTopic(wire.TopicCreate, "dev-1"), wire.TopicCreate, "dev-1", true},
		{wire.DeviceBootstrapTopic(wire.TopicUpdate, "dev-1"), wire.TopicUpdate, "dev-1", true},
		{wire.DeviceBootstrapTopic(wire.TopicDelete, "dev-1"), wire.TopicDelete, "dev-1", true},
		{wire.DeviceBootstrapTopic(wire.TopicRetrieve, "dev-1"), wire.TopicRetrieve, "dev-1", true},
		{wire.TopicCreate, "", "", false},
		{wire.TopicLegacy + "/dev-1", "", "", false},                            // "yang/config/<uuid>" is no operation
		{wire.BootstrapResponseTopic(wire.TopicCreate, "dev-1"), "", "", false}, // an answer
		{wire.BootstrapResponseTopic(wire.TopicLegacy, "dev-1"), "", "", false}, // MYNO's create answer
		{wire.DeviceBootstrapTopic(wire.TopicCreate, "bad uuid"), "", "", false},
		{wire.DeviceBootstrapTopic(wire.TopicCreate, ""), "", "", false},
	} {
		shared, uuid, ok := wire.ParseDeviceBootstrapTopic(tc.topic)
		if ok != tc.ok || (ok && (shared != tc.shared || uuid != tc.uuid)) {
			t.Errorf("ParseDeviceBootstrapTopic(%q) = %q, %q, %v; want %q, %q, %v", tc.topic, shared, uuid, ok, tc.shared, tc.uuid, tc.ok)
		}
	}
	for _, filter := range wire.DeviceBootstrapFilters {
		if !strings.HasSuffix(filter, "/+") {
			t.Errorf("%s: not a per-device filter", filter)
		}
	}
	for _, topic := range wire.SharedBootstrapTopics {
		if !wire.IsBootstrapResponse(wire.BootstrapResponseTopic(topic, "dev-1"), "dev-1") {
			t.Errorf("%s: answer not recognised", topic)
		}
		if wire.IsBootstrapResponse(wire.BootstrapResponseTopic(topic, "dev-12"), "dev-1") {
			t.Errorf("%s: dev-12's answer taken for dev-1's", topic)
		}
	}
	if got := wire.FirmwareAckTopic("yang/update/image/dev-1"); got != "yang/update/image/dev-1/ack" {
		t.Errorf("FirmwareAckTopic: %q", got)
	}
	// MUP v1 (MUP-V1.md §2.3): the slice topic is the image data point and
	// /<uuid>, as every topic of MYNO's 2020 bridge; acks on /response.
	if got := wire.MUPv1AckTopic(wire.CommandTopic("yang/update/image", "U")); got != "yang/update/image/U/response" {
		t.Errorf("MUPv1AckTopic: %q", got)
	}
	if got := wire.CommandTopic("actuator/led/%s", "d"); got != "actuator/led/d" {
		t.Errorf("CommandTopic with %%s: %q", got)
	}
	if got := wire.CommandTopic("actuator/led", "d"); got != "actuator/led/d" {
		t.Errorf("CommandTopic without %%s: %q", got)
	}
}

// FuzzCheckDeviceTopic: whatever is accepted is a topic name a broker
// takes from a device and none of the reserved trees.
func FuzzCheckDeviceTopic(f *testing.F) {
	for _, s := range []string{"actuator/led/%s", "response/x", "$SYS", "a/#", "yang/config/create"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		if wire.CheckDeviceTopic(topic) != nil {
			return
		}
		if topic == "" || strings.ContainsAny(topic, "+#\x00") || strings.HasPrefix(topic, "$") {
			t.Fatalf("accepted %q", topic)
		}
		for _, p := range wire.ReservedPrefixes {
			if topic == p || strings.HasPrefix(topic, p+"/") {
				t.Fatalf("accepted reserved %q", topic)
			}
		}
	})
}

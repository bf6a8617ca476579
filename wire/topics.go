package wire

import (
	"errors"
	"fmt"
	"strings"
)

// Bootstrap topics (MUP paper, Fig. 3). A message on one of them is
// answered on "<topic>/response/<uuid>", or on an MQTT 5 request's
// ResponseTopic.
const (
	TopicCreate   = "yang/config/create"
	TopicLegacy   = "yang/config" // MYNO's older name for create
	TopicUpdate   = "yang/config/update"
	TopicDelete   = "yang/config/delete"
	TopicRetrieve = "yang/config/retrieve"
)

// SharedBootstrapTopics are MYNO's bootstrap topics, shared by every
// device: the uuid travels in the payload only, so a broker's ACL cannot
// tell one device's messages from another's. The bridge serves them where
// it knows the publisher (the embedded broker), or when told to.
var SharedBootstrapTopics = []string{TopicCreate, TopicLegacy, TopicUpdate, TopicDelete, TopicRetrieve}

// DeviceBootstrapTopic is the per-device twin of a shared bootstrap topic
// (TopicCreate, TopicUpdate, TopicDelete or TopicRetrieve):
// "yang/config/<op>/<uuid>". A broker ACL can give each device its own
// (Mosquitto: "pattern write yang/config/+/%u").
func DeviceBootstrapTopic(shared, uuid string) string { return shared + "/" + uuid }

// DeviceBootstrapFilters match every device's per-device bootstrap topics.
var DeviceBootstrapFilters = []string{TopicCreate + "/+", TopicUpdate + "/+", TopicDelete + "/+", TopicRetrieve + "/+"}

// ParseDeviceBootstrapTopic splits a per-device bootstrap topic into its
// shared topic and the device's uuid.
func ParseDeviceBootstrapTopic(topic string) (shared, uuid string, ok bool) {
	i := strings.LastIndexByte(topic, '/')
	if i < 0 {
		return "", "", false
	}
	shared, uuid = topic[:i], topic[i+1:]
	switch shared {
	case TopicCreate, TopicUpdate, TopicDelete, TopicRetrieve:
		return shared, uuid, ValidUUID(uuid)
	}
	return "", "", false
}

// DeviceClientID is the MQTT client identifier of the project's device
// with this uuid. An authenticated device may connect with it or with its
// bare uuid, and with no other, so that no client can take over another
// device's session [MQTT-3.1.4-3].
func DeviceClientID(uuid string) string { return "myno-device-" + uuid }

// bootstrapResponseLevel separates a bootstrap topic from the device in
// the topic of its answer.
const bootstrapResponseLevel = "/response/"

// BootstrapResponseTopic is where the bridge answers a bootstrap message.
func BootstrapResponseTopic(topic, uuid string) string { return topic + bootstrapResponseLevel + uuid }

// IsBootstrapResponse reports whether topic carries the bridge's answer to
// a bootstrap message of device uuid.
func IsBootstrapResponse(topic, uuid string) bool {
	return strings.HasPrefix(topic, TopicLegacy+"/") && strings.HasSuffix(topic, bootstrapResponseLevel+uuid)
}

// CommandTopic is the topic of an operation for one device: "%s" in the
// template becomes the UUID; without one, "/<uuid>" is appended.
func CommandTopic(template, uuid string) string {
	if strings.Contains(template, "%s") {
		return Expand(template, uuid)
	}
	return Expand(template, uuid) + "/" + uuid
}

// topicResponse is the first level of the topics devices answer commands on.
const topicResponse = "response"

// ResponseTopic is where a device answers commands.
func ResponseTopic(uuid string) string { return topicResponse + "/" + uuid }

// ResponseFilter matches every device's response topic.
const ResponseFilter = topicResponse + "/+"

// ResponseUUID is the device of a response topic "response/<uuid>".
func ResponseUUID(topic string) (string, bool) {
	uuid, ok := strings.CutPrefix(topic, topicResponse+"/")
	return uuid, ok && ValidUUID(uuid)
}

// IsResponseTopic reports whether topic is under "response/": a device's
// answer, or one for an instance of a cluster.
func IsResponseTopic(topic string) bool { return strings.HasPrefix(topic, topicResponse+"/") }

// InstanceResponseTopic is where an MQTT 5 device answers one instance of
// a cluster of bridges: "response/<instance>/<uuid>".
func InstanceResponseTopic(instance, uuid string) string {
	return topicResponse + "/" + instance + "/" + uuid
}

// InstanceResponseUUID is the device of an answer on instance's response
// topic.
func InstanceResponseUUID(instance, topic string) (string, bool) {
	uuid, ok := strings.CutPrefix(topic, topicResponse+"/"+instance+"/")
	return uuid, ok && ValidUUID(uuid)
}

// FirmwareAckTopic is where a device acknowledges the firmware slices it
// receives on imageTopic (MUP paper, Fig. 2; the image topic is the input
// data point of the device's sendFirmwareImage operation).
func FirmwareAckTopic(imageTopic string) string { return imageTopic + "/ack" }

// MUPv1AckTopic is where a MUP v1 device acknowledges the slices it takes
// on sliceTopic (MUP-V1.md §2.3: MYNO's Update Server subscribes
// "<slice topic>/response"). The slice topic is the input data point of
// funcPubUpdateImage for the device, as CommandTopic makes it.
func MUPv1AckTopic(sliceTopic string) string { return sliceTopic + "/response" }

// TopicFirmwareStatus is where a MUP device reports the firmware version it
// runs, after its bootstrap and after each "reboot" into a new image:
// "yang/update/status/<uuid>", payload "VERSION;<n>".
const TopicFirmwareStatus = "yang/update/status"

// FirmwareStatusTopic is the status topic of one device.
func FirmwareStatusTopic(uuid string) string { return TopicFirmwareStatus + "/" + uuid }

// FirmwareStatusFilter matches every device's status topic.
const FirmwareStatusFilter = TopicFirmwareStatus + "/+"

// FirmwareStatusUUID is the device of a status topic.
func FirmwareStatusUUID(topic string) (string, bool) {
	uuid, ok := strings.CutPrefix(topic, TopicFirmwareStatus+"/")
	return uuid, ok && ValidUUID(uuid)
}

// TopicPresence is the tree of the devices' presence (the project's own;
// MYNO's devices do not publish it): "myno/presence/<uuid>", retained,
// "online;<session>" when the device connects and "offline;<session>"
// when it leaves, cleanly or through its Will (EncodePresence). On an
// external broker the bridge cannot see connections; this is how it
// knows a device with a Will is gone.
const TopicPresence = TopicProject + "/presence"

// PresenceTopic is the presence topic of one device.
func PresenceTopic(uuid string) string { return TopicPresence + "/" + uuid }

// PresenceFilter matches every device's presence topic.
const PresenceFilter = TopicPresence + "/+"

// PresenceUUID is the device of a presence topic.
func PresenceUUID(topic string) (string, bool) {
	uuid, ok := strings.CutPrefix(topic, TopicPresence+"/")
	return uuid, ok && ValidUUID(uuid)
}

// TopicUpdateServerCert holds, retained, the Update Server certificate
// (PEM) that the bridge publishes; MUP devices check it against their
// vendor CA before they trust the key in it.
const TopicUpdateServerCert = "yang/update/server-cert"

// TopicProject is the first level of the project's own topics: presence
// and, by default, the E2E channel live under it.
const TopicProject = "myno"

// DefaultE2EPrefix is the default root of the E2E channel's topic tree
// (package mup/e2e, which builds the topics below it).
const DefaultE2EPrefix = TopicProject + "/e2e"

// ReservedPrefixes are the topic trees a device description may not name
// for its commands, readings or data points: the bridge's and the
// Update Server's own topics, and the project's (DESIGN.md, wire protocol).
// A topic is in a tree when it equals the prefix or continues it with '/'.
var ReservedPrefixes = []string{TopicLegacy, topicResponse, TopicFirmwareStatus, TopicUpdateServerCert, TopicProject}

// MaxTopicTemplate leaves room in the 65535-byte limit of a topic name
// [MQTT-1.5.3] for the UUIDs the placeholders become.
const MaxTopicTemplate = 4096

// ErrTopic is wrapped by CheckDeviceTopic's errors.
var ErrTopic = errors.New("wire: topic not usable by a device")

// CheckDeviceTopic rejects a topic template that a device cannot or must
// not use: wildcards are for filters only [MQTT-3.3.2-2], NUL and control
// characters are never allowed in a UTF-8 string [MQTT-1.5.4-2], topics
// starting with '$' belong to the broker [MQTT-4.7.2-1], and the reserved
// trees are off limits.
func CheckDeviceTopic(topic string) error {
	if topic == "" || strings.ContainsAny(topic, "+#\x00") || !Printable(topic) || strings.HasPrefix(topic, "$") || len(topic) > MaxTopicTemplate {
		return fmt.Errorf("%w: %q is not a valid MQTT topic name for a device", ErrTopic, short(topic))
	}
	for _, p := range ReservedPrefixes {
		if topic == p || strings.HasPrefix(topic, p+"/") {
			return fmt.Errorf("%w: %q is reserved (%s/...)", ErrTopic, short(topic), p)
		}
	}
	return nil
}

// Printable reports whether s has no control characters and no Unicode
// non-characters: what an MQTT string may hold [MQTT-1.5.4-2] and what
// YANG text may (RFC 7950 §14, yang-char), so descriptions are held to it
// too.
func Printable(s string) bool {
	for _, r := range s {
		switch {
		case r < 0x20, r >= 0x7f && r <= 0x9f:
			return false
		case r >= 0xfdd0 && r <= 0xfdef, r&0xfffe == 0xfffe:
			return false
		case r >= 0xd800 && r <= 0xdfff:
			return false
		}
	}
	return true
}

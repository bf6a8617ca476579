package access

import (
	"slices"

	"github.com/myno-bridge/myno/wire"
)

// Identity is who an MQTT client is: a device (its name is its uuid) or a
// role. An Identity without a name is an anonymous client
// (--mqtt-allow-anonymous), known only by its client identifier (Client;
// "" where the broker does not say): the devices it may speak for are the
// ones bound to that identifier (Bindings).
type Identity struct {
	Name   string
	Role   Role
	Client string // an anonymous client's client identifier
}

// Anonymous reports whether the client presented no identity.
func (id Identity) Anonymous() bool { return id.Name == "" }

// String is "role:name", or "anonymous" with the client identifier.
func (id Identity) String() string {
	if id.Anonymous() {
		if id.Client != "" {
			return "anonymous(" + id.Client + ")"
		}
		return "anonymous"
	}
	return string(id.Role) + ":" + id.Name
}

// DeviceTopics are the topics a registered device's description names,
// bound to its uuid.
type DeviceTopics struct {
	Commands []string     // where the bridge sends its commands
	Images   []ImageTopic // where the Update Server sends its firmware slices (MUP)
	Readings []string     // its sensor and event topics
}

// ImageTopic is where a device takes firmware slices, and where it
// acknowledges them: wire.FirmwareAckTopic for this project's MUP,
// wire.MUPv1AckTopic for MUP v1.
type ImageTopic struct {
	Topic string
	Ack   string
}

// Devices is what the policy needs from the bridge's registry.
type Devices interface {
	// DeviceTopics returns a registered device's topics.
	DeviceTopics(uuid string) (DeviceTopics, bool)
	// ImageTopics returns every registered device's firmware image topics.
	ImageTopics() []ImageTopic
}

// Policy gives each identity its rules: exactly the topics its role or
// its description needs (issue 11). Reserved topics (the bootstrap
// answers, yang/update/server-cert, the cluster tree, the E2E tree) are
// written only by their role.
type Policy struct {
	Devices Devices // nil: no device is registered
	// E2EPrefix roots the E2E channel; default wire.DefaultE2EPrefix.
	E2EPrefix string
	// LegacyBootstrap lets devices publish on MYNO's shared bootstrap
	// topics. The uuid is then in the payload only: the bridge must check
	// it against the publisher (the embedded broker tells it who that is).
	LegacyBootstrap bool
}

func (p Policy) e2ePrefix() string {
	if p.E2EPrefix == "" {
		return wire.DefaultE2EPrefix
	}
	return p.E2EPrefix
}

// Rules returns id's rules, each filter once. An anonymous identity gets
// none: allowing anonymous clients everything is the caller's decision
// (Controller).
func (p Policy) Rules(id Identity) Rules {
	r := p.rules(id)
	return Rules{Publish: unique(r.Publish), Subscribe: unique(r.Subscribe)}
}

// unique sorts filters and drops repeats (two functions of a description
// may share a topic).
func unique(filters []string) []string {
	slices.Sort(filters)
	return slices.Compact(filters)
}

func (p Policy) rules(id Identity) Rules {
	switch id.Role {
	case RoleBridge:
		return Rules{Publish: []string{"#"}, Subscribe: []string{"#"}}
	case RoleUpdateServer:
		r, u := p.managerRules(id.Name), p.UpdateServerRules()
		return Rules{Publish: append(r.Publish, u.Publish...), Subscribe: append(r.Subscribe, u.Subscribe...)}
	case RoleE2EManager:
		return p.managerRules(id.Name)
	case RoleDevice:
		return p.deviceRules(id.Name)
	}
	return Rules{}
}

// UpdateServerRules are what every Update Server may do besides its E2E
// channels: send slices on the registered firmware topics, read their
// acks and the devices' firmware status.
func (p Policy) UpdateServerRules() Rules {
	var r Rules
	if p.Devices != nil {
		for _, img := range p.Devices.ImageTopics() {
			r.Publish = append(r.Publish, img.Topic)
			r.Subscribe = append(r.Subscribe, img.Ack)
		}
	}
	r.Subscribe = append(r.Subscribe, wire.FirmwareStatusFilter)
	return r
}

// managerRules are those of an E2E manager named name (MUP E2E, paper
// Fig. 5 to 7): it writes notify and update, reads ready and status, for
// any device, under its own name only.
func (p Policy) managerRules(name string) Rules {
	prefix := p.e2ePrefix() + "/" + name + "/+/"
	return Rules{
		Publish:   []string{prefix + "notify", prefix + "update"},
		Subscribe: []string{prefix + "ready", prefix + "update/status"},
	}
}

// AnonymousRules are those of an anonymous client (--mqtt-allow-anonymous,
// issue 13) that holds the devices bound to it (Bindings): each device's
// rules, and, to register new devices, the bootstrap topics (the bridge
// refuses a uuid bound to another client) and every bootstrap answer
// (OK or ERROR; MYNO's simulators subscribe to yang/config/#).
func (p Policy) AnonymousRules(devices []string) Rules {
	var r Rules
	for _, uuid := range devices {
		d := p.deviceRules(uuid)
		r.Publish = append(r.Publish, d.Publish...)
		r.Subscribe = append(r.Subscribe, d.Subscribe...)
	}
	r.Publish = append(r.Publish, wire.SharedBootstrapTopics...)
	for _, shared := range []string{wire.TopicCreate, wire.TopicUpdate, wire.TopicDelete, wire.TopicRetrieve} {
		r.Publish = append(r.Publish, wire.DeviceBootstrapTopic(shared, "+"))
		r.Subscribe = append(r.Subscribe, wire.BootstrapResponseTopic(shared, "+"))
	}
	r.Subscribe = append(r.Subscribe, wire.BootstrapResponseTopic(wire.TopicLegacy, "+"), wire.TopicUpdateServerCert)
	return Rules{Publish: unique(r.Publish), Subscribe: unique(r.Subscribe)}
}

// deviceRules are those of device uuid. Before it is registered it may
// only bootstrap, read its bootstrap answers, the Update Server
// certificate and its E2E channel; once registered, also what its
// description names.
func (p Policy) deviceRules(uuid string) Rules {
	var r Rules
	for _, shared := range []string{wire.TopicCreate, wire.TopicUpdate, wire.TopicDelete, wire.TopicRetrieve} {
		r.Publish = append(r.Publish, wire.DeviceBootstrapTopic(shared, uuid))
		r.Subscribe = append(r.Subscribe, wire.BootstrapResponseTopic(shared, uuid))
	}
	r.Subscribe = append(r.Subscribe, wire.BootstrapResponseTopic(wire.TopicLegacy, uuid))
	if p.LegacyBootstrap {
		r.Publish = append(r.Publish, wire.SharedBootstrapTopics...)
	}
	r.Publish = append(r.Publish,
		wire.ResponseTopic(uuid),
		wire.InstanceResponseTopic("+", uuid), // to one bridge of a cluster
		wire.FirmwareStatusTopic(uuid),
		wire.PresenceTopic(uuid)) // its presence, and its Will there
	e2e := p.e2ePrefix() + "/+/" + uuid + "/"
	r.Publish = append(r.Publish, e2e+"ready", e2e+"update/status")
	r.Subscribe = append(r.Subscribe, wire.TopicUpdateServerCert, e2e+"notify", e2e+"update")
	if p.Devices == nil {
		return r
	}
	if t, ok := p.Devices.DeviceTopics(uuid); ok {
		r.Publish = append(r.Publish, t.Readings...)
		r.Subscribe = append(r.Subscribe, t.Commands...)
		for _, img := range t.Images {
			r.Subscribe = append(r.Subscribe, img.Topic)
			r.Publish = append(r.Publish, img.Ack)
		}
	}
	return r
}

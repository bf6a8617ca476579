package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/myno-bridge/myno/mqtt/access"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/ontology"
	"github.com/myno-bridge/myno/wire"
)

// onMessage dispatches everything the bridge receives. It runs on the MQTT
// client's goroutine: whatever may block goes to a task of its own.
func (b *Bridge) onMessage(m client.Message) {
	b.metrics.received(m)
	if b.dynsec != nil && m.Topic == access.DynsecResponseTopic {
		b.dynsec.onResponse(m)
		return
	}
	if shared, uuid, ok := wire.ParseDeviceBootstrapTopic(m.Topic); ok {
		b.onBootstrap(m, shared, uuid)
		return
	}
	switch {
	case m.Topic == wire.TopicCreate || m.Topic == wire.TopicLegacy || m.Topic == wire.TopicUpdate:
		b.onChunk(m, m.Topic, "")
	case m.Topic == wire.TopicDelete || m.Topic == wire.TopicRetrieve:
		b.run.goDo(func() { b.onLookup(m, m.Topic, "") })
	case wire.IsResponseTopic(m.Topic):
		b.onAnswer(m)
	case strings.HasPrefix(m.Topic, wire.TopicFirmwareStatus+"/"):
		b.onFirmwareStatus(m)
	case strings.HasPrefix(m.Topic, wire.TopicPresence+"/"):
		b.onPresence(m)
	case b.owner.handle(b.ctx, m):
	default:
		b.onReading(m)
	}
}

// onBootstrap takes a message on a device's own bootstrap topic
// "yang/config/<op>/<uuid>": only that device may publish there (the
// broker's ACL), and the uuid in the payload must be the topic's.
func (b *Bridge) onBootstrap(m client.Message, shared, uuid string) {
	switch shared {
	case wire.TopicCreate, wire.TopicUpdate:
		b.onChunk(m, shared, uuid)
	default:
		b.run.goDo(func() { b.onLookup(m, shared, uuid) })
	}
}

// onChunk adds a bootstrap chunk; END registers the description. topic is
// the shared topic the message is for; topicUUID the device of a
// per-device topic, "" on a shared one.
func (b *Bridge) onChunk(m client.Message, topic, topicUUID string) {
	if topic == wire.TopicLegacy { // MYNO's older topic means create
		topic = wire.TopicCreate
	}
	c, err := wire.DecodeChunk(m.Payload)
	if err != nil {
		b.log.Warn("bad bootstrap message", "topic", m.Topic, "err", err)
		return
	}
	if topicUUID != "" && c.UUID != topicUUID {
		b.log.Warn("bootstrap message dropped: its uuid is not its topic's", "topic", m.Topic, "uuid", c.UUID)
		b.calls.mismatched.Add(1)
		return
	}
	// On a shared topic, only the device itself may send its chunks (a
	// third party's "<victim>;END" used to end a victim's bootstrap).
	if err := b.mayRegister(m, c.UUID); err != nil {
		if errors.Is(err, errNotTheDevice) {
			b.untrusted(m, c.UUID, "bootstrap message")
			return
		}
		b.calls.mismatched.Add(1)
		if c.End {
			b.log.Warn("bootstrap refused", "uuid", c.UUID, "reason", err)
			b.run.goDo(func() { b.answerBootstrap(topic, c.UUID, m, string(wire.ErrorAnswer(err.Error()))) })
		}
		return
	}
	desc, done, err := b.assembly.add(c, sourceOf(m, c.UUID), time.Now())
	if err == nil && !done {
		return
	}
	if !b.owner.answers(c.UUID) {
		return // another instance of the cluster owns this device
	}
	if err != nil {
		if !errors.Is(err, errNoDescription) {
			b.log.Warn("bootstrap refused", "uuid", c.UUID, "reason", err)
		}
		b.run.goDo(func() { b.answerBootstrap(topic, c.UUID, m, string(wire.ErrorAnswer(err.Error()))) })
		return
	}
	b.run.goDo(func() {
		at := time.Now()
		if err := b.bindAnonymous(m, c.UUID); err != nil {
			b.log.Error("description refused", "uuid", c.UUID, "err", err)
			b.answerBootstrap(topic, c.UUID, m, string(wire.ErrorAnswer(err.Error())))
			return
		}
		// A cluster without a quorum serves the devices it knows: a known
		// description is answered OK, a new one refused.
		known := b.registry.describes(c.UUID, desc)
		if why := b.owner.readOnly(); why != "" && !known {
			b.log.Warn("description refused", "uuid", c.UUID, "reason", why)
			b.answerBootstrap(topic, c.UUID, m, string(wire.ErrorAnswer(why)))
			return
		}
		// The connection that registered the device holds it (presence.go).
		if err := b.register(withSenderConn(b.ctx, m.SenderConn), c.UUID, desc, at, fromDevice); err != nil {
			b.log.Warn("description refused", "uuid", c.UUID, "err", err)
			b.answerBootstrap(topic, c.UUID, m, string(wire.ErrorAnswer(reasonOf(err))))
			return
		}
		if err := b.owner.replicate(b.ctx, c.UUID, desc, at); err != nil && !known {
			// Not half-applied: the other instances do not know it.
			b.unregister(b.ctx, c.UUID)
			b.log.Warn("description refused", "uuid", c.UUID, "err", err)
			b.answerBootstrap(topic, c.UUID, m, string(wire.ErrorAnswer(reasonOf(err))))
			return
		} else if err != nil {
			b.log.Warn("registration of a known device not replicated", "uuid", c.UUID, "err", err)
		}
		b.answerBootstrap(topic, c.UUID, m, wire.AnswerOK)
	})
}

// reasonOf keeps an error short and on one line for ERROR;<reason>.
func reasonOf(err error) string {
	var oe *ontology.Error
	msg := err.Error()
	if errors.As(err, &oe) {
		msg = oe.Error()
	}
	if len(msg) > 300 {
		msg = msg[:300] + "..."
	}
	return msg
}

// answerBootstrap answers on the MQTT 5 ResponseTopic with the request's
// CorrelationData when it is one of the device's bootstrap answer topics,
// else on <topic>/response/<uuid>.
func (b *Bridge) answerBootstrap(topic, uuid string, req client.Message, answer string) {
	if answer == wire.AnswerOK {
		b.metrics.bootstraps.WithLabelValues("registered").Inc()
	} else {
		b.metrics.bootstraps.WithLabelValues("refused").Inc()
	}
	out := client.Message{Topic: wire.BootstrapResponseTopic(topic, uuid), Payload: []byte(answer)}
	// The bridge may publish anywhere: a ResponseTopic other than one of
	// the device's own bootstrap answer topics would let a device have the
	// bridge write where the broker forbids it to (another device's
	// command topic, say). It gets the default topic instead.
	if req.ResponseTopic != "" && wire.IsBootstrapResponse(req.ResponseTopic, uuid) {
		out.Topic, out.CorrelationData = req.ResponseTopic, req.CorrelationData
	}
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	if err := b.mq.Publish(ctx, out, 1); err != nil {
		b.log.Warn("bootstrap answer not sent", "uuid", uuid, "err", err)
	}
}

// onLookup answers yang/config/delete and retrieve (payload: the UUID);
// topic is the shared topic, topicUUID the device of a per-device topic.
func (b *Bridge) onLookup(m client.Message, topic, topicUUID string) {
	if b.cfg.beforeLookup != nil {
		b.cfg.beforeLookup()
	}
	uuid := strings.TrimSpace(string(m.Payload))
	if !wire.ValidUUID(uuid) {
		b.log.Warn("bad uuid on "+m.Topic, "payload", fmt.Sprintf("%.64q", m.Payload))
		return
	}
	if topicUUID != "" && uuid != topicUUID {
		b.log.Warn("bootstrap message dropped: its uuid is not its topic's", "topic", m.Topic, "uuid", uuid)
		b.calls.mismatched.Add(1)
		return
	}
	// Only a device may delete itself, or ask about itself.
	if !b.trusted(m, uuid) {
		b.untrusted(m, uuid, topic+" request")
		return
	}
	if !b.owner.answers(uuid) {
		return // another instance of the cluster owns this device
	}
	answer := wire.AnswerNotFound
	switch topic {
	case wire.TopicDelete:
		if _, ok := b.registry.moduleOf(uuid); !ok {
			break
		}
		// The cluster's store first: a delete it did not take is refused,
		// and the device stays registered on every instance.
		if err := b.owner.replicate(b.ctx, uuid, nil, time.Time{}); err != nil {
			b.log.Warn("delete refused", "uuid", uuid, "err", err)
			answer = string(wire.ErrorAnswer(reasonOf(err)))
			break
		}
		// In a cluster, following the store may have removed it already.
		b.unregister(b.ctx, uuid)
		b.unbindAnonymous(uuid)
		answer = wire.AnswerOK
	case wire.TopicRetrieve:
		if _, ok := b.registry.moduleOf(uuid); ok {
			answer = wire.AnswerOK
		}
	}
	b.answerBootstrap(topic, uuid, m, answer)
}

// expireAssemblies drops descriptions whose chunks stopped arriving.
func (b *Bridge) expireAssemblies(ctx context.Context) {
	every(ctx, b.cfg.AssemblyTimeout/4, func(now time.Time) {
		b.assembly.expire(now, func(uuid string, chunks int, age time.Duration) {
			b.log.Warn("incomplete description dropped", "uuid", uuid, "chunks", chunks, "age", age.Round(time.Second))
		})
	})
}

// onFirmwareStatus records the firmware version a device reports; <get>
// shows it as firmware-version and the registry keeps it.
func (b *Bridge) onFirmwareStatus(m client.Message) {
	b.metrics.firmware.Inc()
	uuid, _ := wire.FirmwareStatusUUID(m.Topic)
	if !b.trusted(m, uuid) {
		b.untrusted(m, uuid, "firmware status")
		return
	}
	version, err := wire.DecodeFirmwareStatus(m.Payload)
	if err != nil {
		b.log.Warn("bad firmware status", "uuid", uuid, "err", err)
		return
	}
	previous, changed, known := b.registry.setFirmware(uuid, version)
	if !known {
		b.log.Warn("firmware status of an unregistered device", "uuid", uuid)
		return
	}
	b.heard(uuid, m)
	if changed {
		b.log.Info("firmware version", "uuid", uuid, "version", version)
		if err := b.registry.save(); err != nil {
			b.log.Error("registry not saved", "err", err)
		}
		if previous != "" { // the first report tells a version, it changes none
			b.firmwareEvent(uuid, previous, version)
		}
	}
}

package bridge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/ontology"
	"github.com/myno-bridge/myno/wire"
)

// assembly collects one device's description chunks.
type assembly struct {
	chunks  [][]byte
	size    int
	started time.Time
}

// onMessage dispatches everything the bridge receives.
func (b *Bridge) onMessage(m client.Message) {
	switch {
	case m.Topic == wire.TopicCreate || m.Topic == wire.TopicLegacy || m.Topic == wire.TopicUpdate:
		b.onChunk(m)
	case m.Topic == wire.TopicDelete || m.Topic == wire.TopicRetrieve:
		go b.onLookup(m)
	case wire.IsResponseTopic(m.Topic):
		b.onAnswer(m)
	case strings.HasPrefix(m.Topic, wire.TopicFirmwareStatus+"/"):
		b.onFirmwareStatus(m)
	case b.cluster != nil && strings.HasPrefix(m.Topic, clusterPrefix):
		b.onClusterMessage(m)
	default:
		b.onReading(m)
	}
}

// onChunk adds a bootstrap chunk; END registers the description.
func (b *Bridge) onChunk(m client.Message) {
	topic := m.Topic
	if topic == wire.TopicLegacy { // MYNO's older topic means create
		topic = wire.TopicCreate
	}
	c, err := wire.DecodeChunk(m.Payload)
	if err != nil {
		b.log.Warn("bad bootstrap message", "topic", m.Topic, "err", err)
		return
	}
	b.mu.Lock()
	a := b.assembling[c.UUID]
	if !c.End {
		if a == nil {
			a = &assembly{started: time.Now()}
			b.assembling[c.UUID] = a
		}
		a.chunks = append(a.chunks, append([]byte(nil), c.Data...))
		a.size += len(c.Data)
		var reason string
		switch {
		case a.size > b.cfg.MaxDescriptionBytes:
			reason = fmt.Sprintf("description larger than %d bytes", b.cfg.MaxDescriptionBytes)
		case len(a.chunks) > b.cfg.MaxChunks:
			reason = fmt.Sprintf("more than %d chunks", b.cfg.MaxChunks)
		}
		if reason != "" {
			delete(b.assembling, c.UUID)
			b.mu.Unlock()
			if b.answers(c.UUID) {
				b.log.Warn("bootstrap refused", "uuid", c.UUID, "reason", reason)
				go b.answerBootstrap(topic, c.UUID, m, string(wire.ErrorAnswer(reason)))
			}
			return
		}
		b.mu.Unlock()
		return
	}
	delete(b.assembling, c.UUID)
	b.mu.Unlock()
	if !b.answers(c.UUID) {
		return // another instance of the cluster owns this device
	}
	if a == nil {
		// A description may also arrive whole before END; a lone END with
		// nothing before it is an error.
		go b.answerBootstrap(topic, c.UUID, m, string(wire.ErrorAnswer("END without a description")))
		return
	}
	desc := bytes.Join(a.chunks, nil)
	go func() {
		at := time.Now()
		err := b.register(b.ctx, c.UUID, desc, at, true)
		if err != nil {
			b.log.Warn("description refused", "uuid", c.UUID, "err", err)
			b.answerBootstrap(topic, c.UUID, m, string(wire.ErrorAnswer(reasonOf(err))))
			return
		}
		b.replicate(b.ctx, c.UUID, desc, at)
		b.answerBootstrap(topic, c.UUID, m, wire.AnswerOK)
	}()
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
// CorrelationData, else on <topic>/response/<uuid>.
func (b *Bridge) answerBootstrap(topic, uuid string, req client.Message, answer string) {
	out := client.Message{Topic: wire.BootstrapResponseTopic(topic, uuid), Payload: []byte(answer)}
	if req.ResponseTopic != "" {
		out.Topic, out.CorrelationData = req.ResponseTopic, req.CorrelationData
	}
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	if err := b.mq.Publish(ctx, out, 1); err != nil {
		b.log.Warn("bootstrap answer not sent", "uuid", uuid, "err", err)
	}
}

// onLookup answers yang/config/delete and retrieve (payload: the UUID).
func (b *Bridge) onLookup(m client.Message) {
	uuid := strings.TrimSpace(string(m.Payload))
	if !wire.ValidUUID(uuid) {
		b.log.Warn("bad uuid on "+m.Topic, "payload", fmt.Sprintf("%.64q", m.Payload))
		return
	}
	if !b.answers(uuid) {
		return // another instance of the cluster owns this device
	}
	answer := wire.AnswerNotFound
	switch m.Topic {
	case wire.TopicDelete:
		if b.unregister(b.ctx, uuid) {
			b.replicate(b.ctx, uuid, nil, time.Time{})
			answer = wire.AnswerOK
		}
	case wire.TopicRetrieve:
		if _, ok := b.ModuleOf(uuid); ok {
			answer = wire.AnswerOK
		}
	}
	b.answerBootstrap(m.Topic, uuid, m, answer)
}

// janitor drops descriptions whose chunks stopped arriving.
func (b *Bridge) janitor() {
	t := time.NewTicker(b.cfg.AssemblyTimeout / 4)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case now := <-t.C:
			b.mu.Lock()
			for uuid, a := range b.assembling {
				if now.Sub(a.started) > b.cfg.AssemblyTimeout {
					delete(b.assembling, uuid)
					b.log.Warn("incomplete description dropped", "uuid", uuid, "chunks", len(a.chunks), "age", now.Sub(a.started).Round(time.Second))
				}
			}
			b.mu.Unlock()
		}
	}
}

// onFirmwareStatus records the firmware version a device reports; <get>
// shows it as firmware-version and the registry keeps it.
func (b *Bridge) onFirmwareStatus(m client.Message) {
	uuid := strings.TrimPrefix(m.Topic, wire.TopicFirmwareStatus+"/")
	version, err := wire.DecodeFirmwareStatus(m.Payload)
	if err != nil {
		b.log.Warn("bad firmware status", "uuid", uuid, "err", err)
		return
	}
	b.mu.Lock()
	d := b.devices[uuid]
	changed := d != nil && d.firmware != version
	if changed {
		d.firmware = version
	}
	b.mu.Unlock()
	if d == nil {
		b.log.Warn("firmware status of an unregistered device", "uuid", uuid)
		return
	}
	if changed {
		b.log.Info("firmware version", "uuid", uuid, "version", version)
		if err := b.save(); err != nil {
			b.log.Error("registry not saved", "err", err)
		}
	}
}

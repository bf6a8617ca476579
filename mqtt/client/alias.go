package client

import (
	"sync"

	"github.com/eclipse/paho.golang/paho"
)

// outAliases gives our publishes topic aliases (MQTT 5 §3.3.2.3.4): the
// first publish on a topic carries the topic and its alias, later ones the
// alias alone. It is reset before every connection attempt, because
// aliases do not survive a connection [MQTT-3.3.2-7], and stays off until
// the CONNACK says how many the broker accepts [MQTT-3.3.2-8].
// (paho's topicaliases extension is not used: it indexes past its table
// once every alias is taken.)
type outAliases struct {
	mu      sync.Mutex
	max     uint16
	byTopic map[string]uint16
}

func (a *outAliases) reset(max uint16) {
	a.mu.Lock()
	a.max, a.byTopic = max, map[string]uint16{}
	a.mu.Unlock()
}

// hook is paho's PublishHook: it runs just before the publish is sent.
func (a *outAliases) hook(p *paho.Publish) {
	if p.Properties != nil && p.Properties.TopicAlias != nil {
		return // the caller chose an alias
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.max == 0 {
		return
	}
	if p.Properties == nil {
		p.Properties = &paho.PublishProperties{}
	}
	if alias, ok := a.byTopic[p.Topic]; ok {
		p.Properties.TopicAlias = paho.Uint16(alias)
		p.Topic = "" // [MQTT-3.3.2-12]: a zero-length topic uses the alias
		return
	}
	if len(a.byTopic) < int(a.max) {
		alias := uint16(len(a.byTopic) + 1)
		a.byTopic[p.Topic] = alias
		p.Properties.TopicAlias = paho.Uint16(alias)
	}
}

// inAliases resolves the aliases the broker uses towards us, up to the
// Topic Alias Maximum we sent in CONNECT (MQTT 5 §3.1.2.11.5).
type inAliases struct {
	mu      sync.Mutex
	byAlias map[uint16]string
}

func (a *inAliases) reset() {
	a.mu.Lock()
	a.byAlias = map[uint16]string{}
	a.mu.Unlock()
}

// resolve returns the topic of a received publish; "" when it names an
// alias that was never set, a protocol error of the broker (MQTT 5 §3.3.2.3.4).
func (a *inAliases) resolve(p *paho.Publish) string {
	if p.Properties == nil || p.Properties.TopicAlias == nil {
		return p.Topic
	}
	alias := *p.Properties.TopicAlias
	a.mu.Lock()
	defer a.mu.Unlock()
	if p.Topic != "" {
		a.byAlias[alias] = p.Topic
		return p.Topic
	}
	return a.byAlias[alias]
}

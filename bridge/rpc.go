package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/netconf"
	"github.com/myno-bridge/myno/ontology"
	"github.com/myno-bridge/myno/wire"
	"github.com/myno-bridge/myno/yang"
)

// replier renders a device's answer as an rpc's output (b.reply, or
// b.mynoReply for --profile myno).
type replier func(mod *yang.Module, c *yang.Call, r wire.Response) ([]*netconf.Element, error)

// rpcHandler translates the rpcs of one module: validate, publish, wait,
// reply (DESIGN.md, RPC).
func (b *Bridge) rpcHandler(mod *yang.Module, reply replier) netconf.Handler {
	return netconf.HandlerFunc(func(ctx context.Context, req *netconf.Request) (out []*netconf.Element, err error) {
		start := time.Now()
		defer func() { b.metrics.rpcDone(mod.Name, req.Operation.Name.Local, err, time.Since(start)) }()
		// The input is checked against the module first: a bad value never
		// reaches MQTT.
		c, err := mod.ParseInput([]byte(req.Operation.String()))
		if err != nil {
			var ie *yang.InputError
			if errors.As(err, &ie) {
				re := &netconf.RPCError{Type: netconf.ErrTypeApplication, Tag: ie.Tag, AppTag: ie.AppTag, Message: ie.Message}
				re.Path, re.PathPrefixes = qualifiedPath(ie.Path, mod.Prefix, mod.Namespace)
				if ie.Tag == yang.TagMalformedMessage {
					re.Type = netconf.ErrTypeRPC
				}
				switch {
				case ie.InfoName == yang.AppTagMissingChoice: // in the YANG namespace (RFC 7950 §15.6)
					re.Info = append(re.Info, netconf.NewLeaf(yang.NamespaceYANG, ie.InfoName, ie.Element))
				case ie.Element != "":
					re.WithInfo("bad-element", ie.Element)
				}
				return nil, re
			}
			return nil, err
		}
		tmplTopic, lookup := b.registry.commandTopic(c.UUID, mod, c.RPC.Function)
		switch lookup {
		case lookupUnknownDevice:
			return nil, (&netconf.RPCError{Type: netconf.ErrTypeApplication, Tag: netconf.TagInvalidValue,
				Message: fmt.Sprintf("unknown device %q", c.UUID)}).WithInfo("bad-element", selectorName(c))
		case lookupNotImplemented:
			return nil, (&netconf.RPCError{Type: netconf.ErrTypeApplication, Tag: netconf.TagInvalidValue,
				Message: fmt.Sprintf("device %q does not implement %s:%s", c.UUID, mod.Name, c.RPC.Name)}).WithInfo("bad-element", selectorName(c))
		}
		return b.invoke(ctx, mod, c, wire.CommandTopic(tmplTopic, c.UUID), reply)
	})
}

func selectorName(c *yang.Call) string {
	for _, in := range c.RPC.Inputs {
		if in.Selector() {
			return in.Name
		}
	}
	return ""
}

// invoke publishes the command and waits for the answer.
func (b *Bridge) invoke(ctx context.Context, mod *yang.Module, c *yang.Call, topic string, reply replier) ([]*netconf.Element, error) {
	cl := b.calls.add(c.UUID, b.owner.reqID(b.reqSeq.Add(1)))
	defer b.calls.remove(cl)
	req := wire.Request{ReqID: cl.reqID, Method: c.RPC.Function.Method, Args: c.Args}
	msg := client.Message{Topic: topic, Payload: req.Encode(), ResponseTopic: b.owner.responseTopic(c.UUID), CorrelationData: []byte(cl.correlation)}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.RPCTimeout)
	defer cancel()
	// On the embedded broker, a command goes out once the device listens:
	// a device that has just reconnected is online before its command
	// subscription is back (after a restart with 10,000 devices, up to
	// seconds), and a command published before it reaches nobody.
	if b.broker != nil {
		if err := b.broker.AwaitSubscriber(ctx, topic); err != nil {
			return nil, (&netconf.RPCError{Type: netconf.ErrTypeApplication, Tag: netconf.TagOperationFailed, AppTag: "device-timeout",
				Message: fmt.Sprintf("device %s is not subscribed to its command topic %s: %s not sent within %s", c.UUID, topic, c.RPC.Function.Method, b.cfg.RPCTimeout)}).
				WithInfo("bad-element", c.RPC.Name)
		}
	}
	if err := b.mq.Publish(ctx, msg, 1); err != nil {
		return nil, &netconf.RPCError{Type: netconf.ErrTypeApplication, Tag: netconf.TagOperationFailed, AppTag: "mqtt-unavailable",
			Message: fmt.Sprintf("cannot reach the broker: %v", err)}
	}
	select {
	case r := <-cl.answer:
		b.registry.touch(c.UUID, time.Now().UTC())
		return reply(mod, c, r)
	case <-ctx.Done():
		return nil, (&netconf.RPCError{Type: netconf.ErrTypeApplication, Tag: netconf.TagOperationFailed, AppTag: "device-timeout",
			Message: fmt.Sprintf("device %s did not answer %s within %s", c.UUID, c.RPC.Function.Method, b.cfg.RPCTimeout)}).
			WithInfo("bad-element", c.RPC.Name)
	}
}

// reply renders the device's answer as the rpc output: retval and the
// data outputs, in the module's namespace.
func (b *Bridge) reply(mod *yang.Module, c *yang.Call, r wire.Response) ([]*netconf.Element, error) {
	out := []*netconf.Element{netconf.NewLeaf(mod.Namespace, "retval", resultOf(c, r.Value))}
	for i, o := range c.RPC.Outputs {
		if i < len(r.Outputs) {
			out = append(out, netconf.NewLeaf(mod.Namespace, o.Name, r.Outputs[i]))
		}
	}
	return out, nil
}

// resultOf is retval for a device's answer: the state it names (the YANG
// enum name); else the one state it names without its numeric prefix
// (MYNO's firmware answers OK for 10_OK); else the answer as it is, which
// the module's retval (a union of the states and a string) allows: MYNO's
// firmware answers MANIFEST-SUCCESS and 123456,1 too, and a client is
// better served by the device's word than by an error (issue 13).
func resultOf(c *yang.Call, answer string) string {
	states := c.RPC.Function.States
	for _, s := range states {
		if wire.Expand(s.Value, c.UUID) == answer {
			return ontology.Display(s.Value)
		}
	}
	match := ""
	for _, s := range states {
		if stripStateNumber(wire.Expand(s.Value, c.UUID)) == answer {
			if match != "" {
				return answer // two states end so: no guess
			}
			match = ontology.Display(s.Value)
		}
	}
	if match != "" {
		return match
	}
	return answer
}

// stripStateNumber drops the numeric prefix of a MYNO state ("10_OK" ->
// "OK"); a value without one is returned whole, so it never matches a
// different answer.
func stripStateNumber(state string) string {
	i := 0
	for i < len(state) && state[i] >= '0' && state[i] <= '9' {
		i++
	}
	if i == 0 || i == len(state) || state[i] != '_' {
		return "\x00" + state
	}
	return state[i+1:]
}

// onAnswer matches a device answer to its rpc (pendingCalls.deliver).
// Answers that match no waiting rpc are late or unknown: dropped and
// counted.
func (b *Bridge) onAnswer(m client.Message) {
	r, err := wire.DecodeResponse(m.Payload)
	if err != nil {
		b.calls.unmatched.Add(1)
		b.log.Warn("malformed device answer", "topic", m.Topic, "err", err)
		return
	}
	uuid, mine := b.owner.answerFrom(m.Topic, r.ReqID, len(m.CorrelationData) > 0)
	if !mine {
		return // an answer to another instance of the cluster
	}
	if !b.trusted(m, uuid) {
		b.untrusted(m, uuid, "device answer")
		return
	}
	if !b.calls.deliver(uuid, m.CorrelationData, r) {
		b.log.Debug("device answer dropped: late, unknown, or not from the device asked", "topic", m.Topic, "reqId", r.ReqID)
	}
}

// qualifiedPath prefixes each step of an rpc input path (all in the
// module's namespace, RFC 7950 §7.14) with the module's prefix, and binds
// it: "/setColor/input_1_Color" becomes "/led:setColor/led:input_1_Color"
// with led bound to the module's namespace (RFC 6241 §4.3: error-path is
// an XPath whose prefixes are declared in scope). "/" and "" stay as they
// are.
func qualifiedPath(path, prefix, namespace string) (string, map[string]string) {
	steps := strings.Split(path, "/")
	qualified := false
	for i, s := range steps {
		if s != "" && !strings.Contains(s, ":") {
			steps[i], qualified = prefix+":"+s, true
		}
	}
	if !qualified {
		return path, nil
	}
	return strings.Join(steps, "/"), map[string]string{prefix: namespace}
}

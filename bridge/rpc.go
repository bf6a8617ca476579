package bridge

import (
	"context"
	"crypto/rand"
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

// call is an rpc waiting for its device's answer.
type call struct {
	uuid   string
	reqID  string
	corr   string
	answer chan wire.Response
}

// rpcHandler translates the rpcs of one module: validate, publish, wait,
// reply (DESIGN.md, RPC).
func (b *Bridge) rpcHandler(mod *yang.Module) netconf.Handler {
	return netconf.HandlerFunc(func(ctx context.Context, req *netconf.Request) ([]*netconf.Element, error) {
		// The input is checked against the module first: a bad value never
		// reaches MQTT.
		c, err := mod.ParseInput([]byte(req.Operation.String()))
		if err != nil {
			var ie *yang.InputError
			if errors.As(err, &ie) {
				re := &netconf.RPCError{Type: netconf.ErrTypeApplication, Tag: ie.Tag, Path: ie.Path, Message: ie.Message}
				if ie.Tag == yang.TagMalformedMessage {
					re.Type = netconf.ErrTypeRPC
				}
				if ie.Element != "" {
					re.WithInfo("bad-element", ie.Element)
				}
				return nil, re
			}
			return nil, err
		}
		b.mu.Lock()
		d := b.devices[c.UUID]
		var tmplTopic string
		if d != nil && d.module.mod == mod {
			tmplTopic = d.template.Functions[indexOf(d.model, c.RPC.Function)].Topic
		}
		b.mu.Unlock()
		if d == nil {
			return nil, (&netconf.RPCError{Type: netconf.ErrTypeApplication, Tag: netconf.TagInvalidValue,
				Message: fmt.Sprintf("unknown device %q", c.UUID)}).WithInfo("bad-element", selectorName(c))
		}
		if tmplTopic == "" {
			return nil, (&netconf.RPCError{Type: netconf.ErrTypeApplication, Tag: netconf.TagInvalidValue,
				Message: fmt.Sprintf("device %q does not implement %s:%s", c.UUID, mod.Name, c.RPC.Name)}).WithInfo("bad-element", selectorName(c))
		}
		return b.invoke(ctx, mod, c, wire.CommandTopic(tmplTopic, c.UUID))
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

// indexOf finds a function of the template in the bound model (same order).
func indexOf(model *ontology.Device, f *ontology.Function) int {
	for i := range model.Functions {
		if model.Functions[i].IRI == f.IRI {
			return i
		}
	}
	return 0
}

// invoke publishes the command and waits for the answer.
func (b *Bridge) invoke(ctx context.Context, mod *yang.Module, c *yang.Call, topic string) ([]*netconf.Element, error) {
	corr := make([]byte, 16)
	_, _ = rand.Read(corr)
	cl := &call{uuid: c.UUID, reqID: b.nextReqID(), corr: string(corr), answer: make(chan wire.Response, 1)}
	b.mu.Lock()
	b.calls[cl.corr] = cl
	b.callsByReq[cl.reqID] = cl
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.calls, cl.corr)
		delete(b.callsByReq, cl.reqID)
		b.mu.Unlock()
	}()
	req := wire.Request{ReqID: cl.reqID, Method: c.RPC.Function.Method, Args: c.Args}
	msg := client.Message{Topic: topic, Payload: req.Encode(), ResponseTopic: b.responseTopic(c.UUID), CorrelationData: corr}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.RPCTimeout)
	defer cancel()
	if err := b.mq.Publish(ctx, msg, 1); err != nil {
		return nil, &netconf.RPCError{Type: netconf.ErrTypeApplication, Tag: netconf.TagOperationFailed, AppTag: "mqtt-unavailable",
			Message: fmt.Sprintf("cannot reach the broker: %v", err)}
	}
	select {
	case r := <-cl.answer:
		b.touch(c.UUID)
		return b.reply(mod, c, r)
	case <-ctx.Done():
		return nil, (&netconf.RPCError{Type: netconf.ErrTypeApplication, Tag: netconf.TagOperationFailed, AppTag: "device-timeout",
			Message: fmt.Sprintf("device %s did not answer %s within %s", c.UUID, c.RPC.Function.Method, b.cfg.RPCTimeout)}).
			WithInfo("bad-element", c.RPC.Name)
	}
}

// reply renders the device's answer as the rpc output: retval and the
// data outputs, in the module's namespace.
func (b *Bridge) reply(mod *yang.Module, c *yang.Call, r wire.Response) ([]*netconf.Element, error) {
	f := c.RPC.Function
	retval := r.Value
	if len(f.States) > 0 {
		known := false
		for _, s := range f.States {
			if wire.Expand(s.Value, c.UUID) == r.Value {
				known, retval = true, ontology.Display(s.Value) // the YANG enum name
			}
		}
		if !known {
			return nil, &netconf.RPCError{Type: netconf.ErrTypeApplication, Tag: netconf.TagOperationFailed, AppTag: "device-error",
				Message: fmt.Sprintf("device %s answered %q, which is not one of the operation's states", c.UUID, r.Value)}
		}
	}
	out := []*netconf.Element{netconf.NewLeaf(mod.Namespace, "retval", retval)}
	for i, o := range c.RPC.Outputs {
		if i < len(r.Outputs) {
			out = append(out, netconf.NewLeaf(mod.Namespace, o.Name, r.Outputs[i]))
		}
	}
	return out, nil
}

// onAnswer matches a device answer to its rpc: by CorrelationData (MQTT 5
// devices echo it), else by reqId (MQTT 3.1.1). Unmatched answers are late
// or unknown: dropped and counted.
func (b *Bridge) onAnswer(m client.Message) {
	r, err := wire.DecodeResponse(m.Payload)
	if err != nil {
		b.lateAnswers.Add(1)
		b.log.Warn("malformed device answer", "topic", m.Topic, "err", err)
		return
	}
	uuid := strings.TrimPrefix(m.Topic, "response/")
	if b.cluster != nil {
		if u, ok := strings.CutPrefix(m.Topic, "response/"+b.cluster.instance+"/"); ok {
			uuid = u
		} else if !b.cluster.ownReqID(r.ReqID) && len(m.CorrelationData) == 0 {
			return // an answer to another instance of the cluster
		}
	}
	b.mu.Lock()
	cl := b.calls[string(m.CorrelationData)]
	if cl == nil {
		cl = b.callsByReq[r.ReqID]
	}
	if cl != nil && cl.uuid != uuid && len(m.CorrelationData) == 0 {
		cl = nil // a reqId from another device's topic is not an answer
	}
	b.mu.Unlock()
	if cl == nil {
		b.lateAnswers.Add(1)
		b.log.Debug("late or unknown device answer dropped", "topic", m.Topic, "reqId", r.ReqID)
		return
	}
	select {
	case cl.answer <- r:
	default:
		b.lateAnswers.Add(1)
	}
}

// touch records that a device was heard from.
func (b *Bridge) touch(uuid string) {
	b.mu.Lock()
	if d := b.devices[uuid]; d != nil {
		d.lastSeen = time.Now().UTC()
	}
	b.mu.Unlock()
}

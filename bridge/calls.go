package bridge

import (
	"crypto/rand"
	"sync"
	"sync/atomic"

	"github.com/myno-bridge/myno/wire"
)

// call is an rpc waiting for its device's answer.
type call struct {
	uuid        string
	reqID       string
	correlation string // MQTT 5 CorrelationData (§3.3.2.3.6), random
	answer      chan wire.Response
}

// pendingCalls owns the rpcs in flight: it issues their correlation data
// and matches each device answer to the call that waits for it.
type pendingCalls struct {
	mu            sync.Mutex
	byCorrelation map[string]*call
	byReqID       map[string]*call // for MQTT 3.1.1 answers, which carry no properties

	unmatched  atomic.Uint64 // answers that matched no waiting call
	mismatched atomic.Uint64 // answers with a call's correlation data from another device's topic
}

func newPendingCalls() *pendingCalls {
	return &pendingCalls{byCorrelation: map[string]*call{}, byReqID: map[string]*call{}}
}

// add registers an rpc to device uuid with request id reqID.
func (p *pendingCalls) add(uuid, reqID string) *call {
	corr := make([]byte, 16)
	_, _ = rand.Read(corr) // crypto/rand.Read never fails (Go 1.24+)
	c := &call{uuid: uuid, reqID: reqID, correlation: string(corr), answer: make(chan wire.Response, 1)}
	p.mu.Lock()
	p.byCorrelation[c.correlation] = c
	p.byReqID[c.reqID] = c
	p.mu.Unlock()
	return c
}

// remove forgets a call that was answered or gave up.
func (p *pendingCalls) remove(c *call) {
	p.mu.Lock()
	delete(p.byCorrelation, c.correlation)
	delete(p.byReqID, c.reqID)
	p.mu.Unlock()
}

// deliver hands an answer from device uuid (its response topic) to the
// call waiting for it: by CorrelationData (MQTT 5 devices echo it, §4.10),
// else by reqId, and in both cases only from the device the call went to.
// An answer carrying a call's CorrelationData on another device's topic
// is forged (whoever saw the command can copy its properties): dropped
// and counted as mismatched. It reports false for an answer that is late,
// unknown, mismatched or a second one; those are counted.
func (p *pendingCalls) deliver(uuid string, correlation []byte, r wire.Response) bool {
	p.mu.Lock()
	c := p.byCorrelation[string(correlation)]
	if c != nil && c.uuid != uuid {
		p.mu.Unlock()
		p.mismatched.Add(1)
		return false
	}
	if c == nil {
		if c = p.byReqID[r.ReqID]; c != nil && c.uuid != uuid {
			c = nil // a reqId from another device's topic is not an answer
		}
	}
	p.mu.Unlock()
	if c != nil {
		select {
		case c.answer <- r:
			return true
		default: // answered already
		}
	}
	p.unmatched.Add(1)
	return false
}

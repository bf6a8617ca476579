package bridge

import (
	"context"
	"strconv"
	"time"

	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/wire"
)

// ownership decides which bridge answers a device, and how a device's
// answers find their way back to the bridge that asked. A bridge alone
// answers every device (solo); an instance of a cluster answers the
// devices it owns and writes registrations to the cluster's store
// (cluster.go). Nothing else in the package knows which of the two runs.
type ownership interface {
	// configure adds what the mode needs to the connection to an
	// external broker, before it is dialled.
	configure(cfg *client.Config)
	// topics are the mode's own subscriptions, made before the bootstrap
	// topics.
	topics() []string
	// start begins once the subscriptions are in place and the registry
	// is restored from the data dir; its goroutines
	// run under run and end with ctx.
	start(ctx context.Context, mq client.Transport, run *tasks) error
	// handle takes a message on one of the mode's own topics; false when
	// the topic is not one of them.
	handle(ctx context.Context, m client.Message) bool
	// answers reports whether this bridge answers uuid's bootstrap
	// requests.
	answers(uuid string) bool
	// reqID is the request id of the bridge's n-th command.
	reqID(n uint64) string
	// responseTopic is where an MQTT 5 device answers this bridge.
	responseTopic(uuid string) string
	// answerFrom is the device an answer on topic comes from; false when
	// the answer is for another instance.
	answerFrom(topic, reqID string, correlated bool) (uuid string, mine bool)
	// replicate tells the other instances of a registration, or (desc
	// nil) of a removal; an error means they were not told (the
	// cluster's store has no quorum).
	replicate(ctx context.Context, uuid string, desc []byte, at time.Time) error
	// readOnly says why registrations and deletes are refused, or "".
	readOnly() string
	// leave says goodbye before the connection closes.
	leave(ctx context.Context)
	// members lists the live instances (nil alone); answered counts the
	// bootstrap requests this instance answered as the owner.
	members() []string
	answered() uint64
	// logAttrs describe the mode in the start-up log line.
	logAttrs() []any
}

// replica is what a cluster needs of its bridge to apply the
// registrations that other instances replicate.
type replica interface {
	// newReplicatedBatch starts a batch of other instances'
	// registrations.
	newReplicatedBatch() replicaBatch
	unregister(ctx context.Context, uuid string) bool
	holds(uuid string, at time.Time, desc []byte) bool
	devices() []string
	// followed notes how long another instance's registration took to
	// be held here (myno_cluster_follow_lag_seconds).
	followed(lag time.Duration)
}

// replicaBatch registers other instances' registrations and, when done,
// saves them and makes their subscriptions together.
type replicaBatch interface {
	register(ctx context.Context, uuid string, desc []byte, at time.Time) error
	done(ctx context.Context)
}

// solo is a bridge alone on its broker: it answers every device.
type solo struct{}

func (solo) configure(*client.Config)                                   {}
func (solo) topics() []string                                           { return nil }
func (solo) start(context.Context, client.Transport, *tasks) error      { return nil }
func (solo) handle(context.Context, client.Message) bool                { return false }
func (solo) answers(string) bool                                        { return true }
func (solo) reqID(n uint64) string                                      { return strconv.FormatUint(n, 36) }
func (solo) responseTopic(uuid string) string                           { return wire.ResponseTopic(uuid) }
func (solo) replicate(context.Context, string, []byte, time.Time) error { return nil }
func (solo) readOnly() string                                           { return "" }
func (solo) leave(context.Context)                                      {}
func (solo) members() []string                                          { return nil }
func (solo) answered() uint64                                           { return 0 }
func (solo) logAttrs() []any                                            { return nil }

func (solo) answerFrom(topic, _ string, _ bool) (string, bool) {
	// A bridge alone takes every answer; which call it belongs to, if any,
	// is pendingCalls.deliver's to say.
	uuid, _ := wire.ResponseUUID(topic)
	return uuid, true
}

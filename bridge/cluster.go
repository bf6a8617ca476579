package bridge

// Scale-out: several bridge instances on one broker (DESIGN.md, Scale-out;
// issue 18), their shared state in etcd (package cluster).
//
// Every instance subscribes to the bootstrap topics and assembles every
// description (appending chunks is cheap), but only the instance that owns
// a UUID answers it: rendezvous hashing over the live members, whose
// leases etcd keeps (cluster.Member.Owner). A member that leaves revokes
// its lease and one that dies loses it after Etcd.LeaseTTL; only its
// devices move. MQTT 5 shared subscriptions would hand the chunks of one
// description to different instances (brokers pick a member per message:
// Mosquitto and mochi-mqtt round-robin or at random), and the chunk format
// has no index to put them back in order.
//
// The owner writes each accepted registration, and each delete, to etcd in
// one transaction (the shape once, by hash, and the device's binding), and
// only then answers the device; every instance follows the registry with a
// watch and applies it. An instance that starts, or that comes back after
// a break, lists the registry and drops the devices it no longer holds,
// so a device deleted meanwhile stays deleted.
//
// Without an etcd quorum the instance keeps serving the devices it knows
// (rpcs, telemetry, bootstraps of known descriptions) and refuses new
// registrations and deletes with ERROR;<reason>: /readyz and the log say
// it is read-only.
//
// RPC answers return to the asker: an instance's MQTT 5 ResponseTopic is
// response/<instance>/<uuid>, and its reqIds are <instance>:<n>, so an
// MQTT 3.1.1 answer on response/<uuid>, seen by every instance, is picked
// up by the one that asked.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/myno-bridge/myno/cluster"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/wire"
)

// instanceOf is one instance's view of its cluster.
type instanceOf struct {
	name, instance string
	etcd           EtcdConfig
	replica        replica
	log            *slog.Logger
	member         *cluster.Member // set by start

	ownedRequests atomic.Uint64 // bootstrap and lookup requests this instance owned
}

func newCluster(name, instance string, etcd EtcdConfig, r replica, log *slog.Logger) (*instanceOf, error) {
	if err := cluster.CheckName("cluster", name); err != nil {
		return nil, err
	}
	if err := cluster.CheckName("instance", instance); err != nil {
		return nil, err
	}
	if len(etcd.Endpoints) == 0 {
		return nil, errors.New("a cluster keeps its state in etcd: give its endpoints (--cluster-etcd)")
	}
	return &instanceOf{name: name, instance: instance, etcd: etcd, replica: r, log: log}, nil
}

func (c *instanceOf) configure(*client.Config) {}

func (c *instanceOf) topics() []string {
	return []string{wire.InstanceResponseTopic(c.instance, "+")}
}

// start joins the cluster and follows its registry under run.
func (c *instanceOf) start(ctx context.Context, _ client.Transport, run *tasks) error {
	m, err := cluster.Join(ctx, cluster.Config{Endpoints: c.etcd.Endpoints, TLS: c.etcd.TLS, Username: c.etcd.Username, Password: c.etcd.Password,
		Cluster: c.name, Instance: c.instance, LeaseTTL: c.etcd.LeaseTTL, RequestTimeout: c.etcd.RequestTimeout, Logger: c.log})
	if err != nil {
		return fmt.Errorf("join cluster %s: %w", c.name, err)
	}
	c.member = m
	run.goDo(func() { m.Follow(ctx, newFollower(c)) })
	run.goDo(func() { c.collectShapes(ctx, m) })
	return nil
}

// shapeCollection is how often an instance collects the shapes no device
// uses that another one left behind (cluster.Member.CollectShapes): a
// delete collects its own shape at once, so there is rarely any.
const shapeCollection = time.Hour

// collectShapes runs CollectShapes at start and then every
// shapeCollection, until ctx ends.
func (c *instanceOf) collectShapes(ctx context.Context, m *cluster.Member) {
	for {
		n, err := m.CollectShapes(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			c.log.Warn("cluster: collecting unused shapes", "err", err)
		case n > 0:
			c.log.Info("cluster: collected shapes no device uses", "shapes", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(shapeCollection):
		}
	}
}

func (c *instanceOf) handle(context.Context, client.Message) bool { return false }

// leave revokes the lease: the others take this instance's devices over.
func (c *instanceOf) leave(ctx context.Context) {
	if c.member == nil {
		return
	}
	if err := c.member.Close(ctx); err != nil {
		c.log.Warn("cluster leave", "err", err)
	}
}

func (c *instanceOf) reqID(n uint64) string { return c.instance + ":" + strconv.FormatUint(n, 36) }

// ownReqID reports whether a reqId was issued by this instance.
func (c *instanceOf) ownReqID(reqID string) bool { return strings.HasPrefix(reqID, c.instance+":") }

func (c *instanceOf) responseTopic(uuid string) string {
	return wire.InstanceResponseTopic(c.instance, uuid)
}

func (c *instanceOf) answerFrom(topic, reqID string, correlated bool) (string, bool) {
	if uuid, ok := wire.InstanceResponseUUID(c.instance, topic); ok {
		return uuid, true
	}
	if !c.ownReqID(reqID) && !correlated {
		return "", false // an answer to another instance of the cluster
	}
	uuid, _ := wire.ResponseUUID(topic)
	return uuid, true
}

func (c *instanceOf) answers(uuid string) bool {
	if c.member == nil || c.member.Owner(uuid) != c.instance {
		return false
	}
	c.ownedRequests.Add(1)
	return true
}

func (c *instanceOf) answered() uint64 { return c.ownedRequests.Load() }

func (c *instanceOf) members() []string {
	if c.member == nil {
		return nil
	}
	return c.member.Members()
}

func (c *instanceOf) logAttrs() []any {
	return []any{"cluster", c.name, "instance", c.instance, "etcd", c.etcd.Endpoints}
}

// replicate writes a registration (or, desc nil, a delete) to etcd; an
// error means the cluster did not take it (no quorum).
func (c *instanceOf) replicate(ctx context.Context, uuid string, desc []byte, at time.Time) error {
	if desc == nil {
		return c.member.Delete(ctx, uuid)
	}
	return c.member.Register(ctx, uuid, storeDescription(desc, uuid).shape(), at)
}

// readOnly says why registrations are refused, or "".
func (c *instanceOf) readOnly() string {
	if c.member != nil && !c.member.Writable() {
		return "cluster store unavailable (no etcd quorum): read-only"
	}
	return ""
}

// follower applies the registry that etcd holds to this instance, a
// batch at a time: a listing, or a watch response (cluster.Follower). Its
// methods are called from one goroutine (cluster.Member.Follow).
type follower struct {
	c     *instanceOf
	batch replicaBatch
	// written are when the batch's registrations that another instance
	// took, and the watch brought, were written to etcd: their lags are
	// observed when the batch is done.
	written []time.Time
}

func newFollower(c *instanceOf) *follower {
	return &follower{c: c, batch: c.replica.newReplicatedBatch()}
}

func (f *follower) Reset(ctx context.Context, devices []cluster.Device) {
	keep := make(map[string]bool, len(devices))
	for _, d := range devices {
		keep[d.UUID] = true
		f.put(ctx, d, false)
	}
	f.Applied(ctx)
	var gone []string
	for _, uuid := range f.c.replica.devices() {
		if !keep[uuid] {
			gone = append(gone, uuid)
		}
	}
	if len(gone) == 0 {
		return
	}
	// One registered here after the listing's revision is in etcd now,
	// and the watch brings it: forgetting it would tell a deletion that
	// did not happen.
	now, err := f.c.member.RegisteredNow(ctx)
	if err != nil {
		f.c.log.Warn("devices kept: cannot tell whether the cluster still has them", "devices", len(gone), "err", err)
		return
	}
	for _, uuid := range gone {
		if !now[uuid] {
			f.c.replica.unregister(ctx, uuid)
		}
	}
}

func (f *follower) Put(ctx context.Context, d cluster.Device) { f.put(ctx, d, true) }

// put registers d here unless it is held already. A registration another
// instance took that the watch brought (not a listing, whose devices may
// be old) has its lag observed: from the owner writing it to etcd to
// this instance holding it, saved and subscribed.
func (f *follower) put(ctx context.Context, d cluster.Device, watched bool) {
	desc := descriptionFromShape(d.Shape, d.UUID)
	if f.c.replica.holds(d.UUID, d.Binding.RegisteredAt, desc) {
		return // our own registration coming back, or already applied
	}
	if err := f.batch.register(ctx, d.UUID, desc, d.Binding.RegisteredAt); err != nil {
		f.c.log.Warn("replicated registration refused", "uuid", d.UUID, "by", d.Binding.By, "err", err)
		return
	}
	// A binding from an instance older than the write time has none;
	// one from a clock ahead would give a negative lag: neither is a lag.
	if watched && d.Binding.By != f.c.instance && !d.Binding.Written.IsZero() && !d.Binding.Written.After(time.Now()) {
		f.written = append(f.written, d.Binding.Written)
	}
}

// Deleted finishes the batch first, so that a device registered and
// deleted in one batch leaves no subscription behind.
func (f *follower) Deleted(ctx context.Context, uuid string) {
	f.Applied(ctx)
	f.c.replica.unregister(ctx, uuid)
}

func (f *follower) Applied(ctx context.Context) {
	f.batch.done(ctx)
	for _, at := range f.written {
		f.c.replica.followed(time.Since(at))
	}
	f.written = f.written[:0]
}

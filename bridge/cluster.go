package bridge

// Scale-out: several bridge instances on one broker (DESIGN.md, Scale-out).
//
// Every instance of a cluster subscribes to the bootstrap topics and
// assembles every description (appending chunks is cheap), but only the
// instance that owns a UUID answers it: the owner is the member with the
// highest SHA-256(member, uuid) among the live members (rendezvous
// hashing), so each member owns about 1/n of the devices and a member
// leaving moves only its own devices. MQTT 5 shared subscriptions would
// hand the chunks of one description to different instances (brokers pick
// a member per message: Mosquitto and mochi-mqtt round-robin or at random),
// and the chunk format has no index to put them back in order.
//
// Members announce themselves with a retained message on
// myno/cluster/<name>/members/<instance>, cleared on a clean stop and
// replaced by "down", through the connection's Will, when an instance dies.
//
// The owner publishes each accepted registration retained on
// myno/cluster/<name>/registry/<uuid> (cleared on delete): every instance
// applies them, so a NETCONF client may connect to any instance, and an
// instance that starts rebuilds the registry from the broker.
//
// RPC answers return to the asker: an instance's MQTT 5 ResponseTopic is
// response/<instance>/<uuid>, and its reqIds are <instance>:<n>, so an
// MQTT 3.1.1 answer on response/<uuid>, seen by every instance, is picked
// up by the one that asked.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/wire"
)

// validClusterName is what a cluster or instance name may be: a single
// topic level without wildcards, and no ':' (the reqId separator).
var validClusterName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// memberDown is the membership payload of an instance that died (its
// Will); a clean stop clears the retained membership instead.
const memberDown = "down"

// cluster is one instance's view of its cluster.
type cluster struct {
	name, instance string
	replica        replica
	log            *slog.Logger
	mq             client.Transport // set by start

	mu   sync.Mutex
	live map[string]bool // live members, this one included

	registry      chan client.Message // replicated registrations, applied in order
	rejoin        chan struct{}       // the broker connection came back
	ownedRequests atomic.Uint64       // bootstrap and lookup requests this instance owned
}

func newCluster(name, instance string, r replica, log *slog.Logger) (*cluster, error) {
	if !validClusterName.MatchString(name) {
		return nil, fmt.Errorf("cluster name %q: want 1-64 of A-Z a-z 0-9 _ . -", name)
	}
	if !validClusterName.MatchString(instance) {
		return nil, fmt.Errorf("instance name %q: want 1-64 of A-Z a-z 0-9 _ . -", instance)
	}
	return &cluster{name: name, instance: instance, replica: r, log: log, live: map[string]bool{instance: true},
		registry: make(chan client.Message, 1024), rejoin: make(chan struct{}, 1)}, nil
}

// configure gives the connection a Will: a dead instance leaves the
// cluster through it, the broker replacing the retained membership (MQTT 5
// §3.1.2.5). The Will also fires when the connection merely broke, so
// each reconnect announces the instance again. It says "down" rather than
// clearing the message with an empty payload, which mochi-mqtt refuses in
// a Will.
func (c *cluster) configure(cfg *client.Config) {
	cfg.Will, cfg.WillRetain = &client.Message{Topic: wire.ClusterMemberTopic(c.name, c.instance), Payload: []byte(memberDown)}, true
	cfg.OnReconnect = func() {
		select {
		case c.rejoin <- struct{}{}:
		default:
		}
	}
}

// topics: members first, so that by the time a retained registration or
// a bootstrap arrives, the membership retained at the broker is known.
func (c *cluster) topics() []string {
	return []string{wire.ClusterMemberTopic(c.name, "+"), wire.ClusterRegistryTopic(c.name, "+"), wire.InstanceResponseTopic(c.instance, "+")}
}

func (c *cluster) start(ctx context.Context, mq client.Transport, run *tasks) error {
	c.mq = mq
	if err := c.join(ctx); err != nil {
		return err
	}
	run.goDo(func() { c.applyRegistrations(ctx) })
	run.goDo(func() { c.rejoinAfterReconnect(ctx) })
	return nil
}

// join announces this instance with a retained membership message.
func (c *cluster) join(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.mq.PublishRetained(ctx, client.Message{Topic: wire.ClusterMemberTopic(c.name, c.instance),
		Payload: []byte(time.Now().UTC().Format(time.RFC3339))}); err != nil {
		return fmt.Errorf("join cluster %s: %w", c.name, err)
	}
	return nil
}

// rejoinAfterReconnect announces the instance again after each reconnect:
// the broker published its Will when the connection broke.
func (c *cluster) rejoinAfterReconnect(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.rejoin:
			if err := c.join(ctx); err != nil {
				c.log.Warn("cluster membership not renewed", "err", err)
			}
		}
	}
}

// leave clears the retained membership: the others take over this
// instance's devices.
func (c *cluster) leave(ctx context.Context) {
	if c.mq == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_ = c.mq.PublishRetained(ctx, client.Message{Topic: wire.ClusterMemberTopic(c.name, c.instance)})
}

func (c *cluster) reqID(n uint64) string { return c.instance + ":" + strconv.FormatUint(n, 36) }

// ownReqID reports whether a reqId was issued by this instance.
func (c *cluster) ownReqID(reqID string) bool { return strings.HasPrefix(reqID, c.instance+":") }

func (c *cluster) responseTopic(uuid string) string {
	return wire.InstanceResponseTopic(c.instance, uuid)
}

func (c *cluster) answerFrom(topic, reqID string, correlated bool) (string, bool) {
	if uuid, ok := wire.InstanceResponseUUID(c.instance, topic); ok {
		return uuid, true
	}
	if !c.ownReqID(reqID) && !correlated {
		return "", false // an answer to another instance of the cluster
	}
	uuid, _ := wire.ResponseUUID(topic)
	return uuid, true
}

// owner is the live member that answers for uuid (rendezvous hashing).
func (c *cluster) owner(uuid string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return rendezvousOwner(c.live, uuid)
}

func rendezvousOwner(members map[string]bool, uuid string) string {
	var best string
	var bestScore [sha256.Size]byte
	for m := range members {
		score := sha256.Sum256([]byte(m + "\x00" + uuid))
		if best == "" || bytes.Compare(score[:], bestScore[:]) > 0 || (score == bestScore && m < best) {
			best, bestScore = m, score
		}
	}
	return best
}

func (c *cluster) answers(uuid string) bool {
	if c.owner(uuid) != c.instance {
		return false
	}
	c.ownedRequests.Add(1)
	return true
}

func (c *cluster) answered() uint64 { return c.ownedRequests.Load() }

// members lists the live members this instance knows of, sorted.
func (c *cluster) members() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Sorted(maps.Keys(c.live))
}

func (c *cluster) logAttrs() []any { return []any{"cluster", c.name, "instance", c.instance} }

// registration is the retained registry message.
type registration struct {
	RegisteredAt time.Time `json:"registeredAt"`
	Description  string    `json:"description"`
	By           string    `json:"by"`
}

// handle takes membership changes and replicated registrations.
func (c *cluster) handle(ctx context.Context, m client.Message) bool {
	kind, name, ok := wire.ClusterTopic(c.name, m.Topic)
	if !ok {
		return false
	}
	switch kind {
	case "members":
		if name == c.instance {
			// We are a member for as long as we run. The broker may deliver
			// our old connection's Will after the new connection announced
			// us again (the Will is published when the broker notices the
			// broken connection, which can be after the reconnect): a
			// retained "down" for a running instance is answered with a new
			// announcement, so the retained state ends up true.
			if string(m.Payload) == memberDown {
				select {
				case c.rejoin <- struct{}{}:
				default:
				}
			}
			return true
		}
		if !validClusterName.MatchString(name) {
			return true
		}
		up := len(m.Payload) > 0 && string(m.Payload) != memberDown
		c.mu.Lock()
		if up {
			c.live[name] = true
		} else {
			delete(c.live, name)
		}
		n := len(c.live)
		c.mu.Unlock()
		c.log.Info("cluster membership", "member", name, "up", up, "members", n)
	case "registry":
		select {
		case c.registry <- m:
		case <-ctx.Done():
		}
	}
	return true
}

// applyRegistrations applies replicated registrations in arrival order.
func (c *cluster) applyRegistrations(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-c.registry:
			_, uuid, _ := wire.ClusterTopic(c.name, m.Topic)
			if len(m.Payload) == 0 {
				c.replica.unregister(ctx, uuid)
				continue
			}
			var r registration
			if err := json.Unmarshal(m.Payload, &r); err != nil {
				c.log.Warn("bad replicated registration", "uuid", uuid, "err", err)
				continue
			}
			if c.replica.holds(uuid, r.RegisteredAt, []byte(r.Description)) {
				continue // our own registration coming back, or already applied
			}
			if err := c.replica.register(ctx, uuid, []byte(r.Description), r.RegisteredAt, true); err != nil {
				c.log.Warn("replicated registration refused", "uuid", uuid, "by", r.By, "err", err)
			}
		}
	}
}

// replicate publishes a registration (or, desc nil, its removal) for the
// other instances.
func (c *cluster) replicate(ctx context.Context, uuid string, desc []byte, at time.Time) {
	var payload []byte
	if desc != nil {
		payload, _ = json.Marshal(registration{RegisteredAt: at.UTC(), Description: string(desc), By: c.instance})
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.mq.PublishRetained(ctx, client.Message{Topic: wire.ClusterRegistryTopic(c.name, uuid), Payload: payload}); err != nil {
		c.log.Warn("registration not replicated", "uuid", uuid, "err", err)
	}
}

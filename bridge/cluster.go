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
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/myno-bridge/myno/mqtt/client"
)

// validClusterName is what a cluster or instance name may be: a single
// topic level without wildcards, and no ':' (the reqId separator).
var validClusterName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

const clusterPrefix = "myno/cluster/"

// memberDown is the membership payload of an instance that died (its
// Will); a clean stop clears the retained membership instead.
const memberDown = "down"

// cluster is one instance's view of its cluster.
type cluster struct {
	name, instance string

	mu      sync.Mutex
	members map[string]bool // live members, this one included

	registry chan client.Message // replicated registrations, applied in order
	rejoin   chan struct{}       // the broker connection came back
	answered atomic.Uint64       // bootstrap and lookup requests this instance owned
}

func newCluster(name, instance string) (*cluster, error) {
	if !validClusterName.MatchString(name) {
		return nil, fmt.Errorf("cluster name %q: want 1-64 of A-Z a-z 0-9 _ . -", name)
	}
	if !validClusterName.MatchString(instance) {
		return nil, fmt.Errorf("instance name %q: want 1-64 of A-Z a-z 0-9 _ . -", instance)
	}
	return &cluster{name: name, instance: instance, members: map[string]bool{instance: true},
		registry: make(chan client.Message, 1024), rejoin: make(chan struct{}, 1)}, nil
}

func (c *cluster) memberTopic(instance string) string {
	return clusterPrefix + c.name + "/members/" + instance
}

func (c *cluster) registryTopic(uuid string) string {
	return clusterPrefix + c.name + "/registry/" + uuid
}

func (c *cluster) responseTopic(uuid string) string {
	return "response/" + c.instance + "/" + uuid
}

func (c *cluster) reqID(n string) string { return c.instance + ":" + n }

// ownReqID reports whether a reqId was issued by this instance.
func (c *cluster) ownReqID(reqID string) bool { return strings.HasPrefix(reqID, c.instance+":") }

// owner is the live member that answers for uuid (rendezvous hashing).
func (c *cluster) owner(uuid string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return rendezvousOwner(c.members, uuid)
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

func (c *cluster) owns(uuid string) bool { return c.owner(uuid) == c.instance }

// memberList lists the live members this instance knows of, sorted.
func (c *cluster) memberList() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Sorted(maps.Keys(c.members))
}

// joinCluster announces this instance with a retained membership message.
func (b *Bridge) joinCluster(ctx context.Context) error {
	c := b.cluster
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := b.mq.PublishRetained(ctx, client.Message{Topic: c.memberTopic(c.instance),
		Payload: []byte(time.Now().UTC().Format(time.RFC3339))}); err != nil {
		return fmt.Errorf("join cluster %s: %w", c.name, err)
	}
	return nil
}

// rejoinCluster announces the instance again after each reconnect: the
// broker published its Will when the connection broke.
func (b *Bridge) rejoinCluster() {
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-b.cluster.rejoin:
			if err := b.joinCluster(b.ctx); err != nil {
				b.log.Warn("cluster membership not renewed", "err", err)
			}
		}
	}
}

// registration is the retained registry message.
type registration struct {
	RegisteredAt time.Time `json:"registeredAt"`
	Description  string    `json:"description"`
	By           string    `json:"by"`
}

// onClusterMessage takes membership changes and replicated registrations.
func (b *Bridge) onClusterMessage(m client.Message) {
	c := b.cluster
	rest, ok := strings.CutPrefix(m.Topic, clusterPrefix+c.name+"/")
	if !ok {
		return
	}
	switch {
	case strings.HasPrefix(rest, "members/"):
		member := strings.TrimPrefix(rest, "members/")
		if member == c.instance || !validClusterName.MatchString(member) {
			return // we are a member for as long as we run
		}
		up := len(m.Payload) > 0 && string(m.Payload) != memberDown
		c.mu.Lock()
		if up {
			c.members[member] = true
		} else {
			delete(c.members, member)
		}
		n := len(c.members)
		c.mu.Unlock()
		b.log.Info("cluster membership", "member", member, "up", up, "members", n)
	case strings.HasPrefix(rest, "registry/"):
		select {
		case c.registry <- m:
		case <-b.ctx.Done():
		}
	}
}

// applyRegistrations applies replicated registrations in arrival order.
func (b *Bridge) applyRegistrations() {
	c := b.cluster
	for {
		select {
		case <-b.ctx.Done():
			return
		case m := <-c.registry:
			uuid := strings.TrimPrefix(m.Topic, clusterPrefix+c.name+"/registry/")
			if len(m.Payload) == 0 {
				b.unregister(b.ctx, uuid)
				continue
			}
			var r registration
			if err := json.Unmarshal(m.Payload, &r); err != nil {
				b.log.Warn("bad replicated registration", "uuid", uuid, "err", err)
				continue
			}
			b.mu.Lock()
			d := b.devices[uuid]
			same := d != nil && d.RegisteredAt.Equal(r.RegisteredAt) && string(d.Description) == r.Description
			b.mu.Unlock()
			if same {
				continue // our own registration coming back, or already applied
			}
			if err := b.register(b.ctx, uuid, []byte(r.Description), r.RegisteredAt, true); err != nil {
				b.log.Warn("replicated registration refused", "uuid", uuid, "by", r.By, "err", err)
			}
		}
	}
}

// replicate publishes a registration (or, desc nil, its removal) for the
// other instances.
func (b *Bridge) replicate(ctx context.Context, uuid string, desc []byte, at time.Time) {
	if b.cluster == nil {
		return
	}
	var payload []byte
	if desc != nil {
		payload, _ = json.Marshal(registration{RegisteredAt: at.UTC(), Description: string(desc), By: b.cluster.instance})
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := b.mq.PublishRetained(ctx, client.Message{Topic: b.cluster.registryTopic(uuid), Payload: payload}); err != nil {
		b.log.Warn("registration not replicated", "uuid", uuid, "err", err)
	}
}

// answers reports whether this instance answers the bootstrap requests of
// uuid: always when it runs alone.
func (b *Bridge) answers(uuid string) bool {
	if b.cluster == nil {
		return true
	}
	if !b.cluster.owns(uuid) {
		return false
	}
	b.cluster.answered.Add(1)
	return true
}

// ClusterMembers lists the live members of the cluster as this instance
// sees them; nil when it runs alone.
func (b *Bridge) ClusterMembers() []string {
	if b.cluster == nil {
		return nil
	}
	return b.cluster.memberList()
}

// ClusterAnswered counts the bootstrap and lookup requests this instance
// answered as their owner.
func (b *Bridge) ClusterAnswered() uint64 {
	if b.cluster == nil {
		return 0
	}
	return b.cluster.answered.Load()
}

package broker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/myno-bridge/myno/internal/failguard"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/myno-bridge/myno/mqtt/access"
)

// AccessControl decides who may connect to the embedded broker and what
// each client may publish and subscribe to (access.Controller).
type AccessControl interface {
	// Authenticate names a connecting client, or refuses it with one of
	// access's errors (ErrAnonymous, ErrBadCredentials, ErrNotEnrolled,
	// ErrClientID).
	Authenticate(access.ConnectRequest) (access.Identity, error)
	// Allow reports whether id may publish to topic (write) or subscribe
	// to, or receive on, topic (!write).
	Allow(id access.Identity, topic string, write bool) bool
}

// OpenAccess admits every client, anonymous ones too, to every topic: for
// tests of other things, and labs. A deployment uses an access.Controller.
type OpenAccess struct{}

func (OpenAccess) Authenticate(access.ConnectRequest) (access.Identity, error) {
	return access.Identity{}, nil
}

func (OpenAccess) Allow(access.Identity, string, bool) bool { return true }

// accessHook asks the AccessControl at every CONNECT [MQTT-3.1.4-2],
// PUBLISH [MQTT-3.3.5], SUBSCRIBE [MQTT-3.8.4] and delivery. A client's
// identity name replaces the user name it presented (a certificate's
// common name when it presented none); its role is kept by name.
type accessHook struct {
	mqtt.HookBase
	srv     *mqtt.Server
	control AccessControl
	guard   *failguard.Guard // failed logins per source address
	roles   sync.Map         // identity name -> access.Role

	refusedConnects atomic.Uint64
	deniedTopics    atomic.Uint64
	logMu           sync.Mutex
	lastLog         time.Time
	unlogged        uint64
}

func (h *accessHook) ID() string { return "myno-access" }

func (h *accessHook) Provides(b byte) bool {
	return b == mqtt.OnConnect || b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck || b == mqtt.OnPublish || b == mqtt.OnWill
}

// refusalCode is the CONNACK reason code of a refusal (MQTT 5 §3.2.2.2;
// connackCode gives the 3.1.1 return code, §3.2.2.3).
func refusalCode(err error) packets.Code {
	switch {
	case errors.Is(err, access.ErrBadCredentials):
		return packets.ErrBadUsernameOrPassword // 0x86; 3.1.1: 4
	case errors.Is(err, access.ErrClientID):
		return packets.ErrClientIdentifierNotValid // 0x85; 3.1.1: 2
	case errors.Is(err, access.ErrUnavailable):
		return packets.ErrServerUnavailable // 0x88; 3.1.1: 3
	default:
		return packets.ErrNotAuthorized // 0x87; 3.1.1: 5
	}
}

// connackCode is code as cl's protocol version spells it: MQTT 3.1.1 has
// return codes 1 to 5 only (§3.2.2.3). mochi-mqtt v2.7.9 passes 0x87 to a
// 3.1.1 client unchanged (paho.mqtt.golang then takes the connection as
// accepted) and maps 0x86 to 5 where 4 says it.
func connackCode(cl *mqtt.Client, code packets.Code) packets.Code {
	if cl.Properties.ProtocolVersion >= 5 {
		return code
	}
	switch code {
	case packets.ErrBadUsernameOrPassword:
		return packets.ErrMalformedUsernameOrPassword // 4: bad user name or password
	case packets.ErrClientIdentifierNotValid:
		return packets.Err3ClientIdentifierNotValid // 2: identifier rejected
	case packets.ErrServerUnavailable, packets.ErrServerBusy:
		return packets.Err3ServerUnavailable // 3
	default:
		return packets.Err3NotAuthorized // 5
	}
}

// OnConnect authenticates the client; a refusal is answered with a
// CONNACK that says why, and the connection closes [MQTT-3.2.2-7].
func (h *accessHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	source := failguard.Source(cl.Net.Remote)
	if d := h.guard.Locked(source); d > 0 {
		// Server busy, not bad credentials: a client that was right all
		// along retries instead of giving up (issue 12).
		h.refusedConnects.Add(1)
		h.logRefusal("mqtt connection refused: too many failed logins from this address", "client", cl.ID, "remote", cl.Net.Remote, "retry_in", d.Round(time.Second))
		_ = h.srv.SendConnack(cl, connackCode(cl, packets.ErrServerBusy), false, nil)
		return packets.ErrServerBusy
	}
	req := access.ConnectRequest{ClientID: cl.ID, Username: string(pk.Connect.Username), Password: pk.Connect.Password}
	if tc, ok := cl.Net.Conn.(*tls.Conn); ok {
		if st := tc.ConnectionState(); len(st.VerifiedChains) > 0 {
			req.Certificate = st.VerifiedChains[0][0]
		}
	}
	id, err := h.control.Authenticate(req)
	if err == nil {
		err = h.checkSession(cl, id, pk)
	}
	if errors.Is(err, access.ErrBadCredentials) {
		h.guard.Failed(source) // guessing; other refusals are not
	} else if err == nil && req.Username != "" {
		h.guard.Succeeded(source)
	}
	if err != nil {
		h.refusedConnects.Add(1)
		h.logRefusal("mqtt connection refused", "client", cl.ID, "user", req.Username, "remote", cl.Net.Remote, "reason", err)
		code := refusalCode(err)
		_ = h.srv.SendConnack(cl, connackCode(cl, code), false, nil)
		return code
	}
	cl.Properties.Username = []byte(id.Name)
	if !id.Anonymous() {
		h.roles.Store(id.Name, id.Role)
	}
	return nil
}

// checkSession refuses what an admitted identity may still not do with
// its CONNECT: take over the session of a client identifier that another
// identity holds (the bridge names a message's sender by its client
// identifier, and [MQTT-3.1.4-3] would hand the session over), or leave a
// will on a topic it may not publish to (mochi-mqtt sends wills without
// asking the ACL).
func (h *accessHook) checkSession(cl *mqtt.Client, id access.Identity, pk packets.Packet) error {
	if old, ok := h.srv.Clients.Get(cl.ID); ok && old != cl && string(old.Properties.Username) != id.Name {
		return fmt.Errorf("%w: %q is held by another identity", access.ErrClientID, cl.ID)
	}
	if pk.Connect.WillFlag && !h.control.Allow(id, pk.Connect.WillTopic, true) {
		h.deniedTopics.Add(1)
		return fmt.Errorf("%w: will on %q", access.ErrTopicDenied, pk.Connect.WillTopic)
	}
	return nil
}

// OnWill checks a will again when it is about to be sent: the client's
// rules may have shrunk since it connected (its device deleted, say). A
// will it may no longer publish goes to no topic. (mochi-mqtt v2.7.9 lets
// a hook change a will, not drop it.)
func (h *accessHook) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	if h.control.Allow(h.identity(cl), will.TopicName, true) {
		return will, nil
	}
	h.deniedTopics.Add(1)
	h.logRefusal("mqtt will dropped", "client", cl.ID, "identity", h.identity(cl).String(), "topic", will.TopicName)
	return mqtt.Will{Flag: will.Flag}, nil
}

// OnConnectAuthenticate lets through what OnConnect admitted.
func (h *accessHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool { return true }

// identity is who cl authenticated as.
func (h *accessHook) identity(cl *mqtt.Client) access.Identity {
	name := string(cl.Properties.Username)
	if name == "" {
		return access.Identity{Client: cl.ID}
	}
	role, _ := h.roles.Load(name)
	r, _ := role.(access.Role)
	return access.Identity{Name: name, Role: r}
}

// OnACLCheck asks the AccessControl. A denied QoS 1 publish gets PUBACK
// 0x87 from MQTT 5 clients, and a 3.1.1 client is disconnected (it has no
// way to be told, [MQTT-3.3.5-2]); a denied subscription gets SUBACK 0x87
// (3.1.1: 0x80); a denied delivery is not made.
func (h *accessHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if write && topic == "" {
		// An MQTT 5 PUBLISH by topic alias (§3.3.2.3.4): mochi-mqtt
		// v2.7.9 asks before it resolves the alias. OnPublish decides.
		return true
	}
	id := h.identity(cl)
	if h.control.Allow(id, topic, write) {
		return true
	}
	h.deniedTopics.Add(1)
	op := "subscribe"
	if write {
		op = "publish"
	}
	h.logRefusal("mqtt "+op+" denied", "client", cl.ID, "identity", id.String(), "topic", topic)
	return false
}

// OnPublish checks a publish again once mochi-mqtt has resolved its topic
// alias, if any (a client could otherwise set an alias on a permitted
// topic... and OnACLCheck saw no topic at all). A refused MQTT 5 QoS 1
// publish gets PUBACK 0x87; a QoS 0 one is dropped. (MQTT 3.1.1 has no
// aliases: OnACLCheck has decided.)
func (h *accessHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline || h.control.Allow(h.identity(cl), pk.TopicName, true) {
		return pk, nil
	}
	h.deniedTopics.Add(1)
	h.logRefusal("mqtt publish denied", "client", cl.ID, "identity", h.identity(cl).String(), "topic", pk.TopicName)
	if cl.Properties.ProtocolVersion == 5 && pk.FixedHeader.Qos > 0 {
		return pk, packets.ErrNotAuthorized
	}
	return pk, packets.ErrRejectPacket
}

// logRefusal logs at most one refusal per second at warning level, with
// how many went unlogged, so that a flood of refusals cannot flood the log.
func (h *accessHook) logRefusal(msg string, args ...any) {
	h.logMu.Lock()
	now := time.Now()
	if now.Sub(h.lastLog) < time.Second {
		h.unlogged++
		h.logMu.Unlock()
		h.Log.Debug(msg, args...)
		return
	}
	skipped := h.unlogged
	h.lastLog, h.unlogged = now, 0
	h.logMu.Unlock()
	if skipped > 0 {
		args = append(args, "refusals_not_logged", skipped)
	}
	h.Log.Warn(msg, args...)
}

// Identity returns who the connected client with this client identifier
// authenticated as; ok is false for a client the broker does not have.
func (b *Broker) Identity(clientID string) (id access.Identity, ok bool) {
	cl, ok := b.srv.Clients.Get(clientID)
	if !ok {
		return access.Identity{}, false
	}
	return b.access.identity(cl), true
}

// Connected reports whether a client with this identifier is connected.
func (b *Broker) Connected(clientID string) bool {
	cl, ok := b.srv.Clients.Get(clientID)
	return ok && !cl.Closed()
}

// RefusedConnects counts the connections refused by the access control.
func (b *Broker) RefusedConnects() uint64 { return b.access.refusedConnects.Load() }

// DeniedTopics counts the publishes, subscriptions and deliveries the
// access control denied.
func (b *Broker) DeniedTopics() uint64 { return b.access.deniedTopics.Load() }

// Disconnect closes the connections of the clients that authenticated as
// name (its credential was removed): it reports how many there were.
func (b *Broker) Disconnect(name string) int {
	n := 0
	for _, cl := range b.srv.Clients.GetAll() {
		if !cl.Net.Inline && !cl.Closed() && string(cl.Properties.Username) == name {
			_ = b.srv.DisconnectClient(cl, packets.ErrNotAuthorized)
			n++
		}
	}
	return n
}

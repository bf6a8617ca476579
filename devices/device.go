package devices

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/ontology"
	"github.com/myno-bridge/myno/wire"
)

// deviceReceiveMaximum bounds the QoS 1 commands in flight to one device.
const deviceReceiveMaximum = 32

// DefaultMaxInFlightCommands is how many command handlers a device runs at
// once unless Config.MaxInFlightCommands says otherwise.
const DefaultMaxInFlightCommands = 16

// DefaultMaxWaitingCommands is how many received commands may wait for a
// free handler unless Config.MaxWaitingCommands says otherwise: one MQTT 5
// Receive Maximum's worth (deviceReceiveMaximum).
const DefaultMaxWaitingCommands = deviceReceiveMaximum

// commandTimeout bounds one command's handling; answerTimeout bounds the
// publish of its answer (Close waits for it, so it is short).
const (
	commandTimeout = 10 * time.Second
	answerTimeout  = 2 * time.Second
)

// DefaultChunkSize is what the CC2538 MYNO device sends per bootstrap message.
const DefaultChunkSize = 4054

// DefaultBootstrapTimeout is how long a bootstrap attempt waits for the
// bridge's answer by default.
const DefaultBootstrapTimeout = 5 * time.Second

// Config configures one virtual device.
type Config struct {
	Description []byte // the JSON-LD description it publishes
	UUID        string
	BrokerURL   string // mqtt://host:port, mqtts://host:port
	// Credentials authenticate the device to the broker (a user name and
	// password, or a client certificate).
	Credentials client.Credentials
	Protocol    client.Protocol
	// LegacyBootstrapTopics publishes on MYNO's shared bootstrap topics
	// (yang/config/create, ...) instead of the device's own
	// (yang/config/create/<uuid>, ...): for bridges that know only those.
	LegacyBootstrapTopics bool
	// LegacyTopic publishes the description on yang/config, the topic of
	// MYNO's first bridge and its simulators (wire.TopicLegacy), and the
	// other bootstrap messages on the shared topics (LegacyBootstrapTopics).
	LegacyTopic bool
	// FillUUID publishes the description with every "%s" replaced by the
	// UUID, as MYNO's simulators do before they publish ("%%" is left as
	// it is, as their str.replace leaves it): the bridge reads it back as
	// the template (package ontology, filled-in UUIDs).
	FillUUID bool
	// Template is Description parsed (ontology.Parse), when the caller has
	// it: a fleet parses each description once, not once per device. It
	// is only read.
	Template  *ontology.Device
	ChunkSize int // description bytes per bootstrap message; 0 = DefaultChunkSize, <0 = one chunk
	// TelemetryInterval is the period of sensor readings; 0 turns them off.
	TelemetryInterval time.Duration
	Seed              int64 // readings are reproducible from (Seed, UUID, sensor)
	// BootstrapTimeout is how long one bootstrap attempt waits for OK;
	// 0 is DefaultBootstrapTimeout.
	BootstrapTimeout time.Duration
	// BootstrapAttempts bounds the attempts; the wait between them doubles.
	BootstrapAttempts int
	MaxPayload        int // largest command accepted; 0 = 64 KiB
	// MaxInFlightCommands bounds the command handlers running at once;
	// 0 = DefaultMaxInFlightCommands (16). A command received while all
	// are busy waits in a queue (see MaxWaitingCommands).
	MaxInFlightCommands int
	// MaxWaitingCommands bounds that queue; 0 = DefaultMaxWaitingCommands
	// (32). A command received while it is full is dropped unanswered,
	// with a warning, and counted in Device.Dropped; see Device.onCommand.
	MaxWaitingCommands int
	Logger             *slog.Logger
	// Handlers override the generic actuator for a method (the MUP device
	// side plugs in here).
	Handlers map[string]CommandHandler
	// KeepAlive is the device's MQTT keep-alive; 0 is
	// client.DefaultKeepAlive (30 s). The broker drops a device that
	// sends nothing for 1.5 times as long: a stopped device is offline
	// then.
	KeepAlive time.Duration
	// NoPresence sets no Will and publishes no presence, as MYNO's
	// devices do. By default a device announces itself on its presence
	// topic (wire.PresenceTopic): online, retained, on every connection
	// and, not retained, every half keep-alive while it runs (on an
	// external broker the bridge sees no PINGREQ: this is how it hears
	// from a device that has nothing else to say); offline, retained,
	// when it closes, and through its Will, which the broker publishes
	// when the connection ends otherwise (a crash, a network cut, the
	// keep-alive expired). Without it, only the device's other messages
	// tell the bridge of an external broker that it is there.
	NoPresence bool
}

// CommandHandler answers one command: the state value and outputs.
type CommandHandler func(ctx context.Context, d *Device, f *ontology.Function, args []string) (value string, outputs []string)

// Device is a running virtual device.
type Device struct {
	cfg   Config
	model *ontology.Device // bound to the UUID
	log   *slog.Logger
	tr    client.Transport

	mu    sync.Mutex
	state map[string]string // actuator state per command topic
	boot  chan bootAnswer
	// reconnected is signalled when the connection came back (and its
	// subscriptions with it): a bootstrap answer may have been lost.
	reconnected chan struct{}
	// refused gets the broker's refusal of the device's credentials on a
	// reconnect (client.Config.OnRefused): Serve ends with it.
	refused     chan error
	connections atomic.Uint64
	bootCorr    []byte
	// session is the word of this device's presence announcements and
	// of its Will (wire.Presence); "" with NoPresence.
	session string

	commandTopics map[string][]*ontology.Function
	mup           *mupDevice
	mupv1         *mupV1 // EnableMUPv1
	e2e           *E2EEndpoint

	// Commands in hand (under mu): running handlers, at most
	// MaxInFlightCommands; waiting, at most MaxWaitingCommands, oldest first.
	running int
	waiting []pendingCommand

	// life is the device's lifetime: Close cancels it, which ends the
	// command handlers' contexts, telemetry and the E2E worker.
	life context.Context
	end  context.CancelFunc
	// workers are the goroutines the device owns (command handlers,
	// telemetry, the E2E worker); closed (under mu) stops new ones; Close
	// waits for them.
	workers   sync.WaitGroup
	closed    bool
	closeOnce sync.Once

	Registered atomic.Bool
	Commands   atomic.Uint64 // commands handled
	Errors     atomic.Uint64 // commands answered with the error state
	// Dropped counts commands never handled: received while every handler
	// was busy and MaxWaitingCommands were already waiting, or while the
	// device was closing.
	Dropped  atomic.Uint64
	Readings atomic.Uint64
}

type bootAnswer struct {
	payload string
	corr    []byte
}

// New parses the description and prepares the device.
func New(cfg Config) (*Device, error) {
	if !wire.ValidUUID(cfg.UUID) {
		return nil, fmt.Errorf("device uuid %q: want 1..128 letters, digits, '.', '_', ':', '-'", cfg.UUID)
	}
	tmpl := cfg.Template
	if tmpl == nil {
		var err error
		if tmpl, err = ontology.Parse(cfg.Description); err != nil {
			return nil, fmt.Errorf("description: %w", err)
		}
	}
	cfg.setDefaults()
	if cfg.FillUUID {
		cfg.Description = bytes.ReplaceAll(cfg.Description, []byte("%s"), []byte(cfg.UUID))
	}
	life, end := context.WithCancel(context.Background())
	d := &Device{
		cfg:           cfg,
		model:         tmpl.Instantiate(cfg.UUID),
		log:           cfg.Logger.With("uuid", cfg.UUID),
		state:         map[string]string{},
		boot:          make(chan bootAnswer, 4),
		reconnected:   make(chan struct{}, 1),
		refused:       make(chan error, 1),
		commandTopics: map[string][]*ontology.Function{},
		life:          life,
		end:           end,
	}
	for i := range d.model.Functions {
		f := &d.model.Functions[i]
		// The template topic decides between "%s" and "/<uuid>".
		topic := wire.CommandTopic(tmpl.Functions[i].Topic, cfg.UUID)
		d.commandTopics[topic] = append(d.commandTopics[topic], f)
	}
	return d, nil
}

// setDefaults fills in the documented defaults.
func (cfg *Config) setDefaults() {
	if cfg.ChunkSize == 0 {
		cfg.ChunkSize = DefaultChunkSize
	}
	if cfg.BootstrapTimeout <= 0 {
		cfg.BootstrapTimeout = DefaultBootstrapTimeout
	}
	if cfg.BootstrapAttempts <= 0 {
		cfg.BootstrapAttempts = 5
	}
	if cfg.MaxPayload <= 0 {
		cfg.MaxPayload = 64 << 10
	}
	if cfg.MaxInFlightCommands <= 0 {
		cfg.MaxInFlightCommands = DefaultMaxInFlightCommands
	}
	if cfg.MaxWaitingCommands <= 0 {
		cfg.MaxWaitingCommands = DefaultMaxWaitingCommands
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Protocol == "" {
		cfg.Protocol = client.MQTT5
	}
}

// NewRaw prepares a device that publishes cfg.Description as it is, even
// when it is no valid description, and has no commands or sensors: for
// testing how a bridge handles bad input.
func NewRaw(cfg Config) (*Device, error) {
	if !wire.ValidUUID(cfg.UUID) {
		return nil, fmt.Errorf("device uuid %q: want 1..128 letters, digits, '.', '_', ':', '-'", cfg.UUID)
	}
	good, err := New(Config{Description: []byte(rawPlaceholder), UUID: cfg.UUID})
	if err != nil {
		return nil, err
	}
	raw := cfg
	if raw.BootstrapAttempts <= 0 {
		raw.BootstrapAttempts = 1 // a refused description is the expected outcome
	}
	raw.setDefaults()
	good.cfg = raw
	good.log = raw.Logger.With("uuid", cfg.UUID)
	good.commandTopics = map[string][]*ontology.Function{}
	good.model.Sensors = nil
	return good, nil
}

// rawPlaceholder is the smallest valid description, behind NewRaw devices.
const rawPlaceholder = `{"@context": {"o": "http://www.onem2m.org/ontology/Base_Ontology/base_ontology#", "m": "http://yang-netconf-mqtt#"},
 "@graph": [{"@id": "m:d", "@type": "o:Device", "o:hasThingProperty": {"@id": "m:deviceUuid"}},
            {"@id": "m:deviceUuid", "@type": "o:ThingProperty", "o:hasValue": "%s"}]}`

// UUID returns the device's UUID.
func (d *Device) UUID() string { return d.cfg.UUID }

// Model returns the device model bound to its UUID.
func (d *Device) Model() *ontology.Device { return d.model }

// Connect dials the broker and subscribes to the bootstrap answer topics
// (and the E2E channel's). The command topics follow once the bridge has
// registered the device: a broker with an ACL from the descriptions
// grants them only then.
func (d *Device) Connect(ctx context.Context) error {
	var will *client.Message
	if !d.cfg.NoPresence {
		d.session = rand.Text()[:16]
		will = &client.Message{Topic: wire.PresenceTopic(d.cfg.UUID), Payload: wire.Presence{Session: d.session}.Encode()}
	}
	tr, err := client.Dial(ctx, client.Config{
		Will:        will,
		WillRetain:  true,
		KeepAlive:   d.cfg.KeepAlive,
		URL:         d.cfg.BrokerURL,
		Credentials: d.cfg.Credentials,
		ClientID:    wire.DeviceClientID(d.cfg.UUID),
		Protocol:    d.cfg.Protocol,
		OnMessage:   d.onMessage,
		Logger:      d.log,
		// A device gets a few commands at a time; paho reserves a queue
		// of Receive Maximum entries (512 KiB at the default 65535).
		ReceiveMaximum: deviceReceiveMaximum,
		// The broker may alias topics towards the device (MQTT 5): MUP
		// slices then carry a 3-byte alias instead of their topic.
		AcceptTopicAliases: 16,
		OnRefused: func(err error) {
			select {
			case d.refused <- err:
			default:
			}
		},
		OnReconnect: func() {
			if d.connections.Add(1) == 1 {
				return // the first connection (the client calls this after each)
			}
			d.log.Debug("mqtt reconnected")
			d.spawn(func() { d.announce(true) })
			select {
			case d.reconnected <- struct{}{}:
			default:
			}
		},
	})
	if err != nil {
		return err
	}
	d.tr = tr
	topics := []string{
		wire.BootstrapResponseTopic(wire.TopicCreate, d.cfg.UUID),
		wire.BootstrapResponseTopic(wire.TopicUpdate, d.cfg.UUID),
		wire.BootstrapResponseTopic(wire.TopicDelete, d.cfg.UUID),
		wire.BootstrapResponseTopic(wire.TopicRetrieve, d.cfg.UUID),
	}
	if d.e2e != nil {
		topics = append(topics, d.e2e.subscriptions()...)
	}
	for _, t := range topics {
		if err := tr.Subscribe(ctx, t); err != nil {
			_ = tr.Close(context.Background())
			return fmt.Errorf("subscribe %s: %w", t, err)
		}
	}
	d.announce(true)
	if d.session != "" {
		d.spawn(d.heartbeat)
	}
	return nil
}

// heartbeat announces the device online every half keep-alive until it
// closes (Config.NoPresence), at QoS 0 and not retained: the connection's
// retained announcement already says it.
func (d *Device) heartbeat() {
	every := d.cfg.KeepAlive
	if every <= 0 {
		every = client.DefaultKeepAlive
	}
	t := time.NewTicker(every / 2)
	defer t.Stop()
	m := client.Message{Topic: wire.PresenceTopic(d.cfg.UUID), Payload: wire.Presence{Online: true, Session: d.session}.Encode()}
	for {
		select {
		case <-d.life.Done():
			return
		case <-t.C:
		}
		if !d.tr.Connected() {
			continue // the connection's own announcement comes when it is back
		}
		ctx, cancel := context.WithTimeout(d.life, answerTimeout)
		if err := d.tr.Publish(ctx, m, 0); err != nil {
			d.log.Debug("presence heartbeat not published", "err", err)
		}
		cancel()
	}
}

// announce publishes the device's presence, retained (see
// Config.NoPresence); a failure is logged: the next connection announces
// again, and the Will still says when the device is gone.
func (d *Device) announce(online bool) {
	if d.session == "" {
		return
	}
	ctx, cancel := context.WithTimeout(d.life, answerTimeout)
	if !online {
		// Close has ended the device's life already.
		ctx, cancel = context.WithTimeout(context.Background(), answerTimeout)
	}
	defer cancel()
	m := client.Message{Topic: wire.PresenceTopic(d.cfg.UUID), Payload: wire.Presence{Online: online, Session: d.session}.Encode()}
	if err := d.tr.PublishRetained(ctx, m); err != nil {
		d.log.Warn("presence not published", "online", online, "err", err)
	}
}

// ErrRefused is returned when the bridge answers ERROR;<reason>.
var ErrRefused = errors.New("bridge refused the description")

// Bootstrap publishes the description to yang/config/create in chunks and
// waits for OK, retrying with backoff when no answer comes. An ERROR answer
// stops the attempts.
func (d *Device) Bootstrap(ctx context.Context) error {
	return d.register(ctx, wire.TopicCreate)
}

// bootstrapTopic is where the device publishes for the shared bootstrap
// topic shared: its own twin of it, unless LegacyBootstrapTopics; with
// LegacyTopic, a create goes to MYNO's yang/config.
func (d *Device) bootstrapTopic(shared string) string {
	if d.cfg.LegacyTopic && shared == wire.TopicCreate {
		return wire.TopicLegacy
	}
	if d.cfg.LegacyBootstrapTopics || d.cfg.LegacyTopic {
		return shared
	}
	return wire.DeviceBootstrapTopic(shared, d.cfg.UUID)
}

// subscribeCommands subscribes to the command topics, once registered.
func (d *Device) subscribeCommands(ctx context.Context) error {
	for _, t := range slices.Sorted(maps.Keys(d.commandTopics)) {
		err := d.tr.Subscribe(ctx, t)
		switch {
		case err == nil:
		case errors.Is(err, client.ErrSubscribeRefused):
			return fmt.Errorf("registered, but the broker refused the command topic %s: %w", t, err)
		case ctx.Err() != nil:
			return err
		default:
			// The connection went (a broker restart, the device stopped
			// and resumed): the client subscribes again once it is back.
			d.log.Warn("command topic not subscribed yet; the client subscribes again on reconnect", "topic", t, "err", err)
		}
	}
	return nil
}

// Update replaces the description at the bridge (yang/config/update).
func (d *Device) Update(ctx context.Context) error { return d.register(ctx, wire.TopicUpdate) }

func (d *Device) register(ctx context.Context, topic string) error {
	wait := d.cfg.BootstrapTimeout
	for attempt := 1; attempt <= d.cfg.BootstrapAttempts; attempt++ {
		corr := make([]byte, 8)
		_, _ = rand.Read(corr)
		d.mu.Lock()
		d.bootCorr = corr
		d.mu.Unlock()
		drain(d.boot)
		select {
		case <-d.reconnected: // a reconnect before this attempt is no news
		default:
		}
		chunks := wire.SplitDescription(d.cfg.UUID, d.cfg.Description, d.cfg.ChunkSize)
		for i, c := range chunks {
			m := client.Message{Topic: d.bootstrapTopic(topic), Payload: c.Encode()}
			if i == len(chunks)-1 && d.cfg.Protocol == client.MQTT5 {
				m.ResponseTopic = wire.BootstrapResponseTopic(topic, d.cfg.UUID)
				m.CorrelationData = corr
			}
			if err := d.tr.Publish(ctx, m, 1); err != nil {
				return fmt.Errorf("bootstrap publish: %w", err)
			}
		}
		timer := time.NewTimer(wait)
		select {
		case a := <-d.boot:
			timer.Stop()
			switch {
			case a.payload == wire.AnswerOK:
				if err := d.subscribeCommands(ctx); err != nil {
					return err
				}
				d.Registered.Store(true)
				d.log.Info("device registered", "topic", d.bootstrapTopic(topic), "chunks", len(chunks), "attempt", attempt)
				if d.mup != nil {
					if d.mup.cfg.ServerKey == nil && d.mup.cfg.VendorCA != nil {
						if err := d.tr.Subscribe(ctx, wire.TopicUpdateServerCert); err != nil {
							d.log.Warn("subscribe to the update server certificate", "err", err)
						}
					}
					d.mup.reportVersion(ctx)
				}
				if d.mupv1 != nil {
					d.mupv1.reportVersion(ctx)
				}
				return nil
			case strings.HasPrefix(a.payload, wire.AnswerError):
				reason := strings.TrimPrefix(strings.TrimPrefix(a.payload, wire.AnswerError), ";")
				d.log.Error("bridge refused the description", "reason", reason)
				return fmt.Errorf("%w: %s", ErrRefused, reason)
			default:
				return fmt.Errorf("bootstrap: unexpected answer %q", a.payload)
			}
		case <-timer.C:
			d.log.Warn("no bootstrap answer, retrying", "attempt", attempt, "waited", wait)
			wait *= 2
		case <-d.reconnected:
			// The broker dropped the connection meanwhile (a restart, or
			// Mosquitto's dynamic-security plugin applying the device's
			// new role): the answer may be lost; ask again at once.
			timer.Stop()
			d.log.Info("reconnected while waiting for the bootstrap answer; sending again", "attempt", attempt)
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		}
	}
	return fmt.Errorf("bootstrap: no answer after %d attempts", d.cfg.BootstrapAttempts)
}

// Delete deregisters the device (yang/config/delete); it returns the answer.
func (d *Device) Delete(ctx context.Context) (string, error) { return d.ask(ctx, wire.TopicDelete) }

// Retrieve asks whether the bridge knows the device (yang/config/retrieve).
func (d *Device) Retrieve(ctx context.Context) (string, error) { return d.ask(ctx, wire.TopicRetrieve) }

func (d *Device) ask(ctx context.Context, topic string) (string, error) {
	drain(d.boot)
	m := client.Message{Topic: d.bootstrapTopic(topic), Payload: []byte(d.cfg.UUID)}
	if d.cfg.Protocol == client.MQTT5 {
		m.ResponseTopic = wire.BootstrapResponseTopic(topic, d.cfg.UUID)
		m.CorrelationData = make([]byte, 8)
		_, _ = rand.Read(m.CorrelationData)
		d.mu.Lock()
		d.bootCorr = m.CorrelationData
		d.mu.Unlock()
	}
	if err := d.tr.Publish(ctx, m, 1); err != nil {
		return "", err
	}
	select {
	case a := <-d.boot:
		return a.payload, nil
	case <-time.After(d.cfg.BootstrapTimeout):
		return "", fmt.Errorf("no answer on %s", topic)
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func drain(ch chan bootAnswer) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// Run connects, bootstraps, then serves until ctx ends.
func (d *Device) Run(ctx context.Context) error {
	if d.tr == nil {
		if err := d.Connect(ctx); err != nil {
			return err
		}
	}
	if err := d.Bootstrap(ctx); err != nil {
		d.Close()
		return err
	}
	return d.Serve(ctx)
}

// Serve answers commands (they are handled as they arrive once connected)
// and publishes readings until ctx ends, or until the broker refuses the
// device's credentials on a reconnect (an error saying so); then it
// unsubscribes and disconnects.
func (d *Device) Serve(ctx context.Context) error {
	defer d.Close()
	d.startTelemetry(ctx)
	select {
	case <-ctx.Done():
		return nil
	case err := <-d.refused:
		return fmt.Errorf("device %s: %w", d.cfg.UUID, err)
	}
}

// startTelemetry publishes readings until ctx ends or the device closes.
func (d *Device) startTelemetry(ctx context.Context) {
	if d.cfg.TelemetryInterval > 0 {
		d.spawn(func() { d.telemetry(ctx) })
	}
}

// spawn runs f on a goroutine the device owns: Close waits for it. Once
// Close has begun it runs nothing and reports false.
func (d *Device) spawn(f func()) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return false
	}
	d.workers.Add(1)
	go func() {
		defer d.workers.Done()
		f()
	}()
	return true
}

// Close stops taking commands, ends the running handlers' contexts and
// waits for them (their answers are still published, within
// answerTimeout), stops telemetry and the E2E worker and waits for them
// too, then unsubscribes from every topic and disconnects. Later calls do
// nothing. A command handler must not call Close: Close waits for it.
func (d *Device) Close() {
	d.closeOnce.Do(func() {
		d.mu.Lock()
		d.closed = true
		dropped := len(d.waiting)
		d.waiting = nil
		d.mu.Unlock()
		if dropped > 0 {
			d.Dropped.Add(uint64(dropped))
			d.log.Info("device closing: waiting commands dropped", "dropped", dropped)
		}
		d.end()
		d.workers.Wait()
		if d.tr == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if d.tr.Connected() {
			for t := range d.commandTopics {
				_ = d.tr.Unsubscribe(ctx, t)
			}
			// A clean DISCONNECT sends no Will: say it.
			d.announce(false)
		}
		_ = d.tr.Close(ctx)
	})
}

// onMessage dispatches an incoming message.
func (d *Device) onMessage(m client.Message) {
	if wire.IsBootstrapResponse(m.Topic, d.cfg.UUID) {
		d.mu.Lock()
		corr := d.bootCorr
		d.mu.Unlock()
		// An MQTT 5 request carries CorrelationData, which the bridge
		// copies: an answer without it, or with another, is for an
		// earlier attempt or not from the bridge.
		if d.cfg.Protocol == client.MQTT5 && corr != nil && !bytes.Equal(m.CorrelationData, corr) {
			d.log.Debug("bootstrap answer without this attempt's correlation data ignored")
			return
		}
		select {
		case d.boot <- bootAnswer{payload: string(m.Payload), corr: m.CorrelationData}:
		default:
		}
		return
	}
	if d.e2e != nil && strings.HasPrefix(m.Topic, d.e2e.cfg.Prefix+"/") {
		d.e2e.enqueue(m)
		return
	}
	if d.mup != nil && m.Topic == wire.TopicUpdateServerCert {
		d.mup.onServerCert(m)
		return
	}
	if d.mup != nil && strings.HasPrefix(m.Topic, d.mupTopicPrefix()) {
		d.mup.onSlice(m)
		return
	}
	if d.mupv1 != nil && m.Topic == d.mupv1.sliceTopic {
		d.mupv1.onSlice(m)
		return
	}
	funcs, ok := d.commandTopics[m.Topic]
	if !ok {
		return
	}
	d.onCommand(m, funcs)
}

// pendingCommand is a command received and not yet handled.
type pendingCommand struct {
	m     client.Message
	funcs []*ontology.Function
}

// onCommand hands a command to a handler goroutine, at most
// MaxInFlightCommands at once; while all are busy it waits in a queue of
// MaxWaitingCommands, and one beyond that is dropped unanswered, with a
// warning, and counted in Dropped (the bridge's request times out). The
// MQTT receive path never waits here, deliberately: when it did
// (back-pressure through QoS 1 acknowledgements and MQTT 5 Receive
// Maximum, §4.9), messages to the device behind a command (bootstrap
// answers, MUP slices, E2E) waited too, MQTT 3.1.1 has no flow control
// and paho.mqtt.golang would pile up a goroutine per message anyway, and
// the embedded broker (mochi-mqtt v2.7.9) stranded QoS 1 commands it held
// back for the Receive Maximum: 3 of 40 never arrived in a test that
// Mosquitto passed. Refusing with an answer is no option either: MYNO
// has no "busy" state a bridge would understand.
func (d *Device) onCommand(m client.Message, funcs []*ontology.Function) {
	c := pendingCommand{m: m, funcs: funcs}
	d.mu.Lock()
	switch {
	case d.closed:
		d.mu.Unlock()
		d.Dropped.Add(1)
		d.log.Debug("command dropped: device closing", "topic", m.Topic)
	case d.running < d.cfg.MaxInFlightCommands:
		d.running++
		d.workers.Add(1)
		d.mu.Unlock()
		go d.runCommands(c)
	case len(d.waiting) < d.cfg.MaxWaitingCommands:
		d.waiting = append(d.waiting, c)
		d.mu.Unlock()
	default:
		d.mu.Unlock()
		dropped := d.Dropped.Add(1)
		d.log.Warn("command dropped: every handler busy and the queue full", "topic", m.Topic,
			"in_flight", d.cfg.MaxInFlightCommands, "waiting", d.cfg.MaxWaitingCommands, "dropped", dropped)
	}
}

// runCommands handles c, then waiting commands until none is left or the
// device closes; it is one of the MaxInFlightCommands handler goroutines.
func (d *Device) runCommands(c pendingCommand) {
	defer d.workers.Done()
	for {
		d.command(c.m, c.funcs)
		d.mu.Lock()
		if len(d.waiting) == 0 || d.closed {
			d.running--
			d.mu.Unlock()
			return
		}
		c = d.waiting[0]
		d.waiting[0] = pendingCommand{}
		d.waiting = d.waiting[1:]
		d.mu.Unlock()
	}
}

// WaitingCommands is how many received commands wait for a handler now.
func (d *Device) WaitingCommands() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.waiting)
}

func (d *Device) mupTopicPrefix() string { return firmwareTopic(d) }

package bridge

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/myno-bridge/myno/mqtt/access"
	v1 "github.com/myno-bridge/myno/mup/v1"
	"github.com/myno-bridge/myno/ontology"
	"github.com/myno-bridge/myno/wire"
	"github.com/myno-bridge/myno/yang"
)

// registry owns the registered devices, the modules they share (one per
// shape) and the telemetry topics, under one lock, and keeps them on disk.
// It knows neither NETCONF nor MQTT: register and unregister return a
// change, which the bridge applies (announce or withdraw modules,
// subscribe or unsubscribe topics).
type registry struct {
	parser    *ontology.Parser
	templates *templateCache // parsed templates of the descriptions seen (templatecache.go)
	file      string         // the registry's snapshot file in the data directory
	saver     *saver
	store     *store // nil for a registry that is never saved
	limits    shapeLimits

	mu        sync.Mutex
	devices   map[string]*device
	modules   map[string]*moduleEntry      // by shape
	telemetry map[string]sensorRef         // topic -> sensor
	owners    map[string]string            // every device topic -> its device
	images    map[access.ImageTopic]string // firmware image topic -> its device
	// invalid holds saved devices that no longer pass the start-up checks
	// (a lower --max-description-bytes, a stricter parser): kept and
	// written back as they were, never served, shown in <get>; the
	// operator decides (the device registers again, or is deleted).
	invalid map[string]invalidDevice
	// dirty: the devices changed since the last save, which the next
	// save writes (issue 12: a save used to rewrite the whole registry).
	dirty map[string]bool
	// restore is what the store held at open, for load.
	restore []persistedDevice
	// shapeBytes is the bytes of the descriptions of all modules' shapes
	// (moduleEntry.bytes); refusedShapes counts new shapes refused for
	// the limits.
	shapeBytes    int
	refusedShapes uint64
}

// shapeLimits bound the distinct shapes, each a module the bridge keeps
// (Config.MaxShapes, Config.MaxShapeBytes); 0 is no limit.
type shapeLimits struct {
	count, bytes int
}

// invalidDevice is a saved registration the bridge could not restore.
type invalidDevice struct {
	saved  persistedDevice
	reason string
}

// device is a registered device.
type device struct {
	UUID         string
	description  storedDescription // Description() rebuilds it
	RegisteredAt time.Time
	model        *ontology.Device // bound to the UUID
	template     *ontology.Device
	module       *moduleEntry
	lastSeen     time.Time
	firmware     string
	readings     map[string]reading // by sensor (YANG name)
	topics       []string           // telemetry subscriptions
	owns         access.DeviceTopics
}

// Description is the description the device registered with.
func (d *device) Description() []byte { return d.description.bytes(d.UUID) }

type reading struct {
	value string
	at    time.Time
}

// moduleEntry is a generated module and the devices that use it.
type moduleEntry struct {
	mod     *yang.Module
	devices map[string]bool
	bytes   int // the description's size, counted against --max-shape-bytes
}

// sensorRef says which device and sensor a telemetry topic belongs to.
type sensorRef struct {
	uuid   string
	sensor int // index into the model's Sensors and the module's Notifications
}

// change is what a registration or a removal changed, for the bridge to
// apply outside the registry's lock.
type change struct {
	module      *yang.Module // the device's module
	announce    bool         // module is new: no device used it before
	withdraw    *yang.Module // a module no device uses any more
	subscribe   []string     // the device's telemetry topics now
	unsubscribe []string     // telemetry topics no device uses any more
	category    string
	// previous is the registration this one replaced, for a rollback;
	// nil for a new device.
	previous *previousRegistration
}

// previousRegistration is what a device's registration was.
type previousRegistration struct {
	description []byte
	at          time.Time
	firmware    string
}

// ErrTopicTaken is wrapped by the refusal of a description that claims a
// topic another registered device uses.
var ErrTopicTaken = errors.New("topic taken")

// ErrShapeLimit is wrapped by the refusal of a description of a new shape
// beyond --max-shapes or --max-shape-bytes.
var ErrShapeLimit = errors.New("new device shape refused")

// newRegistry is an empty registry of dir, neither read nor saved.
func newRegistry(dir string, parser *ontology.Parser) *registry {
	snap, _ := storePaths(dir)
	return &registry{parser: parser, templates: newTemplateCache(maxCachedTemplates), file: snap,
		devices: map[string]*device{}, modules: map[string]*moduleEntry{}, telemetry: map[string]sensorRef{},
		owners: map[string]string{}, images: map[access.ImageTopic]string{}, invalid: map[string]invalidDevice{}, dirty: map[string]bool{}}
}

// openRegistry opens the registry of dir (registrystore.go): it takes the
// data directory's lock, removes the temporary files a crash left,
// imports registry.json the first time, and reads the saved devices,
// which load returns.
func openRegistry(dir string, parser *ontology.Parser, limits shapeLimits, log *slog.Logger) (*registry, error) {
	r := newRegistry(dir, parser)
	r.limits = limits
	var err error
	if r.store, err = openStore(dir, log); err != nil {
		return nil, err
	}
	r.restore = r.store.state.list()
	r.saver = newSaver(r.write)
	return r, nil
}

// close stops the background writer, after the write under way, and
// lets go of the data directory.
func (r *registry) close() {
	r.saver.close()
	r.store.close()
}

// register adds or replaces a device: parse, generate or share the module
// of its shape, bind its telemetry topics. It does not persist: save does.
func (r *registry) register(uuid string, desc []byte, at time.Time) (change, error) {
	sd := storeDescription(desc, uuid)
	tmpl, err := r.parseOrReuse(sd, desc, uuid)
	if err != nil {
		return change{}, err
	}
	shape := tmpl.Shape()
	r.mu.Lock()
	me := r.modules[shape]
	if me == nil {
		// Checked before the module is generated too: a flood of new
		// shapes beyond the limits costs no generation.
		if err := r.shapeRoomLocked(uuid, len(desc)); err != nil {
			r.mu.Unlock()
			return change{}, err
		}
	}
	r.mu.Unlock()
	var generated *yang.Module
	if me == nil {
		// Generation is the expensive part; it runs outside the lock.
		if generated, err = yang.Generate(tmpl, yang.Options{}); err != nil {
			return change{}, err
		}
	}
	model := tmpl.Instantiate(uuid)
	now := time.Now().UTC()
	r.mu.Lock()
	defer r.mu.Unlock()
	// A reading topic tells the bridge which device a reading is from: a
	// description may not claim another device's (issue 11, telemetry
	// theft); it used to take the readings over.
	// Nor may it claim another device's command or firmware topic, or
	// name one of its own that another device reads from: the broker's
	// ACL gives each device exactly the topics of its description.
	topics := topicsOf(uuid, tmpl, model)
	for _, t := range all(topics) {
		if owner, ok := r.owners[t]; ok && owner != uuid {
			return change{}, fmt.Errorf("%w: topic %q belongs to device %s", ErrTopicTaken, t, owner)
		}
	}
	if cur := r.modules[shape]; cur != nil {
		me = cur // generated concurrently, or shared with other devices
	} else {
		if err := r.shapeRoomLocked(uuid, len(desc)); err != nil {
			return change{}, err
		}
		if me == nil {
			me = &moduleEntry{mod: generated, devices: map[string]bool{}, bytes: len(desc)}
		}
		r.modules[shape] = me
		r.shapeBytes += me.bytes
	}
	ch := change{module: me.mod, announce: len(me.devices) == 0, category: tmpl.Category}
	me.devices[uuid] = true
	d := &device{UUID: uuid, description: sd, RegisteredAt: at.UTC(), model: model, template: tmpl,
		module: me, lastSeen: now, readings: map[string]reading{}, owns: topics}
	old := r.devices[uuid]
	if old != nil { // an update: replace the old registration
		ch.previous = &previousRegistration{description: old.Description(), at: old.RegisteredAt, firmware: old.firmware}
		d.firmware = old.firmware
		r.dropTelemetryLocked(old)
		r.disownLocked(old)
		if old.module != me {
			ch.withdraw = r.detachLocked(old)
		}
		// The same shape again (a device rebooted and bootstrapped anew):
		// the module stays, only the old telemetry goes.
	}
	r.devices[uuid] = d
	delete(r.invalid, uuid)
	r.dirty[uuid] = true
	r.ownLocked(d)
	ch.subscribe = r.bindTelemetryLocked(d)
	if old != nil {
		ch.unsubscribe = r.unusedLocked(old.topics)
	}
	return ch, nil
}

// shapeRoomLocked says whether device uuid may bring a new shape with a
// description of n bytes. The shape the device leaves, when no other
// device has it, makes room.
func (r *registry) shapeRoomLocked(uuid string, n int) error {
	count, bytes := len(r.modules), r.shapeBytes
	if old := r.devices[uuid]; old != nil && len(old.module.devices) == 1 {
		count, bytes = count-1, bytes-old.module.bytes
	}
	var err error
	switch {
	case r.limits.count > 0 && count+1 > r.limits.count:
		err = fmt.Errorf("%w: %d shapes are registered, the most the bridge keeps (--max-shapes %d), devices of a registered shape are still accepted",
			ErrShapeLimit, count, r.limits.count)
	case r.limits.bytes > 0 && bytes+n > r.limits.bytes:
		err = fmt.Errorf("%w: its description (%d bytes) would bring those of all shapes to %d bytes, over --max-shape-bytes %d, devices of a registered shape are still accepted",
			ErrShapeLimit, n, bytes+n, r.limits.bytes)
	}
	if err != nil {
		r.refusedShapes++
	}
	return err
}

// topicsOf lists the topics a device's description names, bound to it:
// its commands (wire.CommandTopic), its firmware image topics and their
// acks, its readings.
func topicsOf(uuid string, tmpl, model *ontology.Device) deviceTopics {
	var t deviceTopics
	for i := range tmpl.Functions {
		if tmpl.Functions[i].Topic != "" {
			t.Commands = append(t.Commands, wire.CommandTopic(tmpl.Functions[i].Topic, uuid))
		}
		if model.Functions[i].InputTopic == "" {
			continue
		}
		if tmpl.Functions[i].Method == v1.MethodPubUpdateImage {
			// MUP v1 (MUP-V1.md §2.3): the input data point + "/<uuid>",
			// as MYNO's 2020 bridge makes every topic; acks on "/response".
			img := wire.CommandTopic(tmpl.Functions[i].InputTopic, uuid)
			t.Images = append(t.Images, access.ImageTopic{Topic: img, Ack: wire.MUPv1AckTopic(img)})
			continue
		}
		img := model.Functions[i].InputTopic
		t.Images = append(t.Images, access.ImageTopic{Topic: img, Ack: wire.FirmwareAckTopic(img)})
	}
	for _, s := range model.Sensors {
		if s.Topic != "" {
			t.Readings = append(t.Readings, s.Topic)
		}
	}
	return t
}

// deviceTopics are a device's topics.
type deviceTopics = access.DeviceTopics

// all lists every topic of t, the image topics' acks included.
func all(t deviceTopics) []string {
	out := slices.Concat(t.Commands, t.Readings)
	for _, img := range t.Images {
		out = append(out, img.Topic, img.Ack)
	}
	return out
}

// ownLocked records d's topics as its own.
func (r *registry) ownLocked(d *device) {
	for _, t := range all(d.owns) {
		r.owners[t] = d.UUID
	}
	for _, t := range d.owns.Images {
		r.images[t] = d.UUID
	}
}

// disownLocked forgets d's topics.
func (r *registry) disownLocked(d *device) {
	for _, t := range all(d.owns) {
		if r.owners[t] == d.UUID {
			delete(r.owners, t)
		}
	}
	for _, t := range d.owns.Images {
		if r.images[t] == d.UUID {
			delete(r.images, t)
		}
	}
}

// DeviceTopics returns a registered device's topics (access.Devices).
func (r *registry) DeviceTopics(uuid string) (access.DeviceTopics, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.devices[uuid]
	if d == nil {
		return access.DeviceTopics{}, false
	}
	return d.owns, true
}

// ImageTopics returns every registered device's firmware image topics
// (access.Devices), by topic.
func (r *registry) ImageTopics() []access.ImageTopic {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.SortedFunc(maps.Keys(r.images), func(a, b access.ImageTopic) int { return strings.Compare(a.Topic, b.Topic) })
}

// ownerOf is the device whose description names topic.
func (r *registry) ownerOf(topic string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	uuid, ok := r.owners[topic]
	return uuid, ok
}

// unregister removes a device, and its module once no device uses it.
func (r *registry) unregister(uuid string) (change, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.devices[uuid]
	if d == nil {
		// A device that could not be restored may still delete itself.
		_, invalid := r.invalid[uuid]
		delete(r.invalid, uuid)
		if invalid {
			r.dirty[uuid] = true
		}
		return change{}, invalid
	}
	delete(r.devices, uuid)
	r.dirty[uuid] = true
	r.dropTelemetryLocked(d)
	r.disownLocked(d)
	return change{module: d.module.mod, withdraw: r.detachLocked(d), unsubscribe: r.unusedLocked(d.topics)}, true
}

// detachLocked takes a device off its module. It returns the module to
// withdraw when no device uses it any more.
func (r *registry) detachLocked(d *device) *yang.Module {
	me := d.module
	delete(me.devices, d.UUID)
	if len(me.devices) > 0 {
		return nil
	}
	delete(r.modules, d.template.Shape())
	r.shapeBytes -= me.bytes
	return me.mod
}

// bindTelemetryLocked maps the device's output data point topics.
func (r *registry) bindTelemetryLocked(d *device) []string {
	d.topics = nil
	for i, s := range d.model.Sensors {
		if s.Topic == "" {
			continue
		}
		r.telemetry[s.Topic] = sensorRef{uuid: d.UUID, sensor: i}
		d.topics = append(d.topics, s.Topic)
	}
	return d.topics
}

// dropTelemetryLocked forgets the device's telemetry topics.
func (r *registry) dropTelemetryLocked(d *device) {
	for _, t := range d.topics {
		if ref, ok := r.telemetry[t]; ok && ref.uuid == d.UUID {
			delete(r.telemetry, t)
		}
	}
}

// unusedLocked lists the topics that no registered device reads from.
func (r *registry) unusedLocked(topics []string) []string {
	var out []string
	for _, t := range topics {
		if _, used := r.telemetry[t]; !used {
			out = append(out, t)
		}
	}
	return out
}

// lookupError says why an rpc has no device to go to.
type lookupError int

const (
	lookupOK             lookupError = iota
	lookupUnknownDevice              // no device with that UUID
	lookupNotImplemented             // the device's module is another, or lacks the function
)

// commandTopic is the topic template of function f of device uuid, served
// by module mod.
func (r *registry) commandTopic(uuid string, mod *yang.Module, f *ontology.Function) (string, lookupError) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.devices[uuid]
	if d == nil {
		return "", lookupUnknownDevice
	}
	if d.module.mod != mod {
		return "", lookupNotImplemented
	}
	i := functionIndex(d.template, f)
	if i < 0 {
		return "", lookupNotImplemented
	}
	return d.template.Functions[i].Topic, lookupOK
}

// functionIndex finds the function f of a module's template in the
// template of another device of the same shape (same order, same IRIs),
// or -1.
func functionIndex(tmpl *ontology.Device, f *ontology.Function) int {
	for i := range tmpl.Functions {
		if tmpl.Functions[i].IRI == f.IRI {
			return i
		}
	}
	return -1
}

// touch records that a device was heard from.
func (r *registry) touch(uuid string, at time.Time) {
	r.mu.Lock()
	if d := r.devices[uuid]; d != nil {
		d.lastSeen = at
	}
	r.mu.Unlock()
}

// lastSeenOf is when a registered device was last heard from.
func (r *registry) lastSeenOf(uuid string) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d := r.devices[uuid]; d != nil {
		return d.lastSeen
	}
	return time.Time{}
}

// lastSeenAll is when each registered device was last heard from.
func (r *registry) lastSeenAll() map[string]time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]time.Time, len(r.devices))
	for uuid, d := range r.devices {
		out[uuid] = d.lastSeen
	}
	return out
}

// presenceInfo is what a device-event notification says of a registered
// device.
type presenceInfo struct {
	module, firmware string
	lastSeen         time.Time
}

func (r *registry) presenceInfo(uuid string) (presenceInfo, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.devices[uuid]
	if d == nil {
		return presenceInfo{}, false
	}
	return presenceInfo{module: d.module.mod.Name, firmware: d.firmware, lastSeen: d.lastSeen}, true
}

// notification is a reading to send as a NETCONF notification.
type notification struct {
	uuid      string
	namespace string
	name      string // the notification's YANG name
}

// bound keeps the topics a registered device's sensor is bound to, in
// order, once each.
func (r *registry) bound(topics []string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(topics))
	seen := make(map[string]bool, len(topics))
	for _, t := range topics {
		if _, ok := r.telemetry[t]; ok && !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}

// record keeps a reading of a telemetry topic; false when no device
// publishes on it.
func (r *registry) record(topic string, value []byte, at time.Time) (notification, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ref, ok := r.telemetry[topic]
	if !ok {
		return notification{}, false
	}
	d := r.devices[ref.uuid]
	if d == nil {
		return notification{}, false
	}
	n := d.module.mod.Notifications[ref.sensor]
	d.readings[n.Name] = reading{value: string(value), at: at}
	d.lastSeen = at
	return notification{uuid: ref.uuid, namespace: d.module.mod.Namespace, name: n.Name}, true
}

// setFirmware records the firmware version a device reports; previous
// is the one it had ("": none known). known is false for an unregistered
// device.
func (r *registry) setFirmware(uuid, version string) (previous string, changed, known bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.devices[uuid]
	if d == nil {
		return "", false, false
	}
	if d.firmware == version {
		return version, false, true
	}
	previous, d.firmware = d.firmware, version
	r.dirty[uuid] = true
	return previous, true, true
}

// holds reports whether the registry has exactly this registration.
func (r *registry) holds(uuid string, at time.Time, desc []byte) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.devices[uuid]
	return d != nil && d.RegisteredAt.Equal(at) && d.description.equal(desc, uuid)
}

// describes reports whether uuid is registered with desc (whenever).
func (r *registry) describes(uuid string, desc []byte) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.devices[uuid]
	return d != nil && d.description.equal(desc, uuid)
}

// uuids lists the registered devices, sorted.
func (r *registry) uuids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(maps.Keys(r.devices))
}

// moduleOf is the module name of a registered device.
func (r *registry) moduleOf(uuid string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.devices[uuid]
	if d == nil {
		return "", false
	}
	return d.module.mod.Name, true
}

// moduleServing returns the module of the device uuid, if it is registered.
func (r *registry) moduleServing(uuid string) *yang.Module {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d := r.devices[uuid]; d != nil {
		return d.module.mod
	}
	return nil
}

// counts is the number of devices and modules.
func (r *registry) counts() (devices, modules int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.devices), len(r.modules)
}

// shapeUsage is the registry's use of its shape limits, for <get>.
type shapeUsage struct {
	devices, shapes, bytes int
	limits                 shapeLimits
	refused                uint64
}

func (r *registry) shapeUsage() shapeUsage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return shapeUsage{devices: len(r.devices), shapes: len(r.modules), bytes: r.shapeBytes,
		limits: r.limits, refused: r.refusedShapes}
}

// deviceState is a copy of one device's state data, taken under the lock
// and rendered outside it.
type deviceState struct {
	uuid, category, description string
	registeredAt, lastSeen      time.Time
	firmware                    string
	readings                    []sensorReading // in the module's notification order
}

type sensorReading struct {
	sensor string
	reading
}

// snapshot copies the state of the devices of module mod, sorted by UUID:
// all of them, or only those of the uuids in only when it is not nil (a
// <get> that asks for some devices by key). It holds the lock only to
// copy a few fields per device.
func (r *registry) snapshot(mod *yang.Module, only []string) []deviceState {
	r.mu.Lock()
	var out []deviceState
	for _, me := range r.modules {
		if me.mod != mod {
			continue
		}
		copyOf := func(d *device) deviceState {
			s := deviceState{uuid: d.UUID, category: d.model.Category, description: d.model.Description,
				registeredAt: d.RegisteredAt, lastSeen: d.lastSeen, firmware: d.firmware}
			for _, n := range mod.Notifications {
				if rd, ok := d.readings[n.Name]; ok {
					s.readings = append(s.readings, sensorReading{sensor: n.Name, reading: rd})
				}
			}
			return s
		}
		if only != nil {
			for _, uuid := range only {
				if _, ok := me.devices[uuid]; ok && !slices.ContainsFunc(out, func(s deviceState) bool { return s.uuid == uuid }) {
					out = append(out, copyOf(r.devices[uuid]))
				}
			}
			break
		}
		out = make([]deviceState, 0, len(me.devices))
		for uuid := range me.devices {
			out = append(out, copyOf(r.devices[uuid]))
		}
		break
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b deviceState) int { return strings.Compare(a.uuid, b.uuid) })
	return out
}

// persisted is the format of registry.json (registryVersion 2), which
// the bridge imports (registrystore.go). Devices of one shape share one
// stored description.
type persisted struct {
	Version      int               `json:"version"`
	Descriptions map[string]string `json:"descriptions"` // by shape
	Devices      []persistedDevice `json:"devices"`
}

// persistedDevice is a saved device; its description is stored once per
// shape.
type persistedDevice struct {
	UUID         string    `json:"uuid"`
	RegisteredAt time.Time `json:"registeredAt"`
	Shape        string    `json:"shape"`
	Firmware     string    `json:"firmware,omitempty"`
	Description  string    `json:"-"`
}

// load returns the devices saved when the registry was opened, once.
func (r *registry) load() ([]persistedDevice, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.restore
	r.restore = nil
	return out, nil
}

// registryVersion is the version of registry.json's format.
const registryVersion = 2

// keepInvalid records a saved device that failed to register at start.
// It stays in the store as it was.
func (r *registry) keepInvalid(p persistedDevice, reason string) {
	r.mu.Lock()
	r.invalid[p.UUID] = invalidDevice{saved: p, reason: reason}
	r.mu.Unlock()
}

// invalidDevices lists the saved devices that could not be restored.
func (r *registry) invalidDevices() []invalidDevice {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]invalidDevice, 0, len(r.invalid))
	for _, d := range r.invalid {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].saved.UUID < out[j].saved.UUID })
	return out
}

// restoreFirmware sets a restored device's last reported version.
func (r *registry) restoreFirmware(uuid, version string) {
	if version != "" {
		r.setFirmware(uuid, version)
	}
}

// save persists the registry; it returns once the change is on disk.
func (r *registry) save() error { return r.saver.save() }

// write saves the devices changed since the last save, in one journal
// record (store.commit): what changed, not the whole registry. A device
// whose saved record is already the same (a restored one, a firmware
// version set back) costs nothing. After a failed write the devices stay
// to be written by the next one.
func (r *registry) write() error {
	r.mu.Lock()
	dirty := r.dirty
	r.dirty = map[string]bool{}
	var rec journalRecord
	for _, uuid := range slices.Sorted(maps.Keys(dirty)) {
		have, had := r.store.state.devices[uuid]
		var want persistedDevice
		var desc func() string
		if d := r.devices[uuid]; d != nil {
			want = persistedDevice{UUID: uuid, RegisteredAt: d.RegisteredAt, Shape: d.template.Shape(), Firmware: d.firmware}
			desc = func() string { return string(d.Description()) }
		} else if inv, ok := r.invalid[uuid]; ok {
			want = inv.saved
			want.Description = ""
			desc = func() string { return inv.saved.Description }
		} else {
			if had {
				rec.Delete = append(rec.Delete, uuid)
			}
			continue
		}
		if had && equalSaved(have, want) {
			continue
		}
		rec.Put = append(rec.Put, want)
		if _, stored := r.store.state.descriptions[want.Shape]; !stored {
			if _, given := rec.Descriptions[want.Shape]; !given {
				if rec.Descriptions == nil {
					rec.Descriptions = map[string]string{}
				}
				rec.Descriptions[want.Shape] = desc()
			}
		}
	}
	r.mu.Unlock()
	err := r.store.commit(rec)
	if err != nil {
		r.mu.Lock()
		for uuid := range dirty {
			r.dirty[uuid] = true
		}
		r.mu.Unlock()
	}
	return err
}

// saver writes the registry in the background and lets callers wait until
// their change is on disk; changes that arrive while a write is under way
// go out together in the next one (group commit). Its goroutine ends with
// close, which waits for it.
type saver struct {
	mu        sync.Mutex
	cond      *sync.Cond
	requested uint64
	saved     uint64
	err       error
	closed    bool // no more saves accepted
	stopped   bool // the loop has written everything and ended
	write     func() error
	done      chan struct{}
}

func newSaver(write func() error) *saver {
	s := &saver{write: write, done: make(chan struct{})}
	s.cond = sync.NewCond(&s.mu)
	go s.loop()
	return s
}

// errSaverClosed is the error of a save requested after close.
var errSaverClosed = errors.New("registry closed")

// save returns once a write that includes the caller's change has finished.
func (s *saver) save() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errSaverClosed
	}
	s.requested++
	mine := s.requested
	s.cond.Broadcast()
	for s.saved < mine && !s.stopped {
		s.cond.Wait()
	}
	return s.err
}

func (s *saver) loop() {
	defer close(s.done)
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		for s.saved == s.requested && !s.closed {
			s.cond.Wait()
		}
		if s.saved == s.requested { // closed, and nothing left to write
			s.stopped = true
			s.cond.Broadcast()
			return
		}
		target := s.requested
		s.mu.Unlock()
		err := s.write()
		s.mu.Lock()
		s.saved, s.err = target, err
		s.cond.Broadcast()
	}
}

// close writes what was requested before it, then stops the goroutine.
func (s *saver) close() {
	s.mu.Lock()
	s.closed = true
	s.cond.Broadcast()
	s.mu.Unlock()
	<-s.done
}

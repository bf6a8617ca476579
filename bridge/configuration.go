package bridge

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/myno-bridge/myno/internal/atomicfile"
	"github.com/myno-bridge/myno/netconf"
	"github.com/myno-bridge/myno/wire"
	"github.com/myno-bridge/myno/yang"
)

// The configuration devices keep (issue 20). Each module with
// configuration functionalities has a config true container (yang
// package, configuration.go): per device, the inputs of each operation.
// The NETCONF server holds running and candidate (netconf/datastore.go);
// the configurator stores running in the data directory and keeps the
// devices to it:
//
//   - a change of running calls the device's configuration operations
//     with the new values, device by device, all or nothing per device:
//     when one call fails, those that took are called again with the
//     previous values, and the device's entry in running stays as it was;
//   - a device that is offline, or not registered with the module, has
//     nothing called: its values wait, and are pending;
//   - when a device comes back (online again, or registered again) its
//     whole intended configuration is applied again, since a device that
//     restarted may have lost it.
//
// Devices cannot be read back, so running is the intended configuration;
// devices/device/configuration-state says what was applied, when, and
// the device's answer.

// configurationFile holds running (and the configuration before a
// confirmed commit not confirmed yet), in the data directory.
const configurationFile = "configuration.xml"

// configurationNamespace is the namespace of the file's own elements.
const configurationNamespace = "urn:myno:bridge:configuration"

// configWorkers bounds the devices configured at once.
const configWorkers = 16

// deviceKey is one device's entry in one module's configuration.
type deviceKey struct{ namespace, uuid string }

// opState is what was applied of one configuration operation.
type opState struct {
	status    string // yang.ConfigApplied, ConfigPending, ConfigFailed
	attempted time.Time
	applied   time.Time
	answer    string
	err       string
	// held is the operation's container as the device last took it:
	// what NMDA's operational shows.
	held *netconf.Element
}

// configurator applies running to the devices (see above).
type configurator struct {
	b    *Bridge
	path string
	log  *slog.Logger

	// devices serializes the calls to one device: an edit and a
	// reconciliation never interleave.
	devices keyedMutex

	mu sync.Mutex
	// intended is each device's entry in running as the devices are
	// to follow it: set by Apply as it goes, before running takes it.
	intended map[deviceKey]*netconf.Element
	// configured counts each uuid's entries in intended: a device that
	// comes back is looked up without a walk over the fleet.
	configured map[string]int
	state      map[string]map[string]map[string]*opState // uuid → module namespace → operation → state

	// queue holds the devices to reconcile; wake tells the worker.
	queue map[string]bool
	wake  chan struct{}
}

func newConfigurator(b *Bridge) *configurator {
	return &configurator{b: b, path: filepath.Join(b.cfg.DataDir, configurationFile), log: b.log,
		intended: map[deviceKey]*netconf.Element{}, configured: map[string]int{}, state: map[string]map[string]map[string]*opState{},
		queue: map[string]bool{}, wake: make(chan struct{}, 1)}
}

// load reads the stored configuration: running, and the rollback
// configuration when a confirmed commit was pending.
func (c *configurator) load() (*netconf.Configuration, error) {
	cfg := &netconf.Configuration{Save: c.save, Apply: c.apply, Check: c.check, Operational: c.operational}
	data, err := os.ReadFile(c.path)
	if errors.Is(err, os.ErrNotExist) {
		return cfg, nil
	}
	if err != nil {
		return nil, err
	}
	// The bridge's own file, bounded by --max-configured-devices and
	// maxConfigValueBytes when it was written: no limit of a message.
	root, err := netconf.ParseElement(data, netconf.Limits{MaxElements: 1 << 30, MaxDocumentAttributes: 1 << 30})
	if err != nil {
		return nil, fmt.Errorf("the stored configuration %s: %w", c.path, err)
	}
	if root.Name != (xml.Name{Space: configurationNamespace, Local: "stored-configuration"}) {
		return nil, fmt.Errorf("the stored configuration %s: not a stored-configuration of %s", c.path, configurationNamespace)
	}
	if e := root.Child(configurationNamespace, "running"); e != nil {
		cfg.Running = e.Children
	}
	if e := root.Child(configurationNamespace, "rollback"); e != nil {
		cfg.Rollback = e.Children
		if cfg.Rollback == nil {
			cfg.Rollback = []*netconf.Element{}
		}
	}
	return cfg, nil
}

// save stores running and the rollback configuration (Configuration.Save).
func (c *configurator) save(running, rollback []*netconf.Element) error {
	doc := netconf.NewNode(configurationNamespace, "stored-configuration", netconf.NewNode(configurationNamespace, "running", running...))
	if rollback != nil {
		doc.Children = append(doc.Children, netconf.NewNode(configurationNamespace, "rollback", rollback...))
	}
	return atomicfile.Write(c.path, []byte(xml.Header+doc.String()+"\n"), 0o600)
}

// start takes running as the server holds it at start and runs the
// reconciliation worker.
func (c *configurator) start(running []*netconf.Element) {
	for k, e := range entriesOf(running) {
		c.setIntended(k, e)
	}
	c.b.run.goDo(func() { c.reconcileLoop(c.b.ctx) })
}

// entriesOf maps each device entry of configuration data.
func entriesOf(data []*netconf.Element) map[deviceKey]*netconf.Element {
	out := map[deviceKey]*netconf.Element{}
	for _, root := range data {
		if root.Name.Local != yang.ConfigContainer {
			continue
		}
		ns := root.Name.Space
		for _, e := range root.Children {
			if e.Name.Local != yang.ConfigList {
				continue
			}
			if k := e.Child(ns, yang.ConfigKey); k != nil {
				out[deviceKey{ns, k.Text}] = e
			}
		}
	}
	return out
}

// apply makes the devices follow running's change (Configuration.Apply).
func (c *configurator) apply(ctx context.Context, old, next []*netconf.Element) ([]*netconf.Element, error) {
	before, after := entriesOf(old), entriesOf(next)
	var changed []deviceKey
	for k, e := range after {
		if b, ok := before[k]; !ok || !sameElement(b, e) {
			changed = append(changed, k)
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			changed = append(changed, k)
		}
	}
	sort.Slice(changed, func(i, j int) bool {
		return changed[i].uuid < changed[j].uuid || changed[i].uuid == changed[j].uuid && changed[i].namespace < changed[j].namespace
	})
	errs := make([]*netconf.RPCError, len(changed))
	keptEntries := make([]*netconf.Element, len(changed))
	sem := make(chan struct{}, configWorkers)
	var wg sync.WaitGroup
	for i, k := range changed {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			keptEntries[i], errs[i] = c.applyDevice(ctx, k, before[k], after[k])
		}()
	}
	wg.Wait()
	kept := next
	var failed []*netconf.RPCError
	for i, err := range errs {
		if err != nil {
			failed = append(failed, err)
			kept = withEntry(kept, changed[i], keptEntries[i])
		}
	}
	if len(failed) == 0 {
		return next, nil
	}
	if len(failed) == 1 {
		return kept, failed[0]
	}
	first := *failed[0]
	msgs := make([]string, len(failed))
	for i, f := range failed {
		msgs[i] = f.Message
	}
	first.Message = fmt.Sprintf("%d devices failed: %s", len(failed), strings.Join(msgs, "; "))
	return kept, &first
}

// withEntry is data with the entry of k replaced by entry (nil: removed);
// data itself is not changed.
func withEntry(data []*netconf.Element, k deviceKey, entry *netconf.Element) []*netconf.Element {
	out := slices.Clone(data)
	i := slices.IndexFunc(out, func(e *netconf.Element) bool {
		return e.Name == xml.Name{Space: k.namespace, Local: yang.ConfigContainer}
	})
	if i < 0 {
		if entry == nil {
			return out
		}
		return append(out, netconf.NewNode(k.namespace, yang.ConfigContainer, entry))
	}
	root := &netconf.Element{Name: out[i].Name, Children: slices.Clone(out[i].Children)}
	j := slices.IndexFunc(root.Children, func(e *netconf.Element) bool {
		key := e.Child(k.namespace, yang.ConfigKey)
		return e.Name.Local == yang.ConfigList && key != nil && key.Text == k.uuid
	})
	switch {
	case j >= 0 && entry == nil:
		root.Children = slices.Delete(root.Children, j, j+1)
	case j >= 0:
		root.Children[j] = entry
	case entry != nil:
		root.Children = append(root.Children, entry)
	}
	out[i] = root
	return out
}

// applyDevice makes one device follow its entry's change from old to
// next, all or nothing: when a call fails, the operations that took are
// called again with their previous values. It returns the device's entry
// as running is to keep it: next on success; else old, but for an
// operation that took and could not be put back (it had no previous
// value, or the device refused it), which the device holds.
func (c *configurator) applyDevice(ctx context.Context, k deviceKey, old, next *netconf.Element) (*netconf.Element, *netconf.RPCError) {
	unlock := c.devices.lock(k.uuid)
	defer unlock()
	mod, online := c.target(k)
	if mod == nil {
		if other := c.b.registry.moduleServing(k.uuid); other != nil && next != nil {
			c.setIntended(k, old)
			return old, (&netconf.RPCError{Type: netconf.ErrTypeApplication, Tag: netconf.TagInvalidValue,
				Message: fmt.Sprintf("device %s is registered with module %s (namespace %s), whose configuration it takes", k.uuid, other.Name, other.Namespace)}).
				WithInfo("bad-element", yang.ConfigKey)
		}
		c.setIntended(k, next) // not registered yet: applied when it is
		return next, nil
	}
	if !online {
		c.setIntended(k, next)
		c.markPending(k, mod, next)
		return next, nil
	}
	var took []*yang.RPC // called with the new values in this change
	for _, r := range mod.Configurable {
		was, want := opOf(old, k.namespace, r.Name), opOf(next, k.namespace, r.Name)
		if want == nil || was != nil && sameElement(was, want) && c.status(k, r.Name) == yang.ConfigApplied {
			continue
		}
		if err := c.call(ctx, causeChange, mod, r, k.uuid, want); err != nil {
			kept, stuck := c.putBack(ctx, mod, k, old, next, took)
			c.setIntended(k, kept)
			path := fmt.Sprintf("/%[1]s:%[2]s/%[1]s:%[3]s[%[1]s:%[4]s='%[5]s']/%[1]s:%[6]s", mod.Prefix, yang.ConfigContainer, yang.ConfigList, yang.ConfigKey, k.uuid, r.Name)
			msg := fmt.Sprintf("device %s: %s: %v; its configuration is left as it was", k.uuid, r.Name, err)
			if len(stuck) > 0 {
				msg = fmt.Sprintf("device %s: %s: %v; its configuration is left as it was but for %s, which took and could not be put back, and stays in running",
					k.uuid, r.Name, err, strings.Join(stuck, ", "))
			}
			re := &netconf.RPCError{Type: netconf.ErrTypeApplication, Tag: netconf.TagOperationFailed, AppTag: "device-refused",
				Path: path, PathPrefixes: map[string]string{mod.Prefix: mod.Namespace}, Message: msg}
			var ce *netconf.RPCError
			if errors.As(err, &ce) && ce.AppTag != "" {
				re.AppTag = ce.AppTag
			}
			return kept, re.WithInfo("bad-element", r.Name)
		}
		took = append(took, r)
	}
	if netconf.Undoing(ctx) {
		// Going back, an operation the device took that the target
		// lacks cannot be unset: running keeps it, and the error says so.
		held := map[string]*netconf.Element{}
		var stuck []string
		for _, r := range mod.Configurable {
			if was := opOf(old, k.namespace, r.Name); was != nil && opOf(next, k.namespace, r.Name) == nil && c.status(k, r.Name) == yang.ConfigApplied {
				held[r.Name] = was
				stuck = append(stuck, r.Name)
			}
		}
		if len(stuck) > 0 {
			kept := entryWith(mod, k, next, held)
			c.setIntended(k, kept)
			return kept, (&netconf.RPCError{Type: netconf.ErrTypeApplication, Tag: netconf.TagOperationFailed, AppTag: "device-refused",
				Message: fmt.Sprintf("device %s: %s took and had no previous value to go back to; it stays in running", k.uuid, strings.Join(stuck, ", "))}).
				WithInfo("bad-element", stuck[0])
		}
	}
	for _, r := range mod.Configurable {
		if opOf(next, k.namespace, r.Name) == nil {
			c.forget(k, r.Name)
		}
	}
	c.setIntended(k, next)
	return next, nil
}

// putBack calls the operations that took in a failed change again with
// their previous values, newest first, even when the change's context
// has ended. It returns the entry the device now holds and the
// operations that could not be put back.
func (c *configurator) putBack(ctx context.Context, mod *yang.Module, k deviceKey, old, next *netconf.Element, took []*yang.RPC) (*netconf.Element, []string) {
	ctx = context.WithoutCancel(ctx)
	held := map[string]*netconf.Element{}
	var stuck []string
	for _, p := range slices.Backward(took) {
		prev := opOf(old, k.namespace, p.Name)
		if prev != nil {
			if err := c.call(ctx, causeUndo, mod, p, k.uuid, prev); err == nil {
				continue
			} else {
				c.log.Warn("configuration not put back", "uuid", k.uuid, "operation", p.Name, "err", err)
			}
		}
		held[p.Name] = opOf(next, k.namespace, p.Name)
		stuck = append(stuck, p.Name)
	}
	if len(held) == 0 {
		return old, nil
	}
	slices.Sort(stuck)
	return entryWith(mod, k, old, held), stuck
}

// entryWith is base with the operations of held in place of its own, in
// the module's order (the schema's, as the NETCONF server keeps data).
func entryWith(mod *yang.Module, k deviceKey, base *netconf.Element, held map[string]*netconf.Element) *netconf.Element {
	entry := netconf.NewNode(k.namespace, yang.ConfigList, netconf.NewLeaf(k.namespace, yang.ConfigKey, k.uuid))
	for _, r := range mod.Configurable {
		if v, ok := held[r.Name]; ok {
			entry.Children = append(entry.Children, v)
		} else if v := opOf(base, k.namespace, r.Name); v != nil {
			entry.Children = append(entry.Children, v)
		}
	}
	return entry
}

// target is the module of k's device, when it is registered with the
// module of k's namespace, and whether it is online.
func (c *configurator) target(k deviceKey) (*yang.Module, bool) {
	mod := c.b.registry.moduleServing(k.uuid)
	if mod == nil || mod.Namespace != k.namespace {
		return nil, false
	}
	info, ok := c.b.registry.presenceInfo(k.uuid)
	return mod, ok && c.b.presence.isOnline(k.uuid, info.lastSeen, time.Now())
}

// opOf is operation name's container in a device entry.
func opOf(entry *netconf.Element, ns, name string) *netconf.Element {
	if entry == nil {
		return nil
	}
	return entry.Child(ns, name)
}

// Causes of a configuration call, for myno_configuration_calls_total.
const (
	causeChange    = "change"
	causeUndo      = "undo"
	causeReconcile = "reconcile"
)

// call calls configuration operation r of a device with values (the
// operation's container), and records the outcome.
func (c *configurator) call(ctx context.Context, cause string, mod *yang.Module, r *yang.RPC, uuid string, values *netconf.Element) error {
	answer, err := c.invoke(ctx, mod, r, uuid, values)
	result := yang.ConfigApplied
	if err != nil {
		result = yang.ConfigFailed
	}
	c.b.metrics.configCalls.WithLabelValues(cause, result).Inc()
	now := time.Now().UTC()
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.opStateLocked(deviceKey{mod.Namespace, uuid}, r.Name)
	st.attempted, st.answer, st.err = now, answer, ""
	if err != nil {
		st.status, st.err = yang.ConfigFailed, err.Error()
		var re *netconf.RPCError
		if errors.As(err, &re) {
			st.err = re.Message
		}
		return err
	}
	st.status, st.applied, st.held = yang.ConfigApplied, now, values
	return nil
}

func (c *configurator) invoke(ctx context.Context, mod *yang.Module, r *yang.RPC, uuid string, values *netconf.Element) (string, error) {
	op := netconf.NewNode(mod.Namespace, r.Name)
	for _, in := range r.Inputs {
		if in.Selector() {
			op.Children = append(op.Children, netconf.NewLeaf(mod.Namespace, in.Name, uuid))
		} else if v := values.Child(mod.Namespace, in.Name); v != nil {
			op.Children = append(op.Children, v)
		}
	}
	call, err := mod.ParseInput([]byte(op.String()))
	if err != nil {
		return "", fmt.Errorf("the intended values do not fit the operation: %w", err)
	}
	tmplTopic, lookup := c.b.registry.commandTopic(uuid, mod, r.Function)
	if lookup != lookupOK {
		return "", fmt.Errorf("device %s does not take %s now", uuid, r.Name)
	}
	var answer string
	_, err = c.b.invoke(ctx, mod, call, wire.CommandTopic(tmplTopic, uuid), func(_ *yang.Module, _ *yang.Call, resp wire.Response) ([]*netconf.Element, error) {
		answer = resp.Value
		return nil, nil
	})
	if err != nil {
		return "", err
	}
	if wire.Refused(answer) {
		return answer, fmt.Errorf("the device answered %s", answer)
	}
	return answer, nil
}

func (c *configurator) opStateLocked(k deviceKey, op string) *opState {
	byModule := c.state[k.uuid]
	if byModule == nil {
		byModule = map[string]map[string]*opState{}
		c.state[k.uuid] = byModule
	}
	ops := byModule[k.namespace]
	if ops == nil {
		ops = map[string]*opState{}
		byModule[k.namespace] = ops
	}
	st := ops[op]
	if st == nil {
		st = &opState{status: yang.ConfigPending}
		ops[op] = st
	}
	return st
}

func (c *configurator) status(k deviceKey, op string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.state[k.uuid][k.namespace][op]; st != nil {
		return st.status
	}
	return ""
}

func (c *configurator) forget(k deviceKey, op string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.state[k.uuid][k.namespace], op)
}

// markPending records that the operations of entry wait for the device.
func (c *configurator) markPending(k deviceKey, mod *yang.Module, entry *netconf.Element) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range mod.Configurable {
		if opOf(entry, mod.Namespace, r.Name) == nil {
			delete(c.state[k.uuid][k.namespace], r.Name)
			continue
		}
		c.opStateLocked(k, r.Name).status = yang.ConfigPending
	}
}

func (c *configurator) setIntended(k deviceKey, entry *netconf.Element) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, had := c.intended[k]
	switch {
	case entry == nil && had:
		delete(c.intended, k)
		if c.configured[k.uuid]--; c.configured[k.uuid] <= 0 {
			delete(c.configured, k.uuid)
		}
	case entry != nil:
		c.intended[k] = entry
		if !had {
			c.configured[k.uuid]++
		}
	}
}

// deviceBack queues a device that came back (online, or registered) for
// its configuration to be applied again.
func (c *configurator) deviceBack(uuid string) {
	if c == nil {
		return
	}
	current := ""
	if mod := c.b.registry.moduleServing(uuid); mod != nil {
		current = mod.Namespace
	}
	c.mu.Lock()
	for ns := range c.state[uuid] {
		if ns != current {
			delete(c.state[uuid], ns) // registered with another shape since
		}
	}
	has := c.configured[uuid] > 0
	if has {
		c.queue[uuid] = true
	}
	c.mu.Unlock()
	if has {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// reconcileLoop applies the intended configuration of the devices that
// came back, configWorkers at a time, until ctx ends.
func (c *configurator) reconcileLoop(ctx context.Context) {
	sem := make(chan struct{}, configWorkers)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		}
		c.mu.Lock()
		uuids := slices.Sorted(maps.Keys(c.queue))
		clear(c.queue)
		c.mu.Unlock()
		for _, uuid := range uuids {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				c.reconcile(ctx, uuid)
			}()
		}
	}
}

// reconcile applies a device's whole intended configuration again.
func (c *configurator) reconcile(ctx context.Context, uuid string) {
	unlock := c.devices.lock(uuid)
	defer unlock()
	mod := c.b.registry.moduleServing(uuid)
	if mod == nil {
		return
	}
	k := deviceKey{mod.Namespace, uuid}
	c.mu.Lock()
	entry := c.intended[k]
	c.mu.Unlock()
	if entry == nil {
		return
	}
	if _, online := c.target(k); !online {
		c.markPending(k, mod, entry)
		return
	}
	applied, failed := 0, 0
	for _, r := range mod.Configurable {
		want := opOf(entry, mod.Namespace, r.Name)
		if want == nil {
			continue
		}
		if err := c.call(ctx, causeReconcile, mod, r, uuid, want); err != nil {
			failed++
			c.log.Warn("configuration not applied to a device that came back", "uuid", uuid, "operation", r.Name, "err", err)
			continue
		}
		applied++
	}
	c.log.Info("configuration applied to a device that came back", "uuid", uuid, "module", mod.Name, "applied", applied, "failed", failed)
}

// deviceGone forgets what was applied to a deleted device; its intended
// configuration stays in running, for when it registers again.
func (c *configurator) deviceGone(uuid string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	delete(c.state, uuid)
	delete(c.queue, uuid)
	c.mu.Unlock()
}

// count is how many operations of registered devices have status.
func (c *configurator) count(status string) int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, byModule := range c.state {
		for _, ops := range byModule {
			for _, st := range ops {
				if st.status == status {
					n++
				}
			}
		}
	}
	return n
}

// stateOf renders a device's configuration-state (nil when it has none).
func (c *configurator) stateOf(ns, uuid string) *netconf.Element {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ops := c.state[uuid][ns]
	if len(ops) == 0 {
		return nil
	}
	leaf := func(name, v string) *netconf.Element { return netconf.NewLeaf(ns, name, v) }
	out := netconf.NewNode(ns, yang.ConfigStateContainer)
	for _, name := range slices.Sorted(maps.Keys(ops)) {
		st := ops[name]
		e := netconf.NewNode(ns, yang.ConfigStateList, leaf(yang.ConfigStateKey, name), leaf("status", st.status))
		if !st.attempted.IsZero() {
			e.Children = append(e.Children, leaf("attempted-at", st.attempted.Format(time.RFC3339Nano)))
		}
		if !st.applied.IsZero() {
			e.Children = append(e.Children, leaf("applied-at", st.applied.Format(time.RFC3339Nano)))
		}
		if st.answer != "" {
			e.Children = append(e.Children, leaf("answer", st.answer))
		}
		if st.err != "" {
			e.Children = append(e.Children, leaf("error-message", st.err))
		}
		out.Children = append(out.Children, e)
	}
	return out
}

// maxConfigValueBytes bounds one configuration value: it goes to a
// constrained device as an MQTT argument.
const maxConfigValueBytes = 4096

// maxConfigurationBytes bounds the text of the whole configuration (all
// values and names), which every change stores whole: 100,000 devices
// of a few values each take about 25 MB.
const maxConfigurationBytes = 64 << 20

// check bounds a change of the configuration (Configuration.Check): at
// most --max-configured-devices device entries and maxConfigurationBytes
// of text. A change that does not grow what is over a bound (a delete
// after the bound was lowered) is taken.
func (c *configurator) check(old, next []*netconf.Element) error {
	if limit := c.b.cfg.MaxConfiguredDevices; limit > 0 {
		if n := len(entriesOf(next)); n > limit && n > len(entriesOf(old)) {
			return &netconf.RPCError{Type: netconf.ErrTypeApplication, Tag: netconf.TagResourceDenied,
				Message: fmt.Sprintf("the configuration would hold %d devices, over the %d the bridge keeps (--max-configured-devices)", n, limit)}
		}
	}
	if n := textBytes(next); n > maxConfigurationBytes && n > textBytes(old) {
		return &netconf.RPCError{Type: netconf.ErrTypeApplication, Tag: netconf.TagResourceDenied,
			Message: fmt.Sprintf("the configuration would hold %d bytes of names and values, over the %d the bridge keeps", n, maxConfigurationBytes)}
	}
	return nil
}

// textBytes is the size of data's names and values.
func textBytes(data []*netconf.Element) int {
	n := 0
	for _, e := range data {
		n += len(e.Name.Local) + len(e.Text) + textBytes(e.Children)
	}
	return n
}

// operational is the configuration in use (Configuration.Operational):
// for the operations in running, the values each device last took (a
// refused change leaves the previous ones).
func (c *configurator) operational(running []*netconf.Element) []*netconf.Element {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*netconf.Element
	for _, root := range running {
		ns := root.Name.Space
		inUse := &netconf.Element{Name: root.Name}
		for _, e := range root.Children {
			key := e.Child(ns, yang.ConfigKey)
			if key == nil {
				continue
			}
			ops := c.state[key.Text][ns]
			entry := &netconf.Element{Name: e.Name}
			for _, op := range e.Children {
				switch st := ops[op.Name.Local]; {
				case op == key:
					entry.Children = append(entry.Children, op)
				case st != nil && st.held != nil:
					entry.Children = append(entry.Children, st.held)
				}
			}
			if len(entry.Children) > 1 {
				inUse.Children = append(inUse.Children, entry)
			}
		}
		if len(inUse.Children) > 0 {
			out = append(out, inUse)
		}
	}
	return out
}

// configRoot is the schema of a module's configuration container, for
// the NETCONF server to check edits against.
func configRoot(mod *yang.Module) netconf.ConfigRoot {
	device := &netconf.SchemaNode{Name: yang.ConfigList, Kind: netconf.KindList, Keys: []string{yang.ConfigKey},
		Children: []*netconf.SchemaNode{{Name: yang.ConfigKey, Kind: netconf.KindLeaf, Check: checkUUID}}}
	for _, r := range mod.Configurable {
		op := &netconf.SchemaNode{Name: r.Name, Kind: netconf.KindContainer, Presence: true}
		for _, in := range r.Inputs {
			if in.Selector() {
				continue
			}
			if len(in.Fields) > 0 {
				s := &netconf.SchemaNode{Name: in.Name, Kind: netconf.KindContainer}
				for _, f := range in.Fields {
					s.Children = append(s.Children, &netconf.SchemaNode{Name: f.Name, Kind: netconf.KindLeaf, Mandatory: true, Check: bounded(f.Check)})
				}
				op.Children = append(op.Children, s)
				continue
			}
			op.Children = append(op.Children, &netconf.SchemaNode{Name: in.Name, Kind: netconf.KindLeaf, Mandatory: true, Check: bounded(in.Check)})
		}
		device.Children = append(device.Children, op)
	}
	return netconf.ConfigRoot{Module: mod.Name, Namespace: mod.Namespace, Prefix: mod.Prefix,
		Node: &netconf.SchemaNode{Name: yang.ConfigContainer, Kind: netconf.KindContainer, Children: []*netconf.SchemaNode{device}}}
}

// bounded is check with values longer than maxConfigValueBytes refused.
func bounded(check func(string) (string, error)) func(string) (string, error) {
	return func(v string) (string, error) {
		if len(v) > maxConfigValueBytes {
			return "", fmt.Errorf("%d bytes, over the %d a configuration value may have", len(v), maxConfigValueBytes)
		}
		return check(v)
	}
}

func checkUUID(v string) (string, error) {
	if !wire.ValidUUID(v) {
		return "", fmt.Errorf("%q is not a device UUID (1..128 letters, digits, '.', '_', ':', '-')", v)
	}
	return v, nil
}

func sameElement(a, b *netconf.Element) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Name == b.Name && a.Text == b.Text &&
		slices.EqualFunc(a.Children, b.Children, sameElement)
}

// keyedMutex is a mutex per key, kept while in use.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

type keyedLock struct {
	sync.Mutex
	users int
}

// lock locks key and returns its unlock.
func (m *keyedMutex) lock(key string) func() {
	m.mu.Lock()
	if m.locks == nil {
		m.locks = map[string]*keyedLock{}
	}
	l := m.locks[key]
	if l == nil {
		l = &keyedLock{}
		m.locks[key] = l
	}
	l.users++
	m.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		m.mu.Lock()
		if l.users--; l.users == 0 {
			delete(m.locks, key)
		}
		m.mu.Unlock()
	}
}

package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// ErrReadOnly is wrapped by the errors of writes made while etcd has no
// quorum (or cannot be reached): the cluster is read-only until it has.
var ErrReadOnly = errors.New("cluster store unavailable (no etcd quorum): read-only")

// maxWriteAttempts bounds the compare-and-swap retries of a registration
// or delete that races another write of the same device.
const maxWriteAttempts = 8

// Register stores uuid's registration in one transaction: the shape under
// shapes/<hash> unless it is there, the device's binding, and the shape's
// reference refs/<hash>/<uuid>. The transaction holds only if the binding
// is still what was last read (first assumed absent, so a new device
// takes one round trip); a device that had another shape gives up its
// reference to it, and that shape is collected if no device is left on it.
func (m *Member) Register(ctx context.Context, uuid string, shape []byte, at time.Time) error {
	hash := ShapeHash(shape)
	binding, err := Binding{Shape: hash, RegisteredAt: at.UTC(), By: m.cfg.Instance, Written: time.Now().UTC()}.Encode()
	if err != nil {
		return err
	}
	shapeKey, deviceKey := m.keys.shape(hash), m.keys.device(uuid)
	var (
		readRev   int64    // the binding's ModRevision as last read; 0: absent
		oldShapes []string // the shapes it referenced
	)
	for range maxWriteAttempts {
		ops := []clientv3.Op{
			clientv3.OpTxn([]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(shapeKey), "=", 0)},
				[]clientv3.Op{clientv3.OpPut(shapeKey, string(shape))}, nil),
			clientv3.OpPut(deviceKey, string(binding)),
			clientv3.OpPut(m.keys.ref(hash, uuid), ""),
		}
		for _, old := range oldShapes {
			if old != hash {
				ops = append(ops, clientv3.OpDelete(m.keys.ref(old, uuid)))
			}
		}
		resp, err := m.txn(ctx, clientv3.Compare(clientv3.ModRevision(deviceKey), "=", readRev), ops, deviceKey)
		if err != nil {
			return m.written(ctx, "register "+uuid, err)
		}
		if resp.Succeeded {
			m.noteResult(nil)
			for _, old := range oldShapes {
				if old != hash {
					m.collectOrLeave(ctx, old)
				}
			}
			return nil
		}
		if readRev, oldShapes, err = m.current(ctx, uuid, resp); err != nil {
			return err
		}
	}
	return fmt.Errorf("cluster: register %s: the binding kept changing under %d attempts", uuid, maxWriteAttempts)
}

// RegisteredNow lists the devices etcd has a binding of now (keys only, a
// linearizable read): a follower asks before it forgets devices a listing
// lacked, which may have been registered after the listing.
func (m *Member) RegisteredNow(ctx context.Context) (map[string]bool, error) {
	rctx, cancel := context.WithTimeout(ctx, 4*m.cfg.RequestTimeout)
	defer cancel()
	resp, err := m.cli.Get(rctx, m.keys.devices(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("cluster: list the devices registered now: %w", err)
	}
	now := make(map[string]bool, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if uuid, ok := name(m.keys.devices(), string(kv.Key)); ok {
			now[uuid] = true
		}
	}
	return now, nil
}

// Delete removes uuid's binding and its reference to its shape in one
// transaction, then collects the shape if no device is left on it.
// Deleting a device that is not registered is not an error.
func (m *Member) Delete(ctx context.Context, uuid string) error {
	deviceKey := m.keys.device(uuid)
	readRev, shapes := int64(-1), []string(nil) // -1: not read yet, so the first try reads
	for range maxWriteAttempts {
		if readRev == 0 {
			return nil
		}
		ops := []clientv3.Op{clientv3.OpDelete(deviceKey)}
		for _, shape := range shapes {
			ops = append(ops, clientv3.OpDelete(m.keys.ref(shape, uuid)))
		}
		resp, err := m.txn(ctx, clientv3.Compare(clientv3.ModRevision(deviceKey), "=", readRev), ops, deviceKey)
		if err != nil {
			return m.written(ctx, "delete "+uuid, err)
		}
		if resp.Succeeded {
			m.noteResult(nil)
			for _, shape := range shapes {
				m.collectOrLeave(ctx, shape)
			}
			return nil
		}
		if readRev, shapes, err = m.current(ctx, uuid, resp); err != nil {
			return err
		}
	}
	return fmt.Errorf("cluster: delete %s: the binding kept changing under %d attempts", uuid, maxWriteAttempts)
}

// txn commits If(cmp).Then(ops).Else(get key) within RequestTimeout.
func (m *Member) txn(ctx context.Context, cmp clientv3.Cmp, ops []clientv3.Op, key string) (*clientv3.TxnResponse, error) {
	rctx, cancel := context.WithTimeout(ctx, m.cfg.RequestTimeout)
	defer cancel()
	return m.cli.Txn(rctx).If(cmp).Then(ops...).Else(clientv3.OpGet(key)).Commit()
}

// current reads the binding of uuid a failed transaction's Else
// returned: its ModRevision (0 if absent) and the shapes uuid references
// (none if absent). An undecodable binding names no shape, so its
// references are looked up: overwritten or deleted whole, it must not
// leave a reference that keeps a shape from being collected.
func (m *Member) current(ctx context.Context, uuid string, resp *clientv3.TxnResponse) (int64, []string, error) {
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) == 0 {
		return 0, nil, nil
	}
	b, err := DecodeBinding(kvs[0].Value)
	if err == nil {
		return kvs[0].ModRevision, []string{b.Shape}, nil
	}
	shapes, err := m.referencedBy(ctx, uuid)
	return kvs[0].ModRevision, shapes, err
}

// referencedBy lists the shapes uuid holds a reference to, from the keys
// of every reference: a walk of the refs range, for the rare binding that
// cannot be read.
func (m *Member) referencedBy(ctx context.Context, uuid string) ([]string, error) {
	rctx, cancel := context.WithTimeout(ctx, 4*m.cfg.RequestTimeout)
	defer cancel()
	prefix := m.keys.prefix + "refs/"
	resp, err := m.cli.Get(rctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, m.written(ctx, "list the references of "+uuid, err)
	}
	var shapes []string
	for _, kv := range resp.Kvs {
		hash, device, ok := strings.Cut(strings.TrimPrefix(string(kv.Key), prefix), "/")
		if ok && device == uuid {
			shapes = append(shapes, hash)
		}
	}
	return shapes, nil
}

// collect deletes shapes/<hash> if no device references it. The check
// and the delete are one transaction over the whole refs/<hash>/ range
// (etcd compares every key of a range; an empty range has create revision
// 0), so a registration that references the shape either commits first,
// and the shape stays, or after, and writes the shape again. It reports
// whether it deleted the shape.
func (m *Member) collect(ctx context.Context, hash string) (bool, error) {
	rctx, cancel := context.WithTimeout(ctx, m.cfg.RequestTimeout)
	defer cancel()
	resp, err := m.cli.Txn(rctx).
		If(clientv3.Compare(clientv3.CreateRevision(m.keys.refs(hash)), "=", 0).WithPrefix()).
		Then(clientv3.OpDelete(m.keys.shape(hash))).
		Commit()
	if err != nil {
		return false, m.written(ctx, "collect shape "+hash, err)
	}
	return resp.Succeeded, nil
}

// collectOrLeave collects a shape after a committed registration or
// delete; a failure is logged, not returned: the write it follows took
// effect, and CollectShapes sweeps what is left.
func (m *Member) collectOrLeave(ctx context.Context, hash string) {
	if _, err := m.collect(ctx, hash); err != nil && ctx.Err() == nil {
		m.log.Warn("cluster: unused shape left for the next sweep", "shape", hash, "err", err)
	}
}

// CollectShapes deletes every shape no device references: those left by
// an instance that stopped between a delete and its collection. Any
// instance may run it at any time; it returns how many it deleted.
func (m *Member) CollectShapes(ctx context.Context) (int, error) {
	rctx, cancel := context.WithTimeout(ctx, 4*m.cfg.RequestTimeout)
	resp, err := m.cli.Get(rctx, m.keys.shapes(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	cancel()
	if err != nil {
		return 0, m.written(ctx, "list shapes", err)
	}
	collected := 0
	for _, kv := range resp.Kvs {
		hash, ok := name(m.keys.shapes(), string(kv.Key))
		if !ok {
			continue
		}
		deleted, err := m.collect(ctx, hash)
		if err != nil {
			return collected, err
		}
		if deleted {
			collected++
		}
	}
	return collected, nil
}

// written notes a write's outcome: failing with a live ctx, etcd had no
// quorum within RequestTimeout.
func (m *Member) written(ctx context.Context, what string, err error) error {
	if err == nil {
		m.noteResult(nil)
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("cluster: %s: %w", what, ctx.Err())
	}
	m.noteResult(err)
	return fmt.Errorf("cluster: %s: %w (%w)", what, ErrReadOnly, err)
}

// Device is a registered device as etcd holds it, with its shape.
type Device struct {
	UUID    string
	Binding Binding
	Shape   []byte // the description without its uuid
}

// Follower is what Follow tells of the registry.
type Follower interface {
	// Reset gives the whole registry: a follower forgets every device
	// not in it (one deleted while it was not following).
	Reset(ctx context.Context, devices []Device)
	// Put and Deleted give one change, in etcd's order.
	Put(ctx context.Context, d Device)
	Deleted(ctx context.Context, uuid string)
	// Applied ends the changes of one watch response (one or more
	// revisions; etcd batches what it has): a follower may leave costly
	// work (a save, subscriptions) to it, and do it once for them all.
	Applied(ctx context.Context)
}

// Follow gives f the registry (Reset), then its changes, until ctx ends.
// When the watch breaks or etcd has compacted the revisions it needed, it
// lists the registry again and starts over with a Reset.
func (m *Member) Follow(ctx context.Context, f Follower) {
	shapes := map[string][]byte{}
	for ctx.Err() == nil {
		rev, err := m.reset(ctx, f, shapes)
		if err != nil {
			m.noteResult(err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		m.noteResult(nil)
		m.watchDevices(ctx, f, shapes, rev)
	}
}

// reset lists shapes and devices at one revision and hands them to f.
func (m *Member) reset(ctx context.Context, f Follower, shapes map[string][]byte) (int64, error) {
	rctx, cancel := context.WithTimeout(ctx, 4*m.cfg.RequestTimeout)
	defer cancel()
	sresp, err := m.cli.Get(rctx, m.keys.shapes(), clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("cluster: list shapes: %w", err)
	}
	clear(shapes)
	for _, kv := range sresp.Kvs {
		if h, ok := name(m.keys.shapes(), string(kv.Key)); ok {
			shapes[h] = kv.Value
		}
	}
	dresp, err := m.cli.Get(rctx, m.keys.devices(), clientv3.WithPrefix(), clientv3.WithRev(sresp.Header.Revision))
	if err != nil {
		return 0, fmt.Errorf("cluster: list devices: %w", err)
	}
	devices := make([]Device, 0, len(dresp.Kvs))
	for _, kv := range dresp.Kvs {
		if d, ok := m.device(ctx, kv, shapes); ok {
			devices = append(devices, d)
		}
	}
	f.Reset(ctx, devices)
	return sresp.Header.Revision, nil
}

// maxBatch bounds the events Follow hands over before Applied.
const maxBatch = 1024

// watchDevices applies shape and device events after rev until the watch
// ends. etcd sends each revision in a response of its own while the
// watcher keeps up. A reader takes the responses off the watch as they
// come, into a buffer; the follower, after each Applied, takes every
// response buffered (up to maxBatch events) as one batch, so that one that
// fell behind does its costly work once for many and catches up. (The
// client's own channel holds one response: reading it without waiting
// would find it empty before the client refilled it.)
func (m *Member) watchDevices(ctx context.Context, f Follower, shapes map[string][]byte, rev int64) {
	wctx, cancel := context.WithCancel(ctx)
	wch := m.cli.Watch(clientv3.WithRequireLeader(wctx), m.keys.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	buffered := make(chan clientv3.WatchResponse, maxBatch)
	go func() { // owned by watchDevices, which waits for it below
		defer close(buffered)
		for wr := range wch {
			buffered <- wr
		}
	}()
	defer func() {
		cancel()
		for range buffered { // until the reader has ended
		}
	}()
	for wr := range buffered {
		n := 0
		for {
			if err := wr.Err(); err != nil {
				f.Applied(ctx)
				if ctx.Err() == nil {
					m.log.Info("cluster registry watch ended; listing again", "err", err)
				}
				return
			}
			m.applyEvents(ctx, f, shapes, wr.Events)
			n += len(wr.Events)
			if n >= maxBatch {
				break
			}
			var more bool
			select {
			case wr, more = <-buffered:
			default:
			}
			if !more {
				break
			}
		}
		f.Applied(ctx)
	}
}

// applyEvents hands one watch response's events to f, keeping shapes.
func (m *Member) applyEvents(ctx context.Context, f Follower, shapes map[string][]byte, events []*clientv3.Event) {
	for _, ev := range events {
		key := string(ev.Kv.Key)
		if h, ok := name(m.keys.shapes(), key); ok {
			if ev.Type == mvccpb.PUT {
				shapes[h] = ev.Kv.Value
			} else {
				delete(shapes, h)
			}
			continue
		}
		uuid, ok := name(m.keys.devices(), key)
		if !ok {
			continue
		}
		if ev.Type == mvccpb.DELETE {
			f.Deleted(ctx, uuid)
			continue
		}
		if d, ok := m.device(ctx, ev.Kv, shapes); ok {
			f.Put(ctx, d)
		}
	}
}

// device decodes a binding and finds its shape; a bad one is logged and
// left out.
func (m *Member) device(ctx context.Context, kv *mvccpb.KeyValue, shapes map[string][]byte) (Device, bool) {
	uuid, ok := name(m.keys.devices(), string(kv.Key))
	if !ok {
		return Device{}, false
	}
	b, err := DecodeBinding(kv.Value)
	if err != nil {
		m.log.Warn("cluster: device binding left out", "uuid", uuid, "err", err)
		return Device{}, false
	}
	shape, ok := shapes[b.Shape]
	if !ok {
		// Written in the binding's transaction, so present at its revision
		// unless removed since; read it at that revision.
		rctx, cancel := context.WithTimeout(ctx, m.cfg.RequestTimeout)
		defer cancel()
		resp, err := m.cli.Get(rctx, m.keys.shape(b.Shape), clientv3.WithRev(kv.ModRevision))
		if err != nil || len(resp.Kvs) == 0 {
			m.log.Warn("cluster: device binding without its shape left out", "uuid", uuid, "shape", b.Shape, "err", err)
			return Device{}, false
		}
		shape = resp.Kvs[0].Value
		shapes[b.Shape] = shape
	}
	return Device{UUID: uuid, Binding: b, Shape: shape}, true
}

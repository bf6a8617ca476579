package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// ErrReadOnly is wrapped by the errors of writes made while etcd has no
// quorum (or cannot be reached): the cluster is read-only until it has.
var ErrReadOnly = errors.New("cluster store unavailable (no etcd quorum): read-only")

// Register stores uuid's registration in one transaction: the shape under
// shapes/<hash> unless it is there, and the device's binding.
func (m *Member) Register(ctx context.Context, uuid string, shape []byte, at time.Time) error {
	hash := ShapeHash(shape)
	binding, err := Binding{Shape: hash, RegisteredAt: at.UTC(), By: m.cfg.Instance}.Encode()
	if err != nil {
		return err
	}
	shapeKey := m.keys.shape(hash)
	rctx, cancel := context.WithTimeout(ctx, m.cfg.RequestTimeout)
	defer cancel()
	_, err = m.cli.Txn(rctx).
		If(clientv3.Compare(clientv3.CreateRevision(shapeKey), "=", 0)).
		Then(clientv3.OpPut(shapeKey, string(shape)), clientv3.OpPut(m.keys.device(uuid), string(binding))).
		Else(clientv3.OpPut(m.keys.device(uuid), string(binding))).
		Commit()
	return m.written(ctx, "register "+uuid, err)
}

// Delete removes uuid's binding. Its shape stays, for the other devices
// of that shape; a shape no device uses any more is not collected yet
// (each instance's registry bounds the shapes in use, --max-shapes).
func (m *Member) Delete(ctx context.Context, uuid string) error {
	rctx, cancel := context.WithTimeout(ctx, m.cfg.RequestTimeout)
	defer cancel()
	_, err := m.cli.Delete(rctx, m.keys.device(uuid))
	return m.written(ctx, "delete "+uuid, err)
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

// watchDevices applies shape and device events after rev until the watch
// ends.
func (m *Member) watchDevices(ctx context.Context, f Follower, shapes map[string][]byte, rev int64) {
	wch := m.cli.Watch(clientv3.WithRequireLeader(ctx), m.keys.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	for wr := range wch {
		if err := wr.Err(); err != nil {
			if ctx.Err() == nil {
				m.log.Info("cluster registry watch ended; listing again", "err", err)
			}
			return
		}
		for _, ev := range wr.Events {
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

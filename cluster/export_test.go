package cluster

import (
	"context"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Abandon ends m as a crash would: its goroutines stop and its connection
// closes, but its lease is not revoked, so the others see it go only when
// the lease expires.
func (m *Member) Abandon() {
	m.cancel()
	m.wg.Wait()
	_ = m.cli.Close()
}

// ShapeCount is how many shapes etcd holds.
func (m *Member) ShapeCount(ctx context.Context) (int64, error) {
	resp, err := m.cli.Get(ctx, m.keys.shapes(), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	return resp.Count, nil
}

// PutShape writes a shape with no reference, as an instance that stopped
// between a delete and its collection leaves one.
func (m *Member) PutShape(ctx context.Context, shape []byte) error {
	_, err := m.cli.Put(ctx, m.keys.shape(ShapeHash(shape)), string(shape))
	return err
}

// BindingCount is how many bindings etcd holds.
func (m *Member) BindingCount(ctx context.Context) (int, error) {
	resp, err := m.cli.Get(ctx, m.keys.devices(), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	return int(resp.Count), nil
}

// PutBinding writes a device's binding as raw bytes, as a broken writer
// or a disk fault would leave it.
func (m *Member) PutBinding(ctx context.Context, uuid string, raw []byte) error {
	_, err := m.cli.Put(ctx, m.keys.device(uuid), string(raw))
	return err
}

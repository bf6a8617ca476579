package cluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Defaults of Config.
const (
	DefaultLeaseTTL       = 5 * time.Second
	DefaultRequestTimeout = 2 * time.Second
)

// Config says which etcd to use and who this instance is.
type Config struct {
	Endpoints          []string    // etcd client URLs, e.g. https://10.0.0.1:2379
	TLS                *tls.Config // nil: plain connections
	Username, Password string      // etcd's authentication; empty: none
	Cluster, Instance  string      // CheckName
	// LeaseTTL is how long a dead instance stays a member (its devices
	// move when its lease expires); default DefaultLeaseTTL.
	LeaseTTL time.Duration
	// RequestTimeout bounds each etcd request; a write that cannot reach a
	// quorum within it fails, and the member is not Writable until a
	// request succeeds again. Default DefaultRequestTimeout.
	RequestTimeout time.Duration
	Logger         *slog.Logger
	// OnMembers is called, from the member's goroutine, with the sorted
	// live members whenever they change (this instance included).
	OnMembers func(members []string)
}

// Member is one instance's place in the cluster: it holds a lease, keeps
// its membership key alive, and follows the other members. Close ends it.
type Member struct {
	cfg  Config
	keys keys
	cli  *clientv3.Client
	log  *slog.Logger

	lease clientv3.LeaseID

	mu   sync.Mutex
	live map[string]bool

	writable atomic.Bool

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Join connects to etcd, grants the instance a lease, announces it under
// members/<instance> and starts following the membership. It fails when
// etcd cannot be reached within RequestTimeout, or when another live
// instance already holds the name.
func Join(ctx context.Context, cfg Config) (*Member, error) {
	if err := CheckName("cluster", cfg.Cluster); err != nil {
		return nil, err
	}
	if err := CheckName("instance", cfg.Instance); err != nil {
		return nil, err
	}
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("cluster: no etcd endpoints")
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: cfg.Endpoints, TLS: cfg.TLS, Username: cfg.Username, Password: cfg.Password,
		// etcd's client logs with zap; what matters is logged here, with
		// slog (a lost lease, read-only, a watch listed again).
		DialTimeout: cfg.RequestTimeout, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("cluster: etcd %v: %w", cfg.Endpoints, err)
	}
	m := &Member{cfg: cfg, keys: newKeys(cfg.Cluster), cli: cli, log: cfg.Logger.With("cluster", cfg.Cluster, "instance", cfg.Instance),
		live: map[string]bool{}}
	if err := m.announce(ctx); err != nil {
		_ = cli.Close()
		return nil, err
	}
	m.writable.Store(true)
	runCtx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.wg.Go(func() { m.keepAlive(runCtx) })
	rev, err := m.listMembers(ctx)
	if err != nil {
		cancel()
		m.wg.Wait()
		_ = cli.Close()
		return nil, err
	}
	m.wg.Go(func() { m.followMembers(runCtx, rev) })
	m.wg.Go(func() { m.probe(runCtx) })
	return m, nil
}

// probe reads the membership key linearizably (which needs a quorum)
// every RequestTimeout, so that Writable turns false when etcd loses its
// quorum even while nothing is written, and true again once it is back.
func (m *Member) probe(ctx context.Context) {
	t := time.NewTicker(m.cfg.RequestTimeout)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, m.cfg.RequestTimeout)
		_, err := m.cli.Get(rctx, m.keys.member(m.cfg.Instance))
		cancel()
		if ctx.Err() != nil {
			return
		}
		m.noteResult(err)
	}
}

// announce grants a lease and creates members/<instance> under it, in a
// transaction that fails when the key exists (another live instance of
// the same name, or this one's old lease not yet expired).
func (m *Member) announce(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, m.cfg.RequestTimeout)
	defer cancel()
	lease, err := m.cli.Grant(rctx, int64((m.cfg.LeaseTTL+time.Second-1)/time.Second))
	if err != nil {
		return fmt.Errorf("cluster: etcd lease: %w", err)
	}
	key := m.keys.member(m.cfg.Instance)
	resp, err := m.cli.Txn(rctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, time.Now().UTC().Format(time.RFC3339), clientv3.WithLease(lease.ID))).Commit()
	if err != nil {
		return fmt.Errorf("cluster: etcd join: %w", err)
	}
	if !resp.Succeeded {
		_, _ = m.cli.Revoke(rctx, lease.ID)
		return fmt.Errorf("cluster %s: an instance named %s is a member already (its lease expires within %s of its end)", m.cfg.Cluster, m.cfg.Instance, m.cfg.LeaseTTL)
	}
	m.lease = lease.ID
	return nil
}

// keepAlive renews the lease. When the lease is lost (etcd unreachable for
// longer than its TTL), the instance announces itself again as soon as
// etcd answers: the others have moved its devices meanwhile.
func (m *Member) keepAlive(ctx context.Context) {
	for ctx.Err() == nil {
		ch, err := m.cli.KeepAlive(ctx, m.lease)
		if err == nil {
			for range ch { // drained: the client stops renewing otherwise
			}
		}
		if ctx.Err() != nil {
			return
		}
		m.log.Warn("cluster lease lost; joining again", "err", err)
		for ctx.Err() == nil {
			if err := m.announce(ctx); err == nil {
				m.log.Info("cluster joined again")
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

// listMembers reads the live members and returns the revision to watch
// from.
func (m *Member) listMembers(ctx context.Context) (int64, error) {
	rctx, cancel := context.WithTimeout(ctx, m.cfg.RequestTimeout)
	defer cancel()
	resp, err := m.cli.Get(rctx, m.keys.members(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return 0, fmt.Errorf("cluster: etcd members: %w", err)
	}
	live := map[string]bool{m.cfg.Instance: true}
	for _, kv := range resp.Kvs {
		if n, ok := name(m.keys.members(), string(kv.Key)); ok {
			live[n] = true
		}
	}
	m.setMembers(live)
	return resp.Header.Revision, nil
}

// followMembers applies membership changes from rev on; after a compaction
// or a broken watch it lists them again.
func (m *Member) followMembers(ctx context.Context, rev int64) {
	for ctx.Err() == nil {
		wch := m.cli.Watch(clientv3.WithRequireLeader(ctx), m.keys.members(), clientv3.WithPrefix(), clientv3.WithRev(rev+1))
		for wr := range wch {
			if wr.Err() != nil {
				break
			}
			m.mu.Lock()
			live := maps.Clone(m.live)
			m.mu.Unlock()
			for _, ev := range wr.Events {
				n, ok := name(m.keys.members(), string(ev.Kv.Key))
				if !ok || n == m.cfg.Instance {
					continue // we are a member for as long as we run
				}
				live[n] = ev.Type == mvccpb.PUT
				if !live[n] {
					delete(live, n)
				}
			}
			m.setMembers(live)
			rev = wr.Header.Revision
		}
		if ctx.Err() != nil {
			return
		}
		for ctx.Err() == nil {
			var err error
			if rev, err = m.listMembers(ctx); err == nil {
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

func (m *Member) setMembers(live map[string]bool) {
	m.mu.Lock()
	changed := !maps.Equal(m.live, live)
	m.live = live
	members := slices.Sorted(maps.Keys(live))
	m.mu.Unlock()
	if changed {
		m.log.Info("cluster membership", "members", members)
		if m.cfg.OnMembers != nil {
			m.cfg.OnMembers(members)
		}
	}
}

// Members lists the live members, sorted, this instance included.
func (m *Member) Members() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Sorted(maps.Keys(m.live))
}

// Owner is the live member that answers for uuid.
func (m *Member) Owner(uuid string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Owner(m.live, uuid)
}

// Owner picks the member with the highest SHA-256(member, 0, uuid) among
// members (rendezvous hashing): each owns about 1/n of the devices, and a
// member that goes moves only its own.
func Owner(members map[string]bool, uuid string) string {
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

// Writable reports whether the last request to etcd succeeded: false
// while etcd has no quorum (or cannot be reached), when registrations
// must be refused.
func (m *Member) Writable() bool { return m.writable.Load() }

// noteResult records whether a request reached a quorum, logging changes.
func (m *Member) noteResult(err error) {
	ok := err == nil || errors.Is(err, context.Canceled)
	if m.writable.Swap(ok) != ok {
		if ok {
			m.log.Info("cluster store reachable again: registrations accepted")
		} else {
			m.log.Warn("cluster store unavailable: read-only, registrations refused; serving the devices known", "err", err)
		}
	}
}

// Close leaves the cluster: the lease is revoked, so the others take this
// instance's devices over at once, and the goroutines end.
func (m *Member) Close(ctx context.Context) error {
	m.cancel()
	m.wg.Wait()
	rctx, cancel := context.WithTimeout(ctx, m.cfg.RequestTimeout)
	defer cancel()
	_, err := m.cli.Revoke(rctx, m.lease)
	if cerr := m.cli.Close(); err == nil {
		err = cerr
	}
	return err
}

package manager

import (
	"context"
	"sync"
	"time"
)

// RenewResult is the outcome of one device's renewal.
type RenewResult struct {
	Device    string
	Handshake Phase
	Renewal   *Renewal // nil when the handshake failed
	Err       error
}

// Defaults of RenewAllConfig, also myno e2e renew's.
const (
	DefaultRenewParallel = 8
	DefaultRenewTimeout  = 30 * time.Second
)

// RenewAllConfig configures RenewAll.
type RenewAllConfig struct {
	Devices []string
	// Parallel bounds the devices in progress at once; 0 is
	// DefaultRenewParallel.
	Parallel int
	// Timeout bounds each device's handshake plus renewal; 0 is
	// DefaultRenewTimeout.
	Timeout time.Duration
	// OnResult is called as each device finishes (from several goroutines).
	OnResult func(RenewResult)
}

// RenewAll opens a channel to each device and renews its credentials, at
// most Parallel at a time. Results come back in the order of Devices.
func (m *Manager) RenewAll(ctx context.Context, cfg RenewAllConfig) []RenewResult {
	if cfg.Parallel <= 0 {
		cfg.Parallel = DefaultRenewParallel
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultRenewTimeout
	}
	results := make([]RenewResult, len(cfg.Devices))
	sem := make(chan struct{}, cfg.Parallel)
	var wg sync.WaitGroup
	for i, device := range cfg.Devices {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			for j := i; j < len(cfg.Devices); j++ {
				results[j] = RenewResult{Device: cfg.Devices[j], Err: ctx.Err()}
			}
			wg.Wait()
			return results
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r := m.renewOne(ctx, device, cfg.Timeout)
			results[i] = r
			if cfg.OnResult != nil {
				cfg.OnResult(r)
			}
		}()
	}
	wg.Wait()
	return results
}

func (m *Manager) renewOne(ctx context.Context, device string, timeout time.Duration) RenewResult {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	r := RenewResult{Device: device}
	ch, err := m.Open(ctx, device)
	if err != nil {
		r.Err = err
		return r
	}
	r.Handshake = ch.Handshake
	r.Renewal, r.Err = ch.Renew(ctx)
	return r
}

// OpenKeyChannel opens the channel an Update Server hands firmware keys
// over: the returned Channel's SendFirmwareKey is what the Update Server
// calls. The interface it satisfies (updateserver.KeyChannel) belongs to
// the Update Server, so this package does not import it; the caller adapts
// (see cmd/myno update --encrypt).
func (m *Manager) OpenKeyChannel(ctx context.Context, device string) (*Channel, error) {
	return m.Open(ctx, device)
}

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

// RenewAllConfig configures RenewAll.
type RenewAllConfig struct {
	Devices []string
	// Parallel bounds the devices in progress at once; 0 is 8.
	Parallel int
	// Timeout bounds each device's handshake plus renewal; 0 is 30 s.
	Timeout time.Duration
	// OnResult is called as each device finishes (from several goroutines).
	OnResult func(RenewResult)
}

// RenewAll opens a channel to each device and renews its credentials, at
// most Parallel at a time. Results come back in the order of Devices.
func (m *Manager) RenewAll(ctx context.Context, cfg RenewAllConfig) []RenewResult {
	if cfg.Parallel <= 0 {
		cfg.Parallel = 8
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
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

// HandOverFirmwareKey opens a channel to device and sends it the key of an
// encrypted firmware transfer of appID at version: what an Update Server
// runs between the accepted manifest and the first slice
// (mup.UpdateConfig.BeforeTransfer).
func (m *Manager) HandOverFirmwareKey(ctx context.Context, device, appID string, version uint32, key []byte) (handshake, handover Phase, err error) {
	ch, err := m.Open(ctx, device)
	if err != nil {
		return Phase{}, Phase{}, err
	}
	handover, err = ch.SendFirmwareKey(ctx, appID, version, key)
	return ch.Handshake, handover, err
}

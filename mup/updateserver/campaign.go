package updateserver

import (
	"context"
	"errors"
	"sync"

	gonetconf "github.com/Juniper/go-netconf/netconf"
)

// CampaignConfig updates several devices with one image.
type CampaignConfig struct {
	Devices []string
	// Parallel bounds the updates in flight; default DefaultParallel.
	Parallel int
	// MaxFailures stops the campaign from starting more updates once this
	// many have failed; 0 never stops it.
	MaxFailures int
	// Dial opens a NETCONF session to the bridge; each worker has its own,
	// because a session carries one rpc at a time.
	Dial func(ctx context.Context) (*gonetconf.Session, error)
	// Update is the template of every update; UUID, NETCONF and Progress
	// are set per device.
	Update UpdateConfig
	// OnResult is called as each device finishes (from a worker goroutine).
	OnResult func(DeviceResult)
	// OnProgress, when set, is each device's UpdateConfig.Progress (from
	// a worker goroutine).
	OnProgress func(uuid string, acked, total, bytes int)
}

// DeviceResult is one device's outcome in a campaign. Skipped means the
// campaign stopped before its update started.
type DeviceResult struct {
	UUID    string
	Result  *Result
	Err     error
	Skipped bool
}

// ErrCampaignStopped is the error of devices skipped after MaxFailures.
var ErrCampaignStopped = errors.New("campaign stopped: too many failures")

// Campaign runs the updates and returns one result per device, in the
// order of cfg.Devices. Its updates share one broker connection
// (cfg.Update.Broker, or one Campaign makes first, within
// cfg.Update.MQTTConnectTimeout): when it cannot be made, every device
// fails with that error (step "broker") and no device hears of the
// campaign.
func Campaign(ctx context.Context, cfg CampaignConfig) []DeviceResult {
	if cfg.Parallel <= 0 {
		cfg.Parallel = DefaultParallel
	}
	results := make([]DeviceResult, len(cfg.Devices))
	if cfg.Update.Broker == nil && len(cfg.Devices) > 0 {
		b, err := DialBroker(ctx, BrokerConfig{URL: cfg.Update.MQTTURL, Credentials: cfg.Update.MQTTCredentials, ConnectTimeout: cfg.Update.MQTTConnectTimeout})
		if err != nil {
			for i, uuid := range cfg.Devices {
				results[i] = DeviceResult{UUID: uuid, Err: &UpdateError{Step: "broker", Err: err}}
				if cfg.OnResult != nil {
					cfg.OnResult(results[i])
				}
			}
			return results
		}
		defer b.Close()
		cfg.Update.Broker = b
	}
	jobs := make(chan int)
	var mu sync.Mutex
	failures := 0
	stopped := func() bool { mu.Lock(); defer mu.Unlock(); return cfg.MaxFailures > 0 && failures >= cfg.MaxFailures }
	finish := func(i int, r DeviceResult) {
		mu.Lock()
		results[i] = r
		if r.Err != nil && !r.Skipped {
			failures++
		}
		mu.Unlock()
		if cfg.OnResult != nil {
			cfg.OnResult(r)
		}
	}
	// One module fetch per module for the whole campaign.
	modules := cfg.Update.Modules
	if modules == nil {
		modules = NewModuleCache()
	}
	var wg sync.WaitGroup
	for range min(cfg.Parallel, len(cfg.Devices)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var s *gonetconf.Session
			defer func() {
				if s != nil {
					s.Close()
				}
			}()
			for i := range jobs {
				uuid := cfg.Devices[i]
				if stopped() {
					finish(i, DeviceResult{UUID: uuid, Skipped: true, Err: ErrCampaignStopped})
					continue
				}
				if s == nil {
					var err error
					if s, err = cfg.Dial(ctx); err != nil {
						s = nil
						finish(i, DeviceResult{UUID: uuid, Err: &UpdateError{Step: "connect", Err: err}})
						continue
					}
				}
				u := cfg.Update
				u.UUID, u.NETCONF, u.Progress, u.Modules = uuid, s, nil, modules
				if cfg.OnProgress != nil {
					u.Progress = func(acked, total, bytes int) { cfg.OnProgress(uuid, acked, total, bytes) }
				}
				res, err := Update(ctx, u)
				if errors.Is(err, ErrNoAnswer) || ctx.Err() != nil {
					// Update closed it, or the campaign ends: the next
					// device gets a session of its own.
					s.Close()
					s = nil
				}
				finish(i, DeviceResult{UUID: uuid, Result: res, Err: err})
			}
		}()
	}
	for i := range cfg.Devices {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return results
}

// Counts tallies a campaign's outcomes. An update is verified only with a
// receipt that checked against the CA; unverified when the device cannot
// sign; failed otherwise (skipped ones are counted apart).
type Counts struct {
	Verified, Unverified, Failed, Skipped int
}

// Tally counts the results of a campaign.
func Tally(results []DeviceResult) Counts {
	var c Counts
	for _, r := range results {
		switch {
		case r.Skipped:
			c.Skipped++
		case r.Err != nil:
			c.Failed++
		case r.Result.Verdict == Verified:
			c.Verified++
		default:
			c.Unverified++
		}
	}
	return c
}

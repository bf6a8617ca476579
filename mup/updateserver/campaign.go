package updateserver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	gonetconf "github.com/Juniper/go-netconf/netconf"
	"github.com/cenkalti/backoff/v5"
	"golang.org/x/time/rate"

	"github.com/myno-bridge/myno/mup"
)

// Campaign defaults.
const (
	DefaultRetryBackoff    = 5 * time.Second
	DefaultRetryMaxBackoff = time.Minute
	DefaultDialAttempts    = 5
	DefaultGroupSuccess    = 100.0
	DefaultAbortMinimum    = 10
)

// CampaignConfig updates several devices with one image, the way AWS IoT
// Jobs and Eclipse hawkBit run rollouts: retries with backoff, a start
// rate, an abort threshold, groups gated on success, and a journal to
// resume from (mup/README.md, Campaigns).
type CampaignConfig struct {
	Devices []string
	// Parallel bounds the updates in flight; default DefaultParallel.
	Parallel int
	// MaxFailures stops the campaign from starting more updates once this
	// many devices have failed; 0 never stops it.
	MaxFailures int
	// AbortPercent stops it once at least AbortMinimum devices have
	// finished (updated or failed) and at least this percentage of them
	// failed (AWS IoT Jobs' abort criteria); 0 never stops it.
	// AbortMinimum defaults to DefaultAbortMinimum.
	AbortPercent float64
	AbortMinimum int
	// Retries is how many more times a device is tried after an attempt
	// that failed for a reason that may pass (Retryable); 0: once.
	Retries int
	// RetryBackoff is the wait before a device's first retry, doubled
	// with jitter for each further one up to RetryMaxBackoff; defaults
	// DefaultRetryBackoff and DefaultRetryMaxBackoff. A device waiting to
	// be retried holds no worker.
	RetryBackoff, RetryMaxBackoff time.Duration
	// Rate bounds the update attempts (first ones and retries) started
	// per minute; 0: no bound.
	Rate float64
	// Groups splits Devices, in order, into rollout groups: cumulative
	// percentages, the last 100 (1, 10, 100: the first 1 %, up to 10 %,
	// the rest). A group starts only once the one before it has finished
	// with at least GroupSuccess percent of its devices updated (default
	// DefaultGroupSuccess). Empty: one group.
	Groups       []float64
	GroupSuccess float64
	// Dial opens a NETCONF session to the bridge; each worker has its own,
	// because a session carries one rpc at a time. A worker whose Dial
	// fails tries again with backoff, DialAttempts times in all (default
	// DefaultDialAttempts), before the device at hand fails (step
	// "connect", retryable); it does not fail the devices after it.
	Dial         func(ctx context.Context) (*gonetconf.Session, error)
	DialAttempts int
	// Update is the template of every update; UUID, NETCONF and Progress
	// are set per device.
	Update UpdateConfig
	// Journal, when set, is told of every start and outcome before the
	// campaign goes on (StateFile); if it fails, the campaign stops.
	Journal Journal
	// Resume holds an earlier run's record of this campaign (OpenState):
	// a device updated there is not updated again; one started there and
	// not finished is first asked for its version, and is not updated
	// again if it runs the new one.
	Resume map[string]StateEntry
	// OnResult is called as each device finishes (from a worker goroutine).
	OnResult func(DeviceResult)
	// OnProgress, when set, is each device's UpdateConfig.Progress (from
	// a worker goroutine).
	OnProgress func(uuid string, acked, total, bytes int)
	// OnCounts is called with the live counts after each change, one call
	// at a time.
	OnCounts func(LiveCounts)
}

// DeviceResult is one device's outcome in a campaign. Skipped means the
// campaign stopped before its update started; Resumed that an earlier run
// of the campaign updated it.
type DeviceResult struct {
	UUID    string
	Result  *Result
	Err     error
	Skipped bool
	Resumed bool
	// Group is the rollout group, from 1; Attempts how many updates were
	// started; StartedAt when the first one was.
	Group     int
	Attempts  int
	StartedAt time.Time
}

// LiveCounts are a campaign's devices by where they are.
type LiveCounts struct {
	Done, Failed, Skipped, InFlight, Retrying, Pending int
}

// ErrCampaignStopped is wrapped by the error of devices skipped because
// the campaign stopped: too many failures, a rollout group below its
// success threshold, a journal that cannot be written, or an interrupt.
var ErrCampaignStopped = errors.New("campaign stopped")

// Retryable reports whether an update that failed with err may succeed
// when tried again: the bridge or the device did not answer in time, the
// connection or the broker failed, slices went unacknowledged, the new
// version did not come up (a device that rolled back), or the device was
// busy (26_SAVESLOT-IN-USE) or its token went stale (22_INVALID-NONCE).
// A device that refused the update for what it is (its signatures,
// version or size), a check that failed before any device heard of it,
// or an unknown device, is not retried.
func Retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, ErrLocalCheck) || errors.Is(err, ErrNoDevice) {
		return false
	}
	var ue *UpdateError
	if errors.As(err, &ue) && ue.State != "" {
		return ue.State == mup.StateSlotInUse || ue.State == mup.StateInvalidNonce
	}
	if errors.Is(err, ErrNoAnswer) || errors.Is(err, ErrNoAck) || errors.Is(err, ErrNoNewVersion) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	return ue != nil && (ue.Step == "connect" || ue.Step == "broker")
}

// Campaign runs the updates and returns one result per device, in the
// order of cfg.Devices. Its updates share one broker connection
// (cfg.Update.Broker, or one Campaign makes first, within
// cfg.Update.MQTTConnectTimeout): when it cannot be made, every device
// fails with that error (step "broker") and no device hears of the
// campaign.
func Campaign(ctx context.Context, cfg CampaignConfig) []DeviceResult {
	c := newCampaign(cfg)
	if c.cfg.Update.Broker == nil && len(cfg.Devices) > 0 {
		b, err := DialBroker(ctx, BrokerConfig{URL: cfg.Update.MQTTURL, Credentials: cfg.Update.MQTTCredentials, ConnectTimeout: cfg.Update.MQTTConnectTimeout})
		if err != nil {
			for i := range c.results {
				c.finish(i, DeviceResult{Err: &UpdateError{Step: "broker", Err: err}}, false)
			}
			return c.results
		}
		defer b.Close()
		c.cfg.Update.Broker = b
	}
	c.run(ctx)
	return c.results
}

// campaign is one run of Campaign.
type campaign struct {
	cfg     CampaignConfig
	limiter *rate.Limiter // nil: no Rate
	modules *ModuleCache

	mu      sync.Mutex
	changed *sync.Cond // the queue, a device's state, or stop changed
	results []DeviceResult
	final   []bool
	queue   []int         // ready to start, in order
	retries []*time.Timer // waiting to be queued again
	counts  LiveCounts
	failed  int   // devices failed, for MaxFailures and AbortPercent
	updated int   // devices updated
	stop    error // why the campaign stopped; nil while it runs
	closed  bool  // no more devices will be queued
	// waiting is the context of the rate limiter's waits: a stop ends
	// them (cancelWaits), not only the campaign's context.
	waiting     context.Context
	cancelWaits context.CancelFunc
	countMu     sync.Mutex
}

func newCampaign(cfg CampaignConfig) *campaign {
	if cfg.Parallel <= 0 {
		cfg.Parallel = DefaultParallel
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = DefaultRetryBackoff
	}
	if cfg.RetryMaxBackoff <= 0 {
		cfg.RetryMaxBackoff = DefaultRetryMaxBackoff
	}
	if cfg.DialAttempts <= 0 {
		cfg.DialAttempts = DefaultDialAttempts
	}
	if cfg.GroupSuccess <= 0 {
		cfg.GroupSuccess = DefaultGroupSuccess
	}
	if cfg.AbortMinimum <= 0 {
		cfg.AbortMinimum = DefaultAbortMinimum
	}
	c := &campaign{cfg: cfg, results: make([]DeviceResult, len(cfg.Devices)), final: make([]bool, len(cfg.Devices)),
		modules: cfg.Update.Modules}
	if c.modules == nil {
		c.modules = NewModuleCache() // one module fetch per module for the whole campaign
	}
	if cfg.Rate > 0 {
		c.limiter = rate.NewLimiter(rate.Limit(cfg.Rate/60), 1)
	}
	c.changed = sync.NewCond(&c.mu)
	groups := GroupSizes(len(cfg.Devices), cfg.Groups)
	i := 0
	for g, n := range groups {
		for ; i < n; i++ {
			c.results[i] = DeviceResult{UUID: cfg.Devices[i], Group: g + 1}
		}
	}
	return c
}

// GroupSizes turns cumulative percentages of n devices into cumulative
// counts, each group at least one device larger than the one before
// while devices remain (1 % of 50 is 1); the last is n.
func GroupSizes(n int, percents []float64) []int {
	var out []int
	for _, p := range percents {
		k := int(math.Ceil(p / 100 * float64(n)))
		if len(out) > 0 && k <= out[len(out)-1] {
			k = out[len(out)-1] + 1
		}
		k = min(max(k, 1), n)
		if len(out) > 0 && k == out[len(out)-1] {
			continue
		}
		out = append(out, k)
	}
	if len(out) == 0 || out[len(out)-1] != n {
		out = append(out, n)
	}
	return out
}

// CheckGroups checks rollout group percentages: increasing, in (0, 100],
// the last 100.
func CheckGroups(percents []float64) error {
	for i, p := range percents {
		if p <= 0 || p > 100 || (i > 0 && p <= percents[i-1]) {
			return fmt.Errorf("rollout groups %v: want increasing percentages in (0, 100]", percents)
		}
	}
	if len(percents) > 0 && percents[len(percents)-1] != 100 {
		return fmt.Errorf("rollout groups %v: the last must be 100%%", percents)
	}
	return nil
}

// run feeds the groups to the workers, one after another, and waits.
func (c *campaign) run(ctx context.Context) {
	c.mu.Lock()
	c.waiting, c.cancelWaits = context.WithCancel(ctx)
	if c.stop != nil {
		c.cancelWaits()
	}
	c.mu.Unlock()
	defer c.cancelWaits()
	stopWaking := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.stopLocked(fmt.Errorf("%w: interrupted (%w)", ErrCampaignStopped, context.Cause(ctx)))
		c.mu.Unlock()
	})
	defer stopWaking()
	var wg sync.WaitGroup
	for range min(c.cfg.Parallel, len(c.cfg.Devices)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.work(ctx)
		}()
	}
	start := 0
	for g, end := range GroupSizes(len(c.cfg.Devices), c.cfg.Groups) {
		c.mu.Lock()
		if c.stop == nil {
			for i := start; i < end; i++ {
				c.enqueueLocked(i)
			}
			for c.stop == nil && !c.allFinalLocked(start, end) {
				c.changed.Wait()
			}
			if c.stop == nil && end < len(c.cfg.Devices) {
				updated := 0
				for i := start; i < end; i++ {
					if c.results[i].Err == nil {
						updated++
					}
				}
				if share := 100 * float64(updated) / float64(end-start); share < c.cfg.GroupSuccess {
					c.stopLocked(fmt.Errorf("%w: rollout group %d updated %d of %d devices (%.0f%%), under the %.0f%% the next group needs",
						ErrCampaignStopped, g+1, updated, end-start, share, c.cfg.GroupSuccess))
				}
			}
		}
		c.mu.Unlock()
		start = end
	}
	c.mu.Lock()
	c.closed = true
	c.changed.Broadcast()
	c.mu.Unlock()
	wg.Wait()
	// Devices never queued (groups after a stop), or waiting for a retry.
	c.mu.Lock()
	for _, t := range c.retries {
		t.Stop()
	}
	c.mu.Unlock()
	for i := range c.results {
		if !c.isFinal(i) {
			c.finishUnstarted(i)
		}
	}
}

// work takes devices off the queue until it is closed and empty.
func (c *campaign) work(ctx context.Context) {
	var s *gonetconf.Session
	defer func() {
		if s != nil {
			s.Close()
		}
	}()
	for {
		i, ok := c.next(ctx)
		if !ok {
			return
		}
		if c.limiter != nil {
			if err := c.limiter.Wait(c.waiting); err != nil {
				if !c.stopped(ctx) {
					// Not a stop: the next start would come after ctx's
					// deadline.
					c.stopWith(fmt.Errorf("%w: at --rate, the next update would start after the deadline", ErrCampaignStopped))
				}
				c.requeueUnstarted(i)
				continue
			}
		}
		if c.stopped(ctx) {
			c.requeueUnstarted(i)
			continue
		}
		uuid := c.cfg.Devices[i]
		if c.cfg.Journal != nil {
			// Journaled before it starts: a run killed from here on
			// asks the device its version before updating it again.
			if err := c.cfg.Journal.Started(uuid, c.attempts(i)+1); err != nil {
				c.stopWith(fmt.Errorf("%w: the campaign state cannot be written: %w", ErrCampaignStopped, err))
				continue
			}
		}
		if !c.started(i) {
			continue // stopped meanwhile: not started, skipped at the end
		}
		var err error
		if s == nil {
			s, err = c.dial(ctx)
		}
		var res *Result
		switch {
		case err != nil:
			err = &UpdateError{Step: "connect", Err: err}
		default:
			if v, done := c.alreadyUpdated(ctx, s, i); done {
				res = &Result{Version: v, Note: "found running the new version before updating it again: an earlier attempt installed it"}
				break
			}
			res, err = c.update(ctx, s, uuid)
		}
		if err != nil && s != nil && !deviceRefused(err) {
			// The session may be what failed (closed by Update, cut, or
			// the campaign ends): the next device gets one of its own.
			s.Close()
			s = nil
		}
		c.attemptDone(ctx, i, res, err)
	}
}

// update runs one attempt.
func (c *campaign) update(ctx context.Context, s *gonetconf.Session, uuid string) (*Result, error) {
	u := c.cfg.Update
	u.UUID, u.NETCONF, u.Progress, u.Modules = uuid, s, nil, c.modules
	if c.cfg.OnProgress != nil {
		u.Progress = func(acked, total, bytes int) { c.cfg.OnProgress(uuid, acked, total, bytes) }
	}
	return Update(ctx, u)
}

// dial opens a session, trying DialAttempts times with backoff.
func (c *campaign) dial(ctx context.Context) (*gonetconf.Session, error) {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = 200*time.Millisecond, 5*time.Second
	return backoff.Retry(ctx, func() (*gonetconf.Session, error) { return c.cfg.Dial(ctx) },
		backoff.WithBackOff(b), backoff.WithMaxTries(uint(c.cfg.DialAttempts)), backoff.WithMaxElapsedTime(0))
}

// deviceRefused reports whether err is the device's own answer (a MUP
// state code): the session that carried it is sound.
func deviceRefused(err error) bool {
	var ue *UpdateError
	return errors.As(err, &ue) && ue.State != ""
}

// alreadyUpdated reports whether device i, when an earlier attempt may
// have installed the image (a retry of this run; one started, or failed,
// in an earlier run), already runs a version this campaign installs,
// and which: then it is not updated again.
func (c *campaign) alreadyUpdated(ctx context.Context, s *gonetconf.Session, i int) (uint32, bool) {
	c.mu.Lock()
	prev, resumed := c.cfg.Resume[c.cfg.Devices[i]]
	retry := c.results[i].Attempts > 1
	c.mu.Unlock()
	if !retry && !(resumed && (prev.State == StateStarted || prev.State == StateFailed)) {
		return 0, false
	}
	v := c.versionOf(ctx, s, c.cfg.Devices[i])
	return v, v != 0 && slices.Contains(TargetVersions(c.cfg.Update), v)
}

// versionOf is the version the bridge shows for uuid, 0 if none, asked
// within the rpc timeout.
func (c *campaign) versionOf(ctx context.Context, s *gonetconf.Session, uuid string) uint32 {
	dev, err := newDeadlineClient(ctx, s, cmp.Or(c.cfg.Update.RPCTimeout, DefaultRPCTimeout)).Device(uuid)
	if err != nil {
		return 0
	}
	v, err := strconv.ParseUint(dev.FirmwareVersion, 10, 32)
	if err != nil {
		return 0
	}
	return uint32(v)
}

// next waits for a device to start; false once the queue is closed and
// empty, or the campaign stopped.
func (c *campaign) next(ctx context.Context) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if c.stop != nil || ctx.Err() != nil {
			return 0, false
		}
		if len(c.queue) > 0 {
			i := c.queue[0]
			c.queue = c.queue[1:]
			return i, true
		}
		if c.closed && len(c.retries) == 0 {
			return 0, false
		}
		c.changed.Wait()
	}
}

func (c *campaign) enqueueLocked(i int) {
	if prev, ok := c.cfg.Resume[c.cfg.Devices[i]]; ok && prev.State == StateDone {
		r := c.results[i]
		r.Resumed, r.Result = true, &Result{Version: prev.Version, Protocol: prev.Protocol, Verdict: prev.Verdict, Signer: prev.Signer,
			Note: "updated by an earlier run of this campaign"}
		c.mu.Unlock()
		c.finish(i, r, false)
		c.mu.Lock()
		return
	}
	c.queue = append(c.queue, i)
	c.changed.Broadcast()
}

// attempts is how many times device i was started.
func (c *campaign) attempts(i int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.results[i].Attempts
}

// started notes an attempt of device i; false, and nothing noted, when
// the campaign stopped (checked under the lock that stop takes, so no
// update starts after a stop).
func (c *campaign) started(i int) bool {
	c.mu.Lock()
	if c.stop != nil {
		c.mu.Unlock()
		return false
	}
	r := &c.results[i]
	r.Attempts++
	if r.Attempts == 1 {
		r.StartedAt = time.Now()
	} else {
		c.counts.Retrying--
	}
	c.counts.InFlight++
	c.mu.Unlock()
	c.reportCounts()
	return true
}

// attemptDone finishes device i or, when the failure may pass and it has
// tries left, queues it again after a backoff.
func (c *campaign) attemptDone(ctx context.Context, i int, res *Result, err error) {
	c.mu.Lock()
	c.counts.InFlight--
	r := c.results[i]
	r.Result, r.Err = res, err
	if err != nil && Retryable(err) && r.Attempts <= c.cfg.Retries && c.stop == nil && ctx.Err() == nil {
		c.results[i] = r
		c.counts.Retrying++
		delay := retryDelay(c.cfg.RetryBackoff, c.cfg.RetryMaxBackoff, r.Attempts)
		var t *time.Timer
		t = time.AfterFunc(delay, func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if j := slices.Index(c.retries, t); j >= 0 {
				c.retries = slices.Delete(c.retries, j, j+1)
				c.queue = append(c.queue, i)
				c.changed.Broadcast()
			}
		})
		c.retries = append(c.retries, t)
		c.mu.Unlock()
		c.reportCounts()
		return
	}
	c.mu.Unlock()
	// An interrupted attempt stays "started" in the journal: the next run
	// asks the device its version before updating it again.
	c.finish(i, r, ctx.Err() == nil)
}

// retryDelay is the wait before retry n (from 1): base doubled n-1 times,
// at most max, with ±25 % jitter (backoff.ExponentialBackOff).
func retryDelay(base, limit time.Duration, n int) time.Duration {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.RandomizationFactor, b.Multiplier = base, limit, 0.25, 2
	b.Reset()
	d := b.NextBackOff()
	for range n - 1 {
		d = b.NextBackOff()
	}
	return d
}

// requeueUnstarted puts a device taken off the queue but not started
// back, unless the campaign stopped (then it is skipped at the end).
func (c *campaign) requeueUnstarted(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stop == nil {
		c.queue = append([]int{i}, c.queue...)
		c.changed.Broadcast()
	}
}

// finishUnstarted ends a device the campaign stopped before (again):
// skipped if it never started, failed with its last error if it did.
func (c *campaign) finishUnstarted(i int) {
	c.mu.Lock()
	r, why := c.results[i], c.stop
	if r.Attempts > 0 {
		c.counts.Retrying--
	} else {
		r.Skipped, r.Err = true, why
	}
	c.mu.Unlock()
	c.finish(i, r, r.Attempts > 0)
}

// finish records device i's outcome, journals it, and stops the campaign
// when its failures pass a threshold.
func (c *campaign) finish(i int, r DeviceResult, journal bool) {
	c.mu.Lock()
	if c.final[i] {
		c.mu.Unlock()
		return
	}
	r.UUID, r.Group = c.cfg.Devices[i], max(r.Group, c.results[i].Group)
	c.results[i], c.final[i] = r, true
	switch {
	case r.Skipped:
		c.counts.Skipped++
	case r.Err != nil:
		c.counts.Failed++
		c.failed++
	default:
		c.counts.Done++
		c.updated++
	}
	executed := c.failed + c.updated
	switch {
	case c.cfg.MaxFailures > 0 && c.failed >= c.cfg.MaxFailures:
		c.stopLocked(fmt.Errorf("%w: %d of its devices failed (at most %d)", ErrCampaignStopped, c.failed, c.cfg.MaxFailures))
	case c.cfg.AbortPercent > 0 && executed >= c.cfg.AbortMinimum && 100*float64(c.failed) >= c.cfg.AbortPercent*float64(executed):
		c.stopLocked(fmt.Errorf("%w: %d of %d devices failed (%.1f%%, the abort threshold is %.1f%% after %d)",
			ErrCampaignStopped, c.failed, executed, 100*float64(c.failed)/float64(executed), c.cfg.AbortPercent, c.cfg.AbortMinimum))
	}
	c.changed.Broadcast()
	c.mu.Unlock()
	if journal && c.cfg.Journal != nil && !r.Skipped && !r.Resumed {
		if err := c.cfg.Journal.Finished(r); err != nil {
			c.stopWith(fmt.Errorf("%w: the campaign state cannot be written: %w", ErrCampaignStopped, err))
		}
	}
	if c.cfg.OnResult != nil {
		c.cfg.OnResult(r)
	}
	c.reportCounts()
}

func (c *campaign) stopWith(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopLocked(err)
}

// stopLocked stops the campaign: nothing more starts; queued devices are
// skipped at the end, in-flight ones finish.
func (c *campaign) stopLocked(err error) {
	if c.stop == nil {
		c.stop = err
		c.queue = nil
		if c.cancelWaits != nil {
			c.cancelWaits() // rate limiter waits end now
		}
		c.changed.Broadcast()
	}
}

func (c *campaign) stopped(ctx context.Context) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stop != nil || ctx.Err() != nil
}

func (c *campaign) isFinal(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.final[i]
}

func (c *campaign) allFinalLocked(start, end int) bool {
	return !slices.Contains(c.final[start:end], false)
}

// reportCounts calls OnCounts, one call at a time, with the counts as
// they are then.
func (c *campaign) reportCounts() {
	if c.cfg.OnCounts == nil {
		return
	}
	c.countMu.Lock()
	defer c.countMu.Unlock()
	c.mu.Lock()
	counts := c.counts
	counts.Pending = len(c.results) - counts.Done - counts.Failed - counts.Skipped - counts.InFlight - counts.Retrying
	c.mu.Unlock()
	c.cfg.OnCounts(counts)
}

// Counts tallies a campaign's outcomes. An update is verified only with a
// receipt that checked against the CA; unverified when the device cannot
// sign; failed otherwise (skipped ones are counted apart).
type Counts struct {
	Verified   int `json:"verified"`
	Unverified int `json:"unverified"`
	Failed     int `json:"failed"`
	Skipped    int `json:"skipped"`
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

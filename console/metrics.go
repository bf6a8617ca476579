package console

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/myno-bridge/myno/mup/e2e/manager"
	"github.com/myno-bridge/myno/mup/updateserver"
)

// consoleMetrics are the Prometheus metrics of what the console does
// that the bridges do not see whole: firmware updates and their phases
// (the console's Update Server) and E2E exchanges (its manager). They
// are in a registry of the console's own, served on a listener of their
// own (Config.MetricsListen), never behind the console's login.
//
// Labels take values of fixed sets only (updateserver.Outcome,
// UpdateError.Phase, the phases of Result.OrderedPhases,
// manager.Outcome): never a device uuid or an error's text.
type consoleMetrics struct {
	reg          *prometheus.Registry
	transfers    *prometheus.CounterVec
	phaseSeconds *prometheus.HistogramVec
	bytes        prometheus.Counter
	resent       prometheus.Counter
	e2e          *prometheus.CounterVec
}

func newMetrics(m *manager.Manager) *consoleMetrics {
	cm := &consoleMetrics{reg: prometheus.NewRegistry()}
	cm.transfers = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "myno_update_transfers_total",
		Help: "Firmware updates run, by protocol (cose, v1; unknown: failed before the device's module was read), " +
			"result (ok, refused, timeout, canceled, error) and, for those that failed, the phase they stopped in " +
			"(setup, token, manifest, key, transfer, image, receipt, reboot, other)."},
		[]string{"protocol", "result", "phase"})
	cm.phaseSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "myno_update_phase_duration_seconds",
		Help:    "Time of each phase an update went through (token, manifest, key, transfer, image, reboot; MUP v1: version), failed updates' too.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 14)}, []string{"phase"})
	cm.bytes = prometheus.NewCounter(prometheus.CounterOpts{Name: "myno_update_bytes_total",
		Help: "Firmware image bytes the devices acknowledged."})
	cm.resent = prometheus.NewCounter(prometheus.CounterOpts{Name: "myno_update_slices_resent_total",
		Help: "Firmware slices sent again after an ack timeout."})
	cm.e2e = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "myno_e2e_handshakes_total",
		Help: "E2E exchanges with devices, by kind (key-agreement: the channel's handshake; renewal: a new certificate and key; " +
			"firmware-key: an encrypted transfer's key) and result (ok, refused, timeout, canceled, error)."},
		[]string{"kind", "result"})
	cm.reg.MustRegister(cm.transfers, cm.phaseSeconds, cm.bytes, cm.resent, cm.e2e,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if m != nil {
		cm.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "myno_e2e_refused_messages_total",
			Help: "E2E readies and statuses that did not verify (forged, garbled or replayed), which the manager ignored."},
			func() float64 { return float64(m.Refused.Load()) }))
	}
	return cm
}

// UpdateDone counts one update (updateserver.Observer).
func (cm *consoleMetrics) UpdateDone(_ string, res *updateserver.Result, err error) {
	protocol := string(res.Protocol)
	if protocol == "" { // it failed before the device's module was read
		protocol = "unknown"
	}
	phase := ""
	var ue *updateserver.UpdateError
	if errors.As(err, &ue) {
		phase = ue.Phase()
	} else if err != nil {
		phase = "other"
	}
	cm.transfers.WithLabelValues(protocol, updateserver.Outcome(err), phase).Inc()
	for _, p := range res.OrderedPhases() {
		cm.phaseSeconds.WithLabelValues(p.Name).Observe(p.Duration.Seconds())
	}
	cm.bytes.Add(float64(res.Bytes))
	cm.resent.Add(float64(res.Resent))
}

// Exchanged counts one E2E exchange (manager.Observer).
func (cm *consoleMetrics) Exchanged(kind manager.Exchange, _ string, _ manager.Phase, err error) {
	cm.e2e.WithLabelValues(string(kind), manager.Outcome(err)).Inc()
}

// MetricsHandler serves GET /metrics (Prometheus text format): updates,
// their phases and E2E exchanges, and the Go runtime's and the process's
// metrics. It asks for no login: serve it where only the scraper reaches
// (Config.MetricsListen, on loopback), never beside Handler.
func (c *Console) MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(c.metrics.reg, promhttp.HandlerOpts{}))
	return mux
}

// MetricsAddr is where MetricsHandler is served ("" when
// Config.MetricsListen is off).
func (c *Console) MetricsAddr() string {
	if c.metricsLn == nil {
		return ""
	}
	return c.metricsLn.Addr().String()
}

// listenMetrics opens Config.MetricsListen, when set.
func (c *Console) listenMetrics() error {
	if c.cfg.MetricsListen == "" {
		return nil
	}
	ln, err := net.Listen("tcp", c.cfg.MetricsListen)
	if err != nil {
		return err
	}
	c.metricsLn = ln
	c.metricsSrv = &http.Server{Handler: c.MetricsHandler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute,
		BaseContext: func(net.Listener) context.Context { return c.ctx }}
	return nil
}

// serveMetrics serves the metrics listener until stopMetrics; the console
// owns the goroutine.
func (c *Console) serveMetrics() {
	if c.metricsSrv == nil {
		return
	}
	c.tasks.Go(func() {
		if err := c.metricsSrv.Serve(c.metricsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.cfg.Logger.Error("console metrics server stopped", "addr", c.metricsLn.Addr().String(), "err", err)
		}
	})
}

// stopMetrics shuts the metrics listener down: the scrapes in progress
// end (for 5 s at most), then the connections close.
func (c *Console) stopMetrics() {
	if c.metricsSrv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.metricsSrv.Shutdown(ctx); err != nil {
		c.metricsSrv.Close()
	}
}

package bridge

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/netconf"
	"github.com/myno-bridge/myno/yang"
)

// bridgeMetrics are the bridge's Prometheus metrics, in a registry of its own
// (no global state: two bridges in one process keep theirs apart).
type bridgeMetrics struct {
	reg        *prometheus.Registry
	rpcs       *prometheus.CounterVec
	rpcSeconds *prometheus.HistogramVec
	bootstraps *prometheus.CounterVec
	mqttMsgs   *prometheus.CounterVec
	mqttBytes  *prometheus.CounterVec
	firmware   prometheus.Counter
	followLag  prometheus.Histogram
	// configCalls counts the configuration operations called on devices
	// (configuration.go), by cause and result.
	configCalls *prometheus.CounterVec
}

// RPC results besides an rpc-error's tag.
const (
	resultOK      = "ok"
	resultTimeout = "timeout" // the device did not answer in time (device-timeout)
)

func newMetrics(b *Bridge) *bridgeMetrics {
	m := &bridgeMetrics{reg: prometheus.NewRegistry()}
	m.rpcs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "myno_rpcs_total",
		Help: "Device rpcs answered, by module, rpc and result: ok, timeout, or the rpc-error's tag."}, []string{"module", "rpc", "result"})
	m.rpcSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "myno_rpc_duration_seconds",
		Help: "Time from a device rpc's arrival to its reply, by module and rpc.", Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12)}, []string{"module", "rpc"})
	m.bootstraps = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "myno_bootstraps_total",
		Help: "Bootstraps answered: registered (OK) or refused (ERROR)."}, []string{"result"})
	m.mqttMsgs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "myno_mqtt_messages_total",
		Help: "MQTT messages of the bridge's connection, by direction (in, out)."}, []string{"direction"})
	m.mqttBytes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "myno_mqtt_payload_bytes_total",
		Help: "MQTT payload bytes of the bridge's connection, by direction (in, out)."}, []string{"direction"})
	m.firmware = prometheus.NewCounter(prometheus.CounterOpts{Name: "myno_firmware_reports_total",
		Help: "Firmware versions reported by devices (after a bootstrap or an update)."})
	m.followLag = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "myno_cluster_follow_lag_seconds",
		Help:    "Time from another instance writing a registration to etcd to this instance holding it (issue 18: at most 1 s); none for a bridge alone.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}})
	m.configCalls = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "myno_configuration_calls_total",
		Help: "Configuration operations called on devices, by cause (change: running changed; undo: a device's change put back; reconcile: a device came back) and result (applied, failed)."}, []string{"cause", "result"})
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	counter := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f)
	}
	m.reg.MustRegister(m.rpcs, m.rpcSeconds, m.bootstraps, m.mqttMsgs, m.mqttBytes, m.firmware, m.followLag, m.configCalls,
		gauge("myno_configuration_pending", "Configuration operations of registered devices not applied yet (the device is offline, or being configured).", func() float64 {
			return float64(b.config.count(yang.ConfigPending))
		}),
		gauge("myno_configuration_failed", "Configuration operations whose last call failed; tried again when the device comes back.", func() float64 {
			return float64(b.config.count(yang.ConfigFailed))
		}),
		gauge("myno_devices_registered", "Devices registered.", func() float64 { n, _ := b.registry.counts(); return float64(n) }),
		gauge("myno_devices_online", "Registered devices online.", func() float64 { return float64(b.onlineCount()) }),
		gauge("myno_modules", "YANG modules served (one per description shape).", func() float64 { _, n := b.registry.counts(); return float64(n) }),
		gauge("myno_netconf_sessions", "NETCONF sessions open.", func() float64 { return float64(len(b.nc.Sessions())) }),
		counter("myno_netconf_auth_failures_total", "NETCONF password logins refused.", func() float64 { return float64(b.nc.AuthFailures()) }),
		counter("myno_mqtt_dropped_messages_total", "MQTT messages the embedded broker dropped because a client read too slowly (its queue of pending writes was full).", func() float64 {
			if b.broker == nil {
				return 0
			}
			return float64(b.broker.DroppedMessages())
		}),
		counter("myno_mqtt_refused_connects_total", "MQTT connections the embedded broker refused (credentials, access).", func() float64 {
			if b.broker == nil {
				return 0
			}
			return float64(b.broker.RefusedConnects())
		}),
		gauge("myno_cluster_members", "Live instances of the cluster, as this one sees them (0 for a bridge alone).", func() float64 {
			return float64(len(b.owner.members()))
		}),
		gauge("myno_cluster_writable", "1 while the cluster's store (etcd) takes registrations and deletes, 0 without its quorum (read-only); 1 for a bridge alone.", func() float64 {
			if b.owner.readOnly() != "" {
				return 0
			}
			return 1
		}),
		counter("myno_cluster_owned_requests_total", "Bootstrap, delete and lookup requests this instance answered as the device's owner (0 for a bridge alone).", func() float64 {
			return float64(b.owner.answered())
		}),
		counter("myno_answers_dropped_total", "Device answers dropped: late, unknown, or not from the device they name (forged).", func() float64 {
			return float64(b.calls.unmatched.Load() + b.calls.mismatched.Load())
		}),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// rpcDone counts one device rpc.
func (m *bridgeMetrics) rpcDone(module, rpc string, err error, took time.Duration) {
	result := resultOK
	var re *netconf.RPCError
	switch {
	case errors.As(err, &re) && re.AppTag == "device-timeout":
		result = resultTimeout
	case errors.As(err, &re):
		result = re.Tag
	case err != nil:
		result = netconf.TagOperationFailed
	}
	m.rpcs.WithLabelValues(module, rpc, result).Inc()
	m.rpcSeconds.WithLabelValues(module, rpc).Observe(took.Seconds())
}

// countingTransport counts the bridge's MQTT messages out.
type countingTransport struct {
	client.Transport
	m *bridgeMetrics
}

func (t countingTransport) Publish(ctx context.Context, msg client.Message, qos byte) error {
	err := t.Transport.Publish(ctx, msg, qos)
	if err == nil {
		t.m.mqttMsgs.WithLabelValues("out").Inc()
		t.m.mqttBytes.WithLabelValues("out").Add(float64(len(msg.Payload)))
	}
	return err
}

func (t countingTransport) PublishRetained(ctx context.Context, msg client.Message) error {
	err := t.Transport.PublishRetained(ctx, msg)
	if err == nil {
		t.m.mqttMsgs.WithLabelValues("out").Inc()
		t.m.mqttBytes.WithLabelValues("out").Add(float64(len(msg.Payload)))
	}
	return err
}

// received counts one MQTT message in.
func (m *bridgeMetrics) received(msg client.Message) {
	m.mqttMsgs.WithLabelValues("in").Inc()
	m.mqttBytes.WithLabelValues("in").Add(float64(len(msg.Payload)))
}

// HTTPHandler serves /metrics (Prometheus text format), /healthz (the
// process answers) and /readyz (the registry is loaded, the broker
// connection is up, NETCONF listens; a cluster instance without its
// store's quorum says it is read-only).
func (b *Bridge) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(b.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if why := b.notReady(); why != "" {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		// Without the cluster's quorum the bridge still serves the devices
		// it knows: ready, and it says what it refuses.
		if why := b.owner.readOnly(); why != "" {
			_, _ = w.Write([]byte("ready, " + why + ": registrations and deletes are refused\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return mux
}

// notReady says why the bridge is not ready, or "".
func (b *Bridge) notReady() string {
	switch {
	case b.ctx.Err() != nil:
		return "shutting down"
	case b.mq == nil || !b.mq.Connected():
		return "the broker connection is down"
	case b.ln == nil:
		return "NETCONF does not listen"
	}
	return ""
}

// onlineCount is the registered devices online, as the device-event
// notifications last told (on an external broker, silence turns a device
// offline at the next presence expiry, within a second).
func (b *Bridge) onlineCount() int { return b.presence.told() }

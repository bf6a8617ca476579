// Package bridge composes the system: it receives device descriptions over
// MQTT (bootstrap), turns them into YANG modules (packages ontology and
// yang), serves them as NETCONF rpcs and state (package netconf), and
// translates each rpc into an MQTT request/response with the device.
//
// The parts, one file each:
//
//   - config.go: Config and its defaults;
//   - bridge.go: Start and Close, as a composition of the parts below;
//   - registry.go: the registry type: devices, the modules they share (one
//     per shape), telemetry topics, one lock, and persistence in the data
//     directory, so that a restart needs no re-bootstrap;
//   - assembly.go and bootstrap.go: yang/config/create|update|delete|
//     retrieve, chunk assembly per UUID with limits on size, chunk count
//     and time;
//   - calls.go and rpc.go: NETCONF rpc -> validated input -> MQTT command
//     with reqId, ResponseTopic and CorrelationData -> the device's answer
//     -> rpc-reply, with a timeout; pendingCalls owns the rpcs in flight;
//   - telemetry.go: sensor readings as state data and notifications;
//   - ownership.go and cluster.go: who answers which device: a bridge
//     alone (solo), or an instance of a cluster on one broker whose state
//     is in etcd (scale-out, package cluster: rendezvous ownership, the
//     shared registry, per-instance answers);
//   - tasks.go: every goroutine of the bridge, which Close waits for.
//
// Topics and payload formats are package wire's; the MQTT client and the
// embedded broker are packages mqtt/client and mqtt/broker.
package bridge

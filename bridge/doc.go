// Package bridge composes the system: it receives device descriptions over
// MQTT (bootstrap), turns them into YANG modules (packages ontology and
// yang), serves them as NETCONF rpcs and state (package netconf), and
// translates each rpc into an MQTT request/response with the device.
//
// The parts, one file each:
//
//   - broker.go: the embedded MQTT broker (mochi-mqtt, MQTT 3.1.1 and 5);
//   - bootstrap.go: yang/config/create|update|delete|retrieve, chunk
//     assembly per UUID with limits on size, chunk count and time;
//   - registry.go: devices and the modules they share (one per shape),
//     persisted in the data directory so that a restart needs no
//     re-bootstrap;
//   - rpc.go: NETCONF rpc -> validated input -> MQTT command with reqId,
//     ResponseTopic and CorrelationData -> the device's answer -> rpc-reply,
//     with a timeout;
//   - telemetry.go: sensor readings as state data and notifications;
//   - cluster.go: several instances on one broker (scale-out): who
//     answers which device, the replicated registry, per-instance answers;
//   - bridge.go: configuration, start and graceful stop.
//
// The wire formats are in bridge/wire and the MQTT client in bridge/client.
package bridge

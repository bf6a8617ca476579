// Package broker is the embedded MQTT broker (mochi-mqtt, MQTT 3.1.1 and
// 5) that the bridge can run in-process: Start listens on a TCP address
// and serves until Close.
//
// Around mochi-mqtt v2.7.9 it adds:
//
//   - its own TCP listener (listener.go), which keeps accepting after an
//     accept error (EMFILE at the file-descriptor limit, say) with a
//     backoff, logs and counts such errors (Broker.AcceptErrors), and
//     closes before the clients on shutdown; Config.WrapListener lets a
//     caller wrap the net.Listener;
//   - hooks: AnnounceTopicAliases puts the Topic Alias Maximum into MQTT 5
//     CONNACKs (§3.2.2.3.8), a session gate (sessiongate.go) lets one
//     connection of a client identifier at a time establish its session,
//     ends the previous session first and drops CONNECTs whose client has
//     gone, so that a reconnecting client replaces its old session
//     instead of being removed by its cleanup [MQTT-3.1.4-3], an optional bbolt store keeps sessions and retained
//     messages across restarts (Config.DataDir), and Config.Hooks adds the
//     caller's before the first client connects;
//   - CloseMochi, a shutdown that avoids mochi's deadlock on clients
//     disconnecting meanwhile;
//   - InlineClient, a client.Transport inside the broker, without a
//     network hop.
package broker

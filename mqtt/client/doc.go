// Package client is the MQTT client of the bridge and the virtual devices:
// one small interface (Transport) over paho.golang's autopaho (MQTT 5) and
// paho.mqtt.golang (MQTT 3.1.1, which paho.golang does not speak), that
// reconnects with backoff and restores its subscriptions.
//
// Subscriptions are restored on every connection, because each one
// starts a clean session (MQTT 5 §3.1.2.4, 3.1.1 §3.1.2.4) or may find
// the broker restarted without them. For each connection one goroutine
// sends a SUBSCRIBE per topic and keeps sending those the broker does not
// grant (an error, no SUBACK in time, or a SUBACK failure code, 0x80 and
// above, MQTT 5 §3.9.3 and 3.1.1 §3.9.3) with a capped exponential
// backoff and jitter, until all are granted; then Config.OnReconnect is
// called. A topic unsubscribed meanwhile is not restored. The goroutine
// ends when its connection goes down (the next connection starts over) or
// when the Transport is closed: Close waits for it.
package client

package devices

import (
	"context"

	"github.com/myno-bridge/myno/bridge/mqttc"
)

// The MQTT client lives in bridge/mqttc, shared with the bridge; these
// names keep the devices API self-contained.
type (
	Protocol        = mqttc.Protocol
	Message         = mqttc.Message
	Transport       = mqttc.Transport
	TransportConfig = mqttc.Config
)

// MQTT versions.
const (
	MQTT311 = mqttc.MQTT311
	MQTT5   = mqttc.MQTT5
)

// Dial connects to a broker; see mqttc.Dial.
func Dial(ctx context.Context, cfg TransportConfig) (Transport, error) { return mqttc.Dial(ctx, cfg) }

// ParseProtocol reads "3.1.1" or "5"; see mqttc.ParseProtocol.
func ParseProtocol(s string) (Protocol, error) { return mqttc.ParseProtocol(s) }

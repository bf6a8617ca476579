package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/urfave/cli/v3"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/mqtt/broker"
	"github.com/myno-bridge/myno/mqtt/client"
)

// Flag defaults that several commands share, each defined once: the
// clients' defaults point at what myno bridge and myno demo run by default.
const (
	defaultBrokerURL   = "mqtt://" + broker.DefaultListen
	defaultNetconfAddr = bridge.DefaultNetconfListen
	defaultNetconfUser = bridge.AdminUser
	defaultCADir       = "ca"
	// defaultMQTTConnectTimeout is the bridge's (bridge.Config).
	defaultMQTTConnectTimeout = bridge.DefaultMQTTConnectTimeout
)

// logLevelFlag is --log-level, with its environment twin.
func logLevelFlag(value string) cli.Flag {
	return &cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error", Value: value, Sources: cli.EnvVars("MYNO_LOG_LEVEL"),
		// An unknown level is refused, not taken as info.
		Validator: func(s string) error {
			var l slog.Level
			if err := l.UnmarshalText([]byte(s)); err != nil {
				return fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
			}
			return nil
		}}
}

// mqttAuthFlags are the broker credentials of every command that connects
// to MQTT; mqttCredentials reads them.
func mqttAuthFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "mqtt-username", Usage: "broker user name (or in the URL: mqtt://user:password@host:port)", Sources: cli.EnvVars("MYNO_MQTT_USERNAME")},
		&cli.StringFlag{Name: "mqtt-password", Usage: "broker password; prefer MYNO_MQTT_PASSWORD or --mqtt-password-file, which stay out of the process list", Sources: cli.EnvVars("MYNO_MQTT_PASSWORD")},
		&cli.StringFlag{Name: "mqtt-password-file", Usage: "`FILE` holding the broker password (its first line)", Sources: cli.EnvVars("MYNO_MQTT_PASSWORD_FILE")},
		&cli.StringFlag{Name: "mqtt-ca", Usage: "PEM `FILE` of CA certificates to trust for an mqtts:// broker, besides the system's", Sources: cli.EnvVars("MYNO_MQTT_CA")},
		&cli.StringFlag{Name: "mqtt-cert", Usage: "client certificate `FILE` (PEM) for a broker that asks for one (mutual TLS)", Sources: cli.EnvVars("MYNO_MQTT_CERT")},
		&cli.StringFlag{Name: "mqtt-key", Usage: "key `FILE` (PEM) of --mqtt-cert", Sources: cli.EnvVars("MYNO_MQTT_KEY")},
		&cli.DurationFlag{Name: "mqtt-connect-timeout", Value: defaultMQTTConnectTimeout, Usage: "how long the first connection to the broker is tried (each failed attempt is logged)", Sources: cli.EnvVars("MYNO_MQTT_CONNECT_TIMEOUT")},
	}
}

// mqttCredentials reads the flags of mqttAuthFlags.
func mqttCredentials(cmd *cli.Command) (client.Credentials, error) {
	password, err := mqttPassword(cmd)
	if err != nil {
		return client.Credentials{}, err
	}
	c := client.Credentials{Username: cmd.String("mqtt-username"), Password: password}
	if c.TLSConfig, err = client.LoadTLS(cmd.String("mqtt-ca"), cmd.String("mqtt-cert"), cmd.String("mqtt-key")); err != nil {
		return c, fmt.Errorf("--mqtt-ca/--mqtt-cert/--mqtt-key: %w", err)
	}
	return c, nil
}

// mqttPassword is --mqtt-password, or the first line of
// --mqtt-password-file.
func mqttPassword(cmd *cli.Command) (string, error) {
	password, file := cmd.String("mqtt-password"), cmd.String("mqtt-password-file")
	if file == "" {
		return password, nil
	}
	if password != "" {
		return "", errors.New("--mqtt-password and --mqtt-password-file exclude each other")
	}
	return firstLine("--mqtt-password-file", file)
}

// firstLine is the first line of file, a secret that flag names (a
// password file, as Mosquitto's and etcd's tools write them).
func firstLine(flag, file string) (string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s: %w", flag, err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	return strings.TrimRight(line, "\r"), nil
}

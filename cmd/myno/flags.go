package main

import (
	"github.com/urfave/cli/v3"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/mqtt/broker"
)

// Flag defaults that several commands share, each defined once: the
// clients' defaults point at what myno bridge and myno demo run by default.
const (
	defaultBrokerURL   = "mqtt://" + broker.DefaultListen
	defaultNetconfAddr = bridge.DefaultNetconfListen
	defaultNetconfUser = bridge.AdminUser
	defaultCADir       = "ca"
)

// logLevelFlag is --log-level, with its environment twin.
func logLevelFlag(value string) cli.Flag {
	return &cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error", Value: value, Sources: cli.EnvVars("MYNO_LOG_LEVEL")}
}

package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v3"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/cluster"
	"github.com/myno-bridge/myno/mqtt/access"
	"github.com/myno-bridge/myno/mqtt/broker"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/ontology"
)

func bridgeFlags() []cli.Flag {
	return append([]cli.Flag{
		&cli.StringFlag{Name: "netconf-listen", Usage: "NETCONF over SSH `ADDRESS`", Value: bridge.DefaultNetconfListen, Sources: cli.EnvVars("MYNO_NETCONF_LISTEN")},
		&cli.StringFlag{Name: "http-listen", Usage: "`ADDRESS` of /metrics (Prometheus), /healthz and /readyz (\"\": off)", Sources: cli.EnvVars("MYNO_HTTP_LISTEN")},
		&cli.StringFlag{Name: "mqtt-listen", Usage: "`ADDRESS` of the embedded MQTT broker (when --mqtt-url is not given)", Value: bridge.DefaultMQTTListen, Sources: cli.EnvVars("MYNO_MQTT_LISTEN")},
		&cli.StringFlag{Name: "mqtt-url", Usage: "external broker `URL` (mqtt://host:port or mqtts://host:port) instead of the embedded one", Sources: cli.EnvVars("MYNO_MQTT_URL")},
		&cli.StringFlag{Name: "update-server-cert", Usage: "Update Server certificate `FILE` (PEM) to publish, retained, for MUP devices", Sources: cli.EnvVars("MYNO_UPDATE_SERVER_CERT")},
		&cli.StringFlag{Name: "data-dir", Usage: "`DIR` for the registry, host key and users", Value: bridge.DefaultDataDir, Sources: cli.EnvVars("MYNO_DATA_DIR")},
		&cli.StringFlag{Name: "users", Usage: "users `FILE` (name:bcrypt-hash:groups); default <data-dir>/users, created with an admin user", Sources: cli.EnvVars("MYNO_USERS")},
		&cli.DurationFlag{Name: "rpc-timeout", Usage: "how long an rpc waits for its device", Value: bridge.DefaultRPCTimeout, Sources: cli.EnvVars("MYNO_RPC_TIMEOUT")},
		&cli.IntFlag{Name: "max-description-bytes", Usage: "largest device description accepted", Value: ontology.DefaultMaxBytes, Sources: cli.EnvVars("MYNO_MAX_DESCRIPTION_BYTES")},
		&cli.IntFlag{Name: "max-chunks", Usage: "most bootstrap chunks per description", Value: bridge.DefaultMaxChunks, Sources: cli.EnvVars("MYNO_MAX_CHUNKS")},
		&cli.IntFlag{Name: "max-pending-description-bytes", Usage: "most bytes of all descriptions still arriving together (a device that starts one beyond it is answered ERROR;bridge busy)", Value: bridge.DefaultMaxPendingDescriptionBytes, Sources: cli.EnvVars("MYNO_MAX_PENDING_DESCRIPTION_BYTES")},
		&cli.IntFlag{Name: "max-pending-per-source", Usage: "most descriptions still arriving from one source (an MQTT identity; anonymous clients are one; with --mqtt-url, a uuid); -1: no limit", Value: bridge.DefaultMaxPendingPerSource, Sources: cli.EnvVars("MYNO_MAX_PENDING_PER_SOURCE")},
		&cli.IntFlag{Name: "max-pending-bytes-per-source", Usage: "most bytes of the descriptions still arriving from one source; 0: a quarter of --max-pending-description-bytes; -1: no limit", Sources: cli.EnvVars("MYNO_MAX_PENDING_BYTES_PER_SOURCE")},
		&cli.IntFlag{Name: "max-configured-devices", Usage: "most devices the configuration datastore holds entries for, registered or not; a change beyond it is refused; -1: no limit", Value: bridge.DefaultMaxConfiguredDevices, Sources: cli.EnvVars("MYNO_MAX_CONFIGURED_DEVICES")},
		&cli.IntFlag{Name: "max-shapes", Usage: "most distinct device shapes (one module each); a description of a new shape beyond it is refused, devices of a registered shape are still accepted; -1: no limit", Value: bridge.DefaultMaxShapes, Sources: cli.EnvVars("MYNO_MAX_SHAPES")},
		&cli.IntFlag{Name: "max-shape-bytes", Usage: "most bytes of the descriptions of all device shapes (one per shape); -1: no limit", Value: bridge.DefaultMaxShapeBytes, Sources: cli.EnvVars("MYNO_MAX_SHAPE_BYTES")},
		&cli.IntFlag{Name: "netconf-max-sessions", Usage: "most NETCONF sessions at once (0: 64)", Sources: cli.EnvVars("MYNO_NETCONF_MAX_SESSIONS")},
		&cli.IntFlag{Name: "netconf-max-user-sessions", Usage: "most NETCONF sessions of one user not in group admin (0: 16)", Sources: cli.EnvVars("MYNO_NETCONF_MAX_USER_SESSIONS")},
		&cli.IntFlag{Name: "netconf-admin-reserve", Usage: "NETCONF sessions kept for group admin (0: 4)", Sources: cli.EnvVars("MYNO_NETCONF_ADMIN_RESERVE")},
		&cli.IntFlag{Name: "netconf-max-auth-tries", Usage: "authentication attempts per SSH connection, keys and passwords (0: 6, as sshd)", Sources: cli.EnvVars("MYNO_NETCONF_MAX_AUTH_TRIES")},
		&cli.IntFlag{Name: "netconf-max-startups", Usage: "SSH handshakes in progress at once; more wait in a queue (0: 32)", Sources: cli.EnvVars("MYNO_NETCONF_MAX_STARTUPS")},
		&cli.IntFlag{Name: "netconf-max-startups-per-source", Usage: "SSH handshakes in progress from one address (0: a quarter of --netconf-max-startups)", Sources: cli.EnvVars("MYNO_NETCONF_MAX_STARTUPS_PER_SOURCE")},
		&cli.IntFlag{Name: "netconf-startup-queue", Usage: "SSH connections waiting for a handshake slot; beyond it they are closed (0: 128)", Sources: cli.EnvVars("MYNO_NETCONF_STARTUP_QUEUE")},
		&cli.IntFlag{Name: "netconf-startup-queue-per-source", Usage: "queued SSH connections from one address (0: half the queue)", Sources: cli.EnvVars("MYNO_NETCONF_STARTUP_QUEUE_PER_SOURCE")},
		&cli.DurationFlag{Name: "device-keepalive", Usage: "with --mqtt-url: the devices' MQTT keep-alive, which an external broker does not tell; a device without a Will (as MYNO's) is offline once silent for 1.5 times as long", Value: bridge.DefaultDeviceKeepAlive, Sources: cli.EnvVars("MYNO_DEVICE_KEEPALIVE")},
		&cli.DurationFlag{Name: "assembly-timeout", Usage: "time for all chunks of a description to arrive", Value: bridge.DefaultAssemblyTimeout, Sources: cli.EnvVars("MYNO_ASSEMBLY_TIMEOUT")},
		&cli.StringFlag{Name: "profile", Value: bridge.ProfileStandard, Usage: "standard (YANG 1.1, RFC 6241) or myno: modules, <get>, get-schema and rpc replies as MYNO's own bridge shows them, for MYNO's web client and Update Server (implies --legacy-bootstrap-topics)", Sources: cli.EnvVars("MYNO_PROFILE")},
		&cli.StringFlag{Name: "cluster", Usage: "run as one instance of the cluster `NAME` on the shared --mqtt-url broker: devices are shared out; membership and the registry are kept in etcd (--cluster-etcd)", Sources: cli.EnvVars("MYNO_CLUSTER")},
		&cli.StringFlag{Name: "instance", Usage: "this instance's `NAME` in the cluster (default: random)", Sources: cli.EnvVars("MYNO_INSTANCE")},
		&cli.StringSliceFlag{Name: "cluster-etcd", Usage: "the etcd client `URLS` (comma-separated, or the flag repeated) where --cluster keeps its state", Sources: cli.EnvVars("MYNO_CLUSTER_ETCD")},
		&cli.StringFlag{Name: "cluster-etcd-ca", Usage: "CA certificate `FILE` that verifies etcd's servers (TLS)", Sources: cli.EnvVars("MYNO_CLUSTER_ETCD_CA")},
		&cli.StringFlag{Name: "cluster-etcd-cert", Usage: "client certificate `FILE` for etcd (TLS)", Sources: cli.EnvVars("MYNO_CLUSTER_ETCD_CERT")},
		&cli.StringFlag{Name: "cluster-etcd-key", Usage: "client key `FILE` for etcd (TLS)", Sources: cli.EnvVars("MYNO_CLUSTER_ETCD_KEY")},
		&cli.StringFlag{Name: "cluster-etcd-username", Usage: "etcd user `NAME` (etcd's authentication)", Sources: cli.EnvVars("MYNO_CLUSTER_ETCD_USERNAME")},
		&cli.StringFlag{Name: "cluster-etcd-password-file", Usage: "`FILE` holding the etcd user's password (its first line)", Sources: cli.EnvVars("MYNO_CLUSTER_ETCD_PASSWORD_FILE")},
		&cli.DurationFlag{Name: "cluster-lease", Usage: "how long a dead instance keeps its devices before the others take them over (its etcd lease)", Value: cluster.DefaultLeaseTTL, Sources: cli.EnvVars("MYNO_CLUSTER_LEASE")},
		&cli.StringFlag{Name: "enrol", Usage: "how devices that are not provisioned join the embedded broker: open (any uuid with a token of 22+ bytes, bound on first use; labs), token (a one-time enrolment token from myno devices add --enrolment) or closed (provisioned devices only)", Value: string(access.DefaultEnrolment), Sources: cli.EnvVars("MYNO_ENROL")},
		&cli.BoolFlag{Name: "mqtt-allow-anonymous", Usage: "let MQTT clients without credentials use every topic of the embedded broker: labs and migration only (logged at start, shown in <get>)", Sources: cli.EnvVars("MYNO_MQTT_ALLOW_ANONYMOUS")},
		&cli.StringFlag{Name: "mqtt-credentials", Usage: "MQTT credential `FILE` of the embedded broker (see myno devices); default <data-dir>/" + bridge.CredentialsFile, Sources: cli.EnvVars("MYNO_MQTT_CREDENTIALS")},
		&cli.StringFlag{Name: "mqtts-listen", Usage: "`ADDRESS` of the embedded broker's MQTT-over-TLS listener (e.g. " + broker.DefaultTLSListen + "); needs --mqtts-cert and --mqtts-key", Sources: cli.EnvVars("MYNO_MQTTS_LISTEN")},
		&cli.StringFlag{Name: "mqtts-cert", Usage: "certificate `FILE` (PEM) of the mqtts listener", Sources: cli.EnvVars("MYNO_MQTTS_CERT")},
		&cli.StringFlag{Name: "mqtts-key", Usage: "key `FILE` (PEM) of --mqtts-cert", Sources: cli.EnvVars("MYNO_MQTTS_KEY")},
		&cli.StringFlag{Name: "mqtts-client-ca", Usage: "CA `FILE` (PEM) whose client certificates the mqtts listener accepts; the certificate's common name is the client (a device's uuid), e.g. the E2E CA of myno ca", Sources: cli.EnvVars("MYNO_MQTTS_CLIENT_CA")},
		&cli.BoolFlag{Name: "mosquitto-dynsec", Usage: "with --mqtt-url: keep the roles of Mosquitto's dynamic-security plugin in step with the registrations (see myno acl export --format mosquitto-dynsec)", Sources: cli.EnvVars("MYNO_MOSQUITTO_DYNSEC")},
		&cli.BoolFlag{Name: "legacy-bootstrap-topics", Usage: "with --mqtt-url: also serve MYNO's shared bootstrap topics (yang/config/create, ...), which an external broker cannot tie to a device (see the README's threat model)", Sources: cli.EnvVars("MYNO_LEGACY_BOOTSTRAP_TOPICS")},
		logLevelFlag("info"),
	}, mqttAuthFlags()...)
}

func bridgeConfig(cmd *cli.Command) (bridge.Config, error) {
	password, err := mqttPassword(cmd)
	if err != nil {
		return bridge.Config{}, err
	}
	enrol, err := access.ParseEnrolment(cmd.String("enrol"))
	if err != nil {
		return bridge.Config{}, err
	}
	etcd, err := etcdConfig(cmd)
	if err != nil {
		return bridge.Config{}, err
	}
	return bridge.Config{
		Enrolment:                  enrol,
		MQTTAllowAnonymous:         cmd.Bool("mqtt-allow-anonymous"),
		CredentialsFile:            cmd.String("mqtt-credentials"),
		MQTTTLSListen:              cmd.String("mqtts-listen"),
		MQTTTLSCertFile:            cmd.String("mqtts-cert"),
		MQTTTLSKeyFile:             cmd.String("mqtts-key"),
		MQTTTLSClientCAFile:        cmd.String("mqtts-client-ca"),
		LegacyBootstrapTopics:      cmd.Bool("legacy-bootstrap-topics"),
		MosquittoDynsec:            cmd.Bool("mosquitto-dynsec"),
		NetconfListen:              cmd.String("netconf-listen"),
		HTTPListen:                 cmd.String("http-listen"),
		MQTTListen:                 cmd.String("mqtt-listen"),
		MQTTURL:                    cmd.String("mqtt-url"),
		MQTTUsername:               cmd.String("mqtt-username"),
		MQTTPassword:               password,
		MQTTCAFile:                 cmd.String("mqtt-ca"),
		MQTTCertFile:               cmd.String("mqtt-cert"),
		MQTTKeyFile:                cmd.String("mqtt-key"),
		MQTTConnectTimeout:         cmd.Duration("mqtt-connect-timeout"),
		DataDir:                    cmd.String("data-dir"),
		UsersFile:                  cmd.String("users"),
		AdminPassword:              os.Getenv("MYNO_ADMIN_PASSWORD"),
		RPCTimeout:                 cmd.Duration("rpc-timeout"),
		MaxDescriptionBytes:        int(cmd.Int("max-description-bytes")),
		MaxChunks:                  int(cmd.Int("max-chunks")),
		AssemblyTimeout:            cmd.Duration("assembly-timeout"),
		DeviceKeepAlive:            cmd.Duration("device-keepalive"),
		MaxPendingDescriptionBytes: int(cmd.Int("max-pending-description-bytes")),
		MaxPendingPerSource:        int(cmd.Int("max-pending-per-source")),
		MaxPendingBytesPerSource:   int(cmd.Int("max-pending-bytes-per-source")),
		MaxShapes:                  int(cmd.Int("max-shapes")),
		MaxConfiguredDevices:       int(cmd.Int("max-configured-devices")),
		MaxShapeBytes:              int(cmd.Int("max-shape-bytes")),
		NETCONF: bridge.NetconfLimits{MaxSessions: int(cmd.Int("netconf-max-sessions")), MaxUserSessions: int(cmd.Int("netconf-max-user-sessions")),
			AdminReserve: int(cmd.Int("netconf-admin-reserve")), MaxStartups: int(cmd.Int("netconf-max-startups")),
			MaxStartupsPerSource: int(cmd.Int("netconf-max-startups-per-source")), MaxStartupQueue: int(cmd.Int("netconf-startup-queue")),
			MaxStartupQueuePerSource: int(cmd.Int("netconf-startup-queue-per-source")), MaxAuthTries: int(cmd.Int("netconf-max-auth-tries"))},
		Profile:  cmd.String("profile"),
		Cluster:  cmd.String("cluster"),
		Instance: cmd.String("instance"),
		Etcd:     etcd,
		Logger:   newLogger(cmd),
		Out:      cmd.Root().Writer,
	}, nil
}

func bridgeCommand() *cli.Command {
	return withConfigFile(&cli.Command{
		Name:  "bridge",
		Usage: "run the NETCONF-MQTT bridge",
		Description: "Serves every device that bootstraps over MQTT as a YANG module with NETCONF rpcs.\n" +
			"Without --mqtt-url it runs the embedded broker, which admits only clients with credentials\n" +
			"(myno devices add; --enrol) and gives each the topics of its role or description.\n" +
			"On first start it creates the user admin;\n" +
			"the password comes from MYNO_ADMIN_PASSWORD or is generated and printed once.\n" +
			"Stops gracefully on SIGINT/SIGTERM.",
		Flags: bridgeFlags(),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			cfg, err := bridgeConfig(cmd)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			// One line with the settings in force, whatever their source
			// (flag, environment, --config, default), without secrets.
			cfg.Logger.Info("configuration", effectiveConfig(cmd))
			if f := cmd.String("update-server-cert"); f != "" {
				pem, err := os.ReadFile(f)
				if err != nil {
					return &exitError{code: 2, err: fmt.Errorf("--update-server-cert: %w", err)}
				}
				cfg.UpdateServerCert = pem
			}
			b, err := bridge.Start(ctx, cfg)
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			// SIGHUP reloads the users file (it is also watched).
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			for {
				select {
				case <-hup:
					if err := b.ReloadUsers(); err != nil {
						cfg.Logger.Warn("users not reloaded", "err", err)
					}
					continue
				case err := <-b.Failed():
					b.Close()
					return &exitError{code: 1, err: err}
				case <-ctx.Done():
				}
				break
			}
			b.Close()
			return nil
		},
	})
}

func splitHostPort(addr string) (string, string) {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[:i], addr[i+1:]
		}
	}
	return addr, ""
}

// etcdConfig is where --cluster keeps its state: the --cluster-etcd flags.
func etcdConfig(cmd *cli.Command) (bridge.EtcdConfig, error) {
	var endpoints []string
	for _, v := range cmd.StringSlice("cluster-etcd") {
		for _, e := range strings.Split(v, ",") {
			if e = strings.TrimSpace(e); e != "" {
				endpoints = append(endpoints, e)
			}
		}
	}
	c := bridge.EtcdConfig{Endpoints: endpoints, Username: cmd.String("cluster-etcd-username"), LeaseTTL: cmd.Duration("cluster-lease")}
	var err error
	if c.TLS, err = client.LoadTLS(cmd.String("cluster-etcd-ca"), cmd.String("cluster-etcd-cert"), cmd.String("cluster-etcd-key")); err != nil {
		return c, fmt.Errorf("--cluster-etcd TLS: %w", err)
	}
	if file := cmd.String("cluster-etcd-password-file"); file != "" {
		if c.Password, err = firstLine("--cluster-etcd-password-file", file); err != nil {
			return c, err
		}
	}
	return c, nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/internal/atomicfile"
	"github.com/myno-bridge/myno/mqtt/access"
	"github.com/myno-bridge/myno/wire"
)

// credentialFlags locate the MQTT credential file: --mqtt-credentials, or
// the one in --data-dir, as myno bridge finds it.
func credentialFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "data-dir", Usage: "the bridge's data `DIR`", Value: bridge.DefaultDataDir, Sources: cli.EnvVars("MYNO_DATA_DIR")},
		&cli.StringFlag{Name: "mqtt-credentials", Usage: "MQTT credential `FILE`; default <data-dir>/" + bridge.CredentialsFile, Sources: cli.EnvVars("MYNO_MQTT_CREDENTIALS")},
	}
}

// openCredentials opens the credential file of credentialFlags.
func openCredentials(cmd *cli.Command) (*access.Store, error) {
	path := cmd.String("mqtt-credentials")
	if path == "" {
		dir := cmd.String("data-dir")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		path = filepath.Join(dir, bridge.CredentialsFile)
	}
	return access.OpenStore(path)
}

func devicesCommand() *cli.Command {
	return &cli.Command{
		Name:  "devices",
		Usage: "provision MQTT credentials: devices (named by uuid) and the roles bridge, update-server, e2e-manager",
		Description: "Each identity gets a random 256-bit token, printed once and stored as its SHA-256 digest\n" +
			"in the credential file that myno bridge's embedded broker reads (it picks up changes within\n" +
			"seconds, and disconnects an identity that is removed). A device logs in with its uuid as\n" +
			"user name and its token as password, and may use only its own topics.",
		Commands: []*cli.Command{
			{
				Name:      "add",
				Usage:     "provision identities and print their tokens",
				ArgsUsage: "NAME...",
				Flags: append(credentialFlags(),
					&cli.StringFlag{Name: "role", Value: string(access.RoleDevice), Usage: "device, bridge, update-server or e2e-manager", Sources: cli.EnvVars("MYNO_DEVICES_ROLE")},
					&cli.BoolFlag{Name: "enrolment", Usage: "make one-time enrolment tokens (the bridge's --enrol token): the device's first login turns it into its credential", Sources: cli.EnvVars("MYNO_DEVICES_ENROLMENT")},
					&cli.DurationFlag{Name: "ttl", Usage: "with --enrolment: how long an unused enrolment token stays valid (0: no limit)", Value: 7 * 24 * time.Hour, Sources: cli.EnvVars("MYNO_ENROLMENT_TTL")},
					&cli.BoolFlag{Name: "certificate", Usage: "devices that log in with a client certificate (common name = the uuid; the bridge's --mqtts-client-ca) and no token: removing them revokes the certificate", Sources: cli.EnvVars("MYNO_DEVICES_CERTIFICATE")},
					&cli.BoolFlag{Name: "replace", Usage: "give a name that exists a new token (the old one stops working)", Sources: cli.EnvVars("MYNO_DEVICES_REPLACE")},
					&cli.StringFlag{Name: "token-dir", Usage: "also write each token to `DIR`/<name>.token (mode 0600), for --mqtt-password-file", Sources: cli.EnvVars("MYNO_TOKEN_DIR")},
				),
				Action: func(ctx context.Context, cmd *cli.Command) error {
					if cmd.NArg() == 0 {
						return &exitError{code: 2, err: errors.New("devices add: give at least one NAME (a device's uuid)")}
					}
					role, err := access.ParseRole(cmd.String("role"))
					if err != nil {
						return &exitError{code: 2, err: err}
					}
					store, err := openCredentials(cmd)
					if err != nil {
						return &exitError{code: 1, err: err}
					}
					dir := cmd.String("token-dir")
					if dir != "" {
						if err := os.MkdirAll(dir, 0o700); err != nil {
							return &exitError{code: 1, err: err}
						}
					}
					w := tabwriter.NewWriter(cmd.Root().Writer, 0, 4, 2, ' ', 0)
					fmt.Fprintln(w, "NAME\tROLE\tTOKEN")
					for _, name := range cmd.Args().Slice() {
						token, err := store.Add(name, role, access.AddOptions{Enrolment: cmd.Bool("enrolment"), TTL: cmd.Duration("ttl"), Replace: cmd.Bool("replace"), Certificate: cmd.Bool("certificate")})
						if err != nil {
							w.Flush()
							return &exitError{code: 1, err: err}
						}
						if token == "" {
							token = "(client certificate)"
						} else if dir != "" {
							if err := atomicfile.Write(filepath.Join(dir, name+".token"), []byte(token+"\n"), 0o600); err != nil {
								w.Flush()
								return &exitError{code: 1, err: err}
							}
						}
						fmt.Fprintf(w, "%s\t%s\t%s\n", name, role, token)
					}
					w.Flush()
					fmt.Fprintf(cmd.Root().ErrWriter, "Tokens are shown once; %s keeps only their digests.\n", store.Path())
					return nil
				},
			},
			{
				Name:      "remove",
				Usage:     "remove identities (a running bridge disconnects them)",
				ArgsUsage: "NAME...",
				Flags:     credentialFlags(),
				Action: func(ctx context.Context, cmd *cli.Command) error {
					store, err := openCredentials(cmd)
					if err != nil {
						return &exitError{code: 1, err: err}
					}
					var missing []string
					for _, name := range cmd.Args().Slice() {
						found, err := store.Remove(name)
						if err != nil {
							return &exitError{code: 1, err: err}
						}
						if !found {
							missing = append(missing, name)
						}
					}
					if len(missing) > 0 {
						return &exitError{code: 1, err: fmt.Errorf("not provisioned: %s", strings.Join(missing, ", "))}
					}
					return nil
				},
			},
			{
				Name:  "list",
				Usage: "list the identities (never their tokens)",
				Flags: credentialFlags(),
				Action: func(ctx context.Context, cmd *cli.Command) error {
					store, err := openCredentials(cmd)
					if err != nil {
						return &exitError{code: 1, err: err}
					}
					w := tabwriter.NewWriter(cmd.Root().Writer, 0, 4, 2, ' ', 0)
					fmt.Fprintln(w, "NAME\tROLE\tSTATE\tCREATED")
					now := time.Now()
					for _, c := range store.List() {
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", c.Name, c.Role, credentialState(c, now), c.Created.Format(time.RFC3339))
					}
					return w.Flush()
				},
			},
		},
	}
}

// credentialState says where a credential stands.
func credentialState(c access.Credential, now time.Time) string {
	switch {
	case c.Enrolment && !c.Expires.IsZero() && now.After(c.Expires):
		return "enrolment token expired " + c.Expires.Format(time.RFC3339)
	case c.Enrolment:
		return "enrolment token unused"
	case !c.Enrolled.IsZero() && c.Certificate:
		return "enrolled by client certificate " + c.Enrolled.Format(time.RFC3339)
	case !c.Enrolled.IsZero():
		return "enrolled " + c.Enrolled.Format(time.RFC3339)
	case c.Certificate:
		return "provisioned (client certificate)"
	}
	return "provisioned"
}

func aclCommand() *cli.Command {
	return &cli.Command{
		Name:  "acl",
		Usage: "the MQTT access rules of the bridge's identities and devices, for an external broker",
		Commands: []*cli.Command{{
			Name:  "export",
			Usage: "write a Mosquitto password file and ACL file",
			Description: "Grants each identity of the credential file exactly its topics: a device its bootstrap,\n" +
				"response, status and E2E topics and, once registered (the bridge's registry in --data-dir)\n" +
				"or given with --description, the command, reading and firmware topics of its description.\n" +
				"Mosquitto reads them at start and on SIGHUP: export again after devices register.",
			Flags: append(credentialFlags(),
				&cli.StringFlag{Name: "format", Value: "mosquitto", Usage: "mosquitto (password and ACL files) or mosquitto-dynsec (the dynamic-security plugin's configuration file)", Sources: cli.EnvVars("MYNO_ACL_FORMAT")},
				&cli.StringFlag{Name: "password-file", Usage: "mosquitto: `FILE` to write (password_file)", Sources: cli.EnvVars("MYNO_ACL_PASSWORD_FILE")},
				&cli.StringFlag{Name: "acl-file", Usage: "mosquitto: `FILE` to write (acl_file)", Sources: cli.EnvVars("MYNO_ACL_FILE")},
				&cli.StringFlag{Name: "dynsec-file", Usage: "mosquitto-dynsec: `FILE` to write (plugin_opt_config_file; the broker rewrites it as it runs)", Sources: cli.EnvVars("MYNO_DYNSEC_FILE")},
				&cli.StringSliceFlag{Name: "description", Usage: "`UUID=FILE`: the description of a device not registered yet (repeatable)", Sources: cli.EnvVars("MYNO_ACL_DESCRIPTIONS")},
				&cli.StringFlag{Name: "e2e-prefix", Usage: "root of the E2E channel's topics", Value: wire.DefaultE2EPrefix, Sources: cli.EnvVars("MYNO_E2E_PREFIX")},
				&cli.BoolFlag{Name: "legacy-bootstrap-topics", Usage: "let devices publish on MYNO's shared bootstrap topics (as the bridge's flag; see the README's threat model)", Sources: cli.EnvVars("MYNO_LEGACY_BOOTSTRAP_TOPICS")},
			),
			Action: func(ctx context.Context, cmd *cli.Command) error {
				format := cmd.String("format")
				switch {
				case format == "mosquitto" && (cmd.String("password-file") == "" || cmd.String("acl-file") == ""):
					return &exitError{code: 2, err: errors.New("--format mosquitto needs --password-file and --acl-file")}
				case format == "mosquitto-dynsec" && cmd.String("dynsec-file") == "":
					return &exitError{code: 2, err: errors.New("--format mosquitto-dynsec needs --dynsec-file")}
				case format != "mosquitto" && format != "mosquitto-dynsec":
					return &exitError{code: 2, err: fmt.Errorf("--format %q: mosquitto or mosquitto-dynsec", format)}
				}
				extra := map[string][]byte{}
				for _, d := range cmd.StringSlice("description") {
					uuid, file, ok := strings.Cut(d, "=")
					if !ok {
						return &exitError{code: 2, err: fmt.Errorf("--description %q: want UUID=FILE", d)}
					}
					data, err := os.ReadFile(file)
					if err != nil {
						return &exitError{code: 1, err: err}
					}
					extra[uuid] = data
				}
				store, err := openCredentials(cmd)
				if err != nil {
					return &exitError{code: 1, err: err}
				}
				devs, err := bridge.SavedDevices(cmd.String("data-dir"), extra, 0)
				if err != nil {
					return &exitError{code: 1, err: err}
				}
				policy := access.Policy{Devices: devs, E2EPrefix: cmd.String("e2e-prefix"), LegacyBootstrap: cmd.Bool("legacy-bootstrap-topics")}
				export := access.Export{Credentials: store.List(), Policy: policy}
				if format == "mosquitto-dynsec" {
					data, err := access.ExportDynsec(export)
					if err != nil {
						return &exitError{code: 1, err: err}
					}
					if err := atomicfile.Write(cmd.String("dynsec-file"), data, 0o600); err != nil {
						return &exitError{code: 1, err: err}
					}
					fmt.Fprintf(cmd.Root().Writer, "wrote %s: %d identities, %d descriptions\n", cmd.String("dynsec-file"), store.Len(), len(extra))
					return nil
				}
				var pw, acl strings.Builder
				if err := access.ExportMosquitto(export, &pw, &acl); err != nil {
					return &exitError{code: 1, err: err}
				}
				if err := atomicfile.Write(cmd.String("password-file"), []byte(pw.String()), 0o600); err != nil {
					return &exitError{code: 1, err: err}
				}
				if err := atomicfile.Write(cmd.String("acl-file"), []byte(acl.String()), 0o644); err != nil {
					return &exitError{code: 1, err: err}
				}
				fmt.Fprintf(cmd.Root().Writer, "wrote %s and %s: %d identities, %d descriptions\n", cmd.String("password-file"), cmd.String("acl-file"), store.Len(), len(extra))
				return nil
			},
		}},
	}
}

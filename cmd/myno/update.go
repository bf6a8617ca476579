package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"time"

	gonetconf "github.com/Juniper/go-netconf/netconf"
	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v3"
	"golang.org/x/crypto/ssh"

	"github.com/myno-bridge/myno/mup"
)

func updateCommand() *cli.Command {
	return &cli.Command{
		Name:  "update",
		Usage: "update a device's firmware with MUP (the Update Server)",
		Description: "Asks the device for a token through the bridge (NETCONF), sends the extended manifest,\n" +
			"publishes the image in slices straight to the broker, has the device check the image and\n" +
			"waits for the new version. Exits 1 on failure; the error names the device's MUP state code.\n" +
			"The bridge host key is not verified unless --known-host is given.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "device", Usage: "device `UUID`", Required: true, Sources: cli.EnvVars("MYNO_UPDATE_DEVICE")},
			&cli.StringFlag{Name: "image", Usage: "firmware image `FILE`", Required: true},
			&cli.StringFlag{Name: "manifest", Usage: "vendor manifest `FILE` (myno manifest sign)", Required: true},
			&cli.StringFlag{Name: "key", Usage: "Update Server key `FILE`", Required: true, Sources: cli.EnvVars("MYNO_UPDATE_SERVER_KEY")},
			&cli.StringFlag{Name: "bridge", Value: "127.0.0.1:8830", Usage: "bridge NETCONF `ADDRESS`", Sources: cli.EnvVars("MYNO_NETCONF_ADDR")},
			&cli.StringFlag{Name: "user", Value: "admin", Usage: "NETCONF user", Sources: cli.EnvVars("MYNO_NETCONF_USER")},
			&cli.StringFlag{Name: "password", Usage: "NETCONF password", Sources: cli.EnvVars("MYNO_NETCONF_PASSWORD")},
			&cli.StringFlag{Name: "known-host", Usage: "expected bridge host key, in authorized_keys format", Sources: cli.EnvVars("MYNO_NETCONF_KNOWN_HOST")},
			&cli.StringFlag{Name: "mqtt-url", Value: "mqtt://127.0.0.1:1883", Usage: "broker `URL` for the slices", Sources: cli.EnvVars("MYNO_MQTT_URL")},
			&cli.IntFlag{Name: "slice-size", Value: 600, Usage: "bytes per slice"},
			&cli.StringFlag{Name: "flow", Value: "windowed", Usage: "stop-and-wait or windowed"},
			&cli.IntFlag{Name: "window", Value: 8, Usage: "slices in flight (windowed)"},
			&cli.BoolFlag{Name: "quiet", Usage: "no progress bar"},
		},
		Action: runUpdate,
	}
}

func runUpdate(ctx context.Context, cmd *cli.Command) error {
	image, err := os.ReadFile(cmd.String("image"))
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	signed, err := os.ReadFile(cmd.String("manifest"))
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	key, err := mup.ReadKey(cmd.String("key"))
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	flow := mup.FlowControl(cmd.String("flow"))
	if flow != mup.StopAndWait && flow != mup.Windowed {
		return &exitError{code: 2, err: fmt.Errorf("update: --flow %q: want stop-and-wait or windowed", flow)}
	}
	sshConfig := &ssh.ClientConfig{User: cmd.String("user"), Timeout: 10 * time.Second,
		Auth: []ssh.AuthMethod{ssh.Password(cmd.String("password"))}, HostKeyCallback: ssh.InsecureIgnoreHostKey()}
	if kh := cmd.String("known-host"); kh != "" {
		want, _, _, _, err := ssh.ParseAuthorizedKey([]byte(kh))
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("update: --known-host: %w", err)}
		}
		sshConfig.HostKeyCallback = ssh.FixedHostKey(want)
	}
	s, err := gonetconf.DialSSH(cmd.String("bridge"), sshConfig)
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("update: %w", err)}
	}
	defer s.Close()
	out := cmd.Root().ErrWriter
	var bar *progressbar.ProgressBar
	if !cmd.Bool("quiet") {
		bar = progressbar.NewOptions(len(image), progressbar.OptionSetWriter(out), progressbar.OptionShowBytes(true),
			progressbar.OptionSetDescription("firmware "+cmd.String("device")), progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionOnCompletion(func() { fmt.Fprintln(out) }))
	}
	res, err := mup.Update(ctx, mup.UpdateConfig{UUID: cmd.String("device"), VendorSigned: signed, Image: image, ServerKey: key,
		NETCONF: s, MQTTURL: cmd.String("mqtt-url"), SliceSize: int(cmd.Int("slice-size")), Flow: flow, Window: int(cmd.Int("window")),
		Progress: func(_, _ int, bytes int) {
			if bar != nil {
				_ = bar.Set(bytes)
			}
		}})
	w := cmd.Root().Writer
	if res != nil {
		names := make([]string, 0, len(res.Phases))
		for n := range res.Phases {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(w, "%-9s %v\n", n, res.Phases[n].Round(time.Microsecond))
		}
	}
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("update: %w", err)}
	}
	fmt.Fprintf(w, "device %s runs version %d (%d slices, %d resent)\n", cmd.String("device"), res.Version, res.Slices, res.Resent)
	return nil
}

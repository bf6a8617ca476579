package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/myno-bridge/myno/mup"
	"github.com/myno-bridge/myno/mup/e2e"
)

var certName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// caCommand is the E2E certificate authority: myno ca init, myno ca issue.
func caCommand() *cli.Command {
	return &cli.Command{
		Name:  "ca",
		Usage: "the E2E channel's certificate authority (P-256)",
		Commands: []*cli.Command{{
			Name:  "init",
			Usage: "create the CA: ca.key (mode 0600) and ca.crt in --dir; refuses to overwrite",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "dir", Value: defaultCADir, Usage: "CA `DIR`", Sources: cli.EnvVars("MYNO_CA_DIR")},
				&cli.StringFlag{Name: "name", Value: "MYNO E2E CA", Usage: "CA common name"},
				&cli.DurationFlag{Name: "validity", Value: 10 * 365 * 24 * time.Hour, Usage: "CA certificate validity"},
			},
			Action: func(_ context.Context, cmd *cli.Command) error {
				dir := cmd.String("dir")
				if _, err := os.Stat(filepath.Join(dir, "ca.key")); !errors.Is(err, fs.ErrNotExist) {
					return &exitError{code: 1, err: fmt.Errorf("ca init: %s already holds a CA key", dir)}
				}
				if err := os.MkdirAll(dir, 0o700); err != nil {
					return &exitError{code: 1, err: err}
				}
				cert, key, err := e2e.NewCA(cmd.String("name"), cmd.Duration("validity"))
				if err != nil {
					return &exitError{code: 1, err: err}
				}
				if err := writePair(dir, "ca", key, cert); err != nil {
					return &exitError{code: 1, err: err}
				}
				fmt.Fprintf(cmd.Root().Writer, "wrote %s (valid until %s)\n", filepath.Join(dir, "ca.crt"), cert.NotAfter.Format(time.DateOnly))
				return nil
			},
		}, {
			Name:  "issue",
			Usage: "issue a certificate and new key for --name in --role: <out>/<name>.crt and <name>.key (mode 0600)",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "dir", Value: defaultCADir, Usage: "CA `DIR`", Sources: cli.EnvVars("MYNO_CA_DIR")},
				&cli.StringFlag{Name: "name", Usage: "subject common `NAME` (a device uuid, a manager id)", Required: true},
				&cli.StringFlag{Name: "role", Value: "device", Usage: "manager, device or update-server"},
				&cli.StringFlag{Name: "out", Usage: "output `DIR` (default: the CA dir)"},
				&cli.DurationFlag{Name: "validity", Value: 365 * 24 * time.Hour, Usage: "certificate validity"},
			},
			Action: func(_ context.Context, cmd *cli.Command) error {
				name := cmd.String("name")
				if !certName.MatchString(name) {
					return &exitError{code: 2, err: fmt.Errorf("ca issue: --name %q: letters, digits, '.', '_' and '-' only", name)}
				}
				dir := cmd.String("dir")
				ca, err := mup.ReadCertificate(filepath.Join(dir, "ca.crt"))
				if err != nil {
					return &exitError{code: 2, err: fmt.Errorf("ca issue: %w", err)}
				}
				caKey, err := mup.ReadKey(filepath.Join(dir, "ca.key"))
				if err != nil {
					return &exitError{code: 2, err: fmt.Errorf("ca issue: %w", err)}
				}
				cert, key, err := e2e.Issue(ca, caKey, name, e2e.Role(cmd.String("role")), time.Now().Add(-time.Minute), cmd.Duration("validity"))
				if err != nil {
					return &exitError{code: 2, err: fmt.Errorf("ca issue: %w", err)}
				}
				out := cmd.String("out")
				if out == "" {
					out = dir
				}
				if err := os.MkdirAll(out, 0o700); err != nil {
					return &exitError{code: 1, err: err}
				}
				if err := writePair(out, name, key, cert); err != nil {
					return &exitError{code: 1, err: err}
				}
				fmt.Fprintf(cmd.Root().Writer, "wrote %s (%s, valid until %s)\n", filepath.Join(out, name+".crt"), cmd.String("role"), cert.NotAfter.Format(time.DateOnly))
				return nil
			},
		}},
	}
}

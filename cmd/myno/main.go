// Command myno is the MYNO bridge's single binary: it generates YANG from
// device descriptions and, as the project grows, runs the bridge, virtual
// devices and the update server. Run "myno --help" for the subcommands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/urfave/cli/v3"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// exitError carries a process exit code out of a subcommand.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// run executes the command line and returns the process exit code: 0 on
// success, 1 when the input was bad, 2 on usage errors.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	err := app.Run(ctx, args)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "myno: %v\n", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 2
}

func newApp(stdout, stderr io.Writer) *cli.Command {
	app := &cli.Command{
		Name:    "myno",
		Usage:   "NETCONF-to-MQTT bridge with YANG generation and secure firmware updates",
		Version: version(),
		Flags: []cli.Flag{&cli.StringFlag{Name: "log-format", Value: "text", Usage: "logs as `text` or json (one object per line)", Sources: cli.EnvVars("MYNO_LOG_FORMAT"),
			Validator: func(s string) error {
				if s != "text" && s != "json" {
					return fmt.Errorf("--log-format %q: want text or json", s)
				}
				return nil
			}}},
		Writer:    stdout,
		ErrWriter: stderr,
		// myno completion bash|zsh|fish|pwsh prints a completion script,
		// which asks myno ... --generate-shell-completion for the words.
		// The library hides the command and answers an unknown shell with
		// "No help topic"; here it is listed in myno --help, and an unknown
		// shell is a one-line usage error.
		EnableShellCompletion: true,
		ConfigureShellCompletionCommand: func(c *cli.Command) {
			c.Hidden = false
			c.Usage = "print the shell completion script for bash, zsh, fish or pwsh (PowerShell)"
			c.Description += "\nThe bash script needs the functions of bash-completion: install the bash-completion package.\n"
			c.Action = func(_ context.Context, c *cli.Command) error {
				if c.Args().Len() > 0 {
					return &exitError{code: 2, err: fmt.Errorf("completion: unknown shell %q: want bash, zsh, fish or pwsh", c.Args().First())}
				}
				return cli.ShowSubcommandHelp(c)
			}
			quietUsage(c)
		},
		// Errors are printed once, by run; no os.Exit from inside the library.
		ExitErrHandler: func(context.Context, *cli.Command, error) {},
		// An unknown command is one line and a hint, not a help topic.
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.Args().Len() > 0 {
				return &exitError{code: 2, err: fmt.Errorf("unknown command %q (see myno --help)", cmd.Args().First())}
			}
			return cli.ShowRootCommandHelp(cmd)
		},
		Commands: []*cli.Command{
			yangCommand(),
			deviceCommand(),
			bridgeCommand(),
			devicesCommand(),
			aclCommand(),
			demoCommand(),
			rpcCommand(),
			keysCommand(),
			manifestCommand(),
			caCommand(),
			e2eCommand(),
			updateCommand(),
			consoleCommand(),
			usersCommand(),
		},
	}
	quietUsage(app)
	return app
}

// quietUsage makes a usage error (an unknown flag, a bad value) one line
// naming the command and a hint, on every command, instead of the error
// twice and the whole help.
func quietUsage(cmd *cli.Command) {
	cmd.OnUsageError = func(_ context.Context, c *cli.Command, err error, _ bool) error {
		if c.Root() == c { // run prints "myno: " already
			return &exitError{code: 2, err: fmt.Errorf("%w (see %s --help)", err, c.FullName())}
		}
		return &exitError{code: 2, err: fmt.Errorf("%s: %w (see %s --help)", c.Name, err, c.FullName())}
	}
	for _, sub := range cmd.Commands {
		quietUsage(sub)
	}
}

// version is the module's version and the VCS state it was built from
// (runtime/debug.ReadBuildInfo), for myno --version.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := info.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, at, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = ", modified"
			}
		}
	}
	if rev != "" {
		v += fmt.Sprintf(" (%s, %s%s)", rev, at, dirty)
	}
	return v + " " + info.GoVersion
}

package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	gonetconf "github.com/Juniper/go-netconf/netconf"
	"github.com/urfave/cli/v3"
	"golang.org/x/crypto/ssh"
)

// rpcCommand is a minimal NETCONF client (Juniper go-netconf): it sends
// each argument as an rpc operation and prints the replies, indented
// unless --raw.
func rpcCommand() *cli.Command {
	return &cli.Command{
		Name:      "rpc",
		Usage:     "send NETCONF rpcs to a bridge and print the replies",
		ArgsUsage: "'<operation .../>'...",
		Description: "Example: myno rpc --password PW '<get/>'\n" +
			"Logs in with the keys of ssh-agent (SSH_AUTH_SOCK, unless --no-agent), then --identity (--key), then --password.\n" +
			"Each reply is printed indented, one element per line, with its prefixes, namespaces and the text of its\n" +
			"leaves as received; --raw prints it exactly as received instead (also what is printed of a reply that is\n" +
			"not well-formed XML).\n" +
			"Exits 1 when a reply holds an rpc-error. The bridge's host key must match --known-host, or its entry in\n" +
			"--known-hosts (a bridge not listed yet is trusted on first use and added; its fingerprint is printed).\n" +
			"Shell completion of commands and flags: source <(myno completion bash), or zsh, fish (see myno completion --help).",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "addr", Value: defaultNetconfAddr, Usage: "bridge NETCONF `ADDRESS`", Sources: cli.EnvVars("MYNO_NETCONF_ADDR")},
			&cli.StringFlag{Name: "user", Value: defaultNetconfUser, Usage: "user name", Sources: cli.EnvVars("MYNO_NETCONF_USER")},
			&cli.DurationFlag{Name: "timeout", Value: 10 * time.Second, Usage: "deadline of the connection, the SSH handshake and each reply", Sources: cli.EnvVars("MYNO_NETCONF_TIMEOUT")},
			&cli.BoolFlag{Name: "raw", Usage: "print the replies as received, not indented", Sources: cli.EnvVars("MYNO_RPC_RAW")},
		}, append(netconfLoginFlags("key"), hostKeyFlags()...)...),
		Action: runRPC,
	}
}

func runRPC(_ context.Context, cmd *cli.Command) error {
	ops := cmd.Args().Slice()
	if len(ops) == 0 {
		return &exitError{code: 2, err: errors.New("rpc: give at least one operation, e.g. '<get/>'")}
	}
	hostKey, err := hostKeyCallback(cmd, cmd.Root().ErrWriter)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("rpc: %w", err)}
	}
	auth, loggedIn, err := netconfLogin(cmd)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("rpc: %w", err)}
	}
	cfg := &ssh.ClientConfig{User: cmd.String("user"), Timeout: cmd.Duration("timeout"), HostKeyCallback: hostKey, Auth: auth}
	// Every read and write, the handshake included, within --timeout.
	s, err := gonetconf.DialSSHTimeout(cmd.String("addr"), cfg, cmd.Duration("timeout"))
	loggedIn()
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("rpc: %w", err)}
	}
	defer s.Close()
	failed := false
	for _, op := range ops {
		reply, err := s.Exec(gonetconf.RawMethod(op))
		if reply != nil {
			out := reply.RawReply
			if !cmd.Bool("raw") {
				out, _ = prettyXML(out) // a reply that is not well-formed is printed as received
			}
			fmt.Fprintln(cmd.Root().Writer, out)
		}
		if err != nil {
			failed = true
			if reply == nil {
				return &exitError{code: 1, err: fmt.Errorf("rpc: %w", err)}
			}
		}
	}
	if failed {
		return &exitError{code: 1, err: errors.New("rpc: a reply holds an rpc-error")}
	}
	return nil
}

package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"

	"github.com/urfave/cli/v3"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// netconfLoginFlags are how the commands that connect to a bridge over
// SSH (myno rpc, myno update) log in: the keys of ssh-agent, an identity
// file, a password. identityAliases name --identity otherwise too (myno
// rpc's --key, from before).
func netconfLoginFlags(identityAliases ...string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "password", Usage: "NETCONF password", Sources: cli.EnvVars("MYNO_NETCONF_PASSWORD")},
		&cli.StringFlag{Name: "identity", Aliases: identityAliases, Usage: "private key `FILE` (OpenSSH or PEM) to log in with; " +
			"one with a passphrase must be added to ssh-agent instead", Sources: cli.EnvVars("MYNO_NETCONF_IDENTITY", "MYNO_NETCONF_KEY")},
		&cli.BoolFlag{Name: "no-agent", Usage: "do not offer the keys of ssh-agent (SSH_AUTH_SOCK)", Sources: cli.EnvVars("MYNO_NETCONF_NO_AGENT")},
	}
}

// netconfLogin is the SSH user authentication of netconfLoginFlags
// (RFC 4252), in OpenSSH's order: public keys (the agent's, then
// --identity) before the password. A key login costs the bridge a
// signature check, where a password costs it a bcrypt comparison (60 to
// 140 ms on a small machine, paid by each myno update). done releases the
// agent connection; call it once the SSH handshake is over.
func netconfLogin(cmd *cli.Command) (auth []ssh.AuthMethod, done func(), err error) {
	done = func() {}
	var signers []ssh.Signer
	if file := cmd.String("identity"); file != "" {
		s, err := readIdentity(file)
		if err != nil {
			return nil, done, err
		}
		signers = append(signers, s)
	}
	var agentKeys func() ([]ssh.Signer, error)
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" && !cmd.Bool("no-agent") {
		conn, err := net.Dial("unix", sock)
		if err != nil {
			return nil, done, fmt.Errorf("ssh-agent at SSH_AUTH_SOCK=%s: %w (--no-agent does without it)", sock, err)
		}
		done = sync.OnceFunc(func() { conn.Close() })
		agentKeys = agent.NewClient(conn).Signers
	}
	if agentKeys != nil || len(signers) > 0 {
		// One method for all keys: x/crypto/ssh tries each method name once.
		auth = append(auth, ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
			var all []ssh.Signer
			if agentKeys != nil {
				keys, err := agentKeys()
				if err != nil {
					return nil, fmt.Errorf("ssh-agent: %w", err)
				}
				all = append(all, keys...)
			}
			return append(all, signers...), nil
		}))
	}
	if p := cmd.String("password"); p != "" {
		auth = append(auth, ssh.Password(p))
	}
	if len(auth) == 0 {
		done()
		return nil, func() {}, errors.New("no NETCONF credentials: give --password or --identity, or add a key to ssh-agent")
	}
	return auth, done, nil
}

// readIdentity reads a private key file for public-key authentication.
func readIdentity(file string) (ssh.Signer, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--identity: %w", err)
	}
	s, err := ssh.ParsePrivateKey(pem)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		return nil, fmt.Errorf("--identity %s: the key has a passphrase: add it to ssh-agent (ssh-add %s) instead", file, file)
	}
	if err != nil {
		return nil, fmt.Errorf("--identity %s: %w", file, err)
	}
	return s, nil
}

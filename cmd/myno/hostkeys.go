package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/urfave/cli/v3"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// hostKeyFlags are the host key options of the commands that connect to
// a bridge over SSH (myno rpc, myno update).
func hostKeyFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "known-hosts", Usage: "OpenSSH known_hosts `FILE` with the bridges' host keys; a bridge not in it yet is trusted on first use and added " +
			"(default <user config dir>/myno/known_hosts)", Sources: cli.EnvVars("MYNO_KNOWN_HOSTS")},
		&cli.StringFlag{Name: "known-host", Usage: "the bridge's host key, in authorized_keys format; pins it instead of --known-hosts", Sources: cli.EnvVars("MYNO_NETCONF_KNOWN_HOST")},
		&cli.BoolFlag{Name: "insecure-host-key", Usage: "accept any host key (labs only: whoever answers on the address gets the password)", Sources: cli.EnvVars("MYNO_INSECURE_HOST_KEY")},
	}
}

// hostKeyCallback verifies the bridge's SSH host key, the server's proof
// of identity (RFC 4251 §4.1, RFC 4253 §8), before any credential is sent:
//   - --known-host pins one key;
//   - otherwise the key must match the bridge's entry in --known-hosts, and
//     a bridge with no entry is trusted on first use: its key is added and
//     its fingerprint printed on errOut, as OpenSSH does with
//     StrictHostKeyChecking=accept-new; a different key is refused;
//   - --insecure-host-key accepts any key, with a warning on errOut.
func hostKeyCallback(cmd *cli.Command, errOut io.Writer) (ssh.HostKeyCallback, error) {
	if cmd.Bool("insecure-host-key") {
		if cmd.String("known-host") != "" {
			return nil, errors.New("--insecure-host-key and --known-host exclude each other")
		}
		fmt.Fprintln(errOut, "warning: --insecure-host-key: the bridge's host key is not verified")
		return ssh.InsecureIgnoreHostKey(), nil
	}
	if pinned := cmd.String("known-host"); pinned != "" {
		want, _, _, _, err := ssh.ParseAuthorizedKey([]byte(pinned))
		if err != nil {
			return nil, fmt.Errorf("--known-host: %w", err)
		}
		return ssh.FixedHostKey(want), nil
	}
	file := cmd.String("known-hosts")
	if file == "" {
		dir, err := os.UserConfigDir()
		if err != nil {
			return nil, fmt.Errorf("no --known-hosts file given and no user config dir: %w", err)
		}
		file = filepath.Join(dir, "myno", "known_hosts")
	}
	return (&trustOnFirstUse{file: file, out: errOut}).check, nil
}

// trustOnFirstUse checks host keys against a known_hosts file and adds
// the keys of hosts it does not list yet.
type trustOnFirstUse struct {
	file string
	out  io.Writer
	mu   sync.Mutex
}

func (t *trustOnFirstUse) check(hostname string, remote net.Addr, key ssh.PublicKey) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(t.file), 0o700); err != nil {
		return fmt.Errorf("known hosts: %w", err)
	}
	f, err := os.OpenFile(t.file, os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("known hosts: %w", err)
	}
	f.Close()
	known, err := knownhosts.New(t.file)
	if err != nil {
		return fmt.Errorf("known hosts %s: %w", t.file, err)
	}
	err = known(hostname, remote, key)
	var keyErr *knownhosts.KeyError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &keyErr) && len(keyErr.Want) == 0:
		return t.add(hostname, key)
	case errors.As(err, &keyErr):
		w := keyErr.Want[0]
		return fmt.Errorf("host key mismatch for %s: it presents %s %s, but %s:%d has %s %s for it; "+
			"either someone is in the middle, or the bridge's key changed (then remove that line)",
			hostname, key.Type(), ssh.FingerprintSHA256(key), w.Filename, w.Line, w.Key.Type(), ssh.FingerprintSHA256(w.Key))
	}
	return fmt.Errorf("host key of %s: %w", hostname, err)
}

// add records a host's key: trust on first use.
func (t *trustOnFirstUse) add(hostname string, key ssh.PublicKey) error {
	f, err := os.OpenFile(t.file, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("known hosts: %w", err)
	}
	_, werr := fmt.Fprintln(f, knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key))
	if err := f.Close(); werr == nil {
		werr = err
	}
	if werr != nil {
		return fmt.Errorf("known hosts %s: %w", t.file, werr)
	}
	fmt.Fprintf(t.out, "Trusted the host key of %s on first use: %s %s (added to %s)\n", hostname, key.Type(), ssh.FingerprintSHA256(key), t.file)
	return nil
}

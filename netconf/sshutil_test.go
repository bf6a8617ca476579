package netconf_test

import (
	"errors"
	"regexp"
	"strconv"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func errorsAs(err error, target any) bool { return errors.As(err, target) }

func sshParsePrivateKey(pem []byte) (ssh.Signer, error) { return ssh.ParsePrivateKey(pem) }

func keyConfig(user string, signer ssh.Signer) *ssh.ClientConfig {
	return &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 5 * time.Second}
}

func sshDial(addr string, cfg *ssh.ClientConfig) (*ssh.Client, error) {
	c, err := ssh.Dial("tcp", addr, cfg)
	if err == nil {
		c.Close()
	}
	return c, err
}

var reSessionID = regexp.MustCompile(`<session-id>(\d+)</session-id>`)

func sessionID(t testing.TB, hello string) int {
	t.Helper()
	m := reSessionID.FindStringSubmatch(hello)
	if m == nil {
		t.Fatalf("no session-id in %s", hello)
	}
	id, _ := strconv.Atoi(m[1])
	return id
}

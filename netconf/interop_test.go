package netconf_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/myno-bridge/myno/internal/testenv"
)

// The peer tools are real processes talking to a real server on a random
// loopback port; under CI=true a missing tool fails the test.

func TestInteropNcclient(t *testing.T) {
	python := testenv.DebianPython(t, "ncclient")
	ts := startServer(t, nil)
	cmd := exec.Command(python, filepath.Join("testdata", "interop", "ncclient_session.py"), "127.0.0.1", ts.port(), "admin", adminPass)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := runWithTimeout(cmd, 60*time.Second)
	if err != nil {
		t.Fatalf("ncclient: %v\n%s\n%s", err, out, stderr.String())
	}
	var res struct {
		SessionID    string   `json:"session_id"`
		Capabilities []string `json:"capabilities"`
		Base11       bool     `json:"base11"`
		Get          string   `json:"get"`
		GetSchema    string   `json:"get_schema"`
		Dispatch     string   `json:"dispatch"`
		Fail         struct {
			Tag, Type, Message string
			AppTag             string `json:"app_tag"`
		} `json:"fail"`
		GetData              string  `json:"get_data"`
		Notification         string  `json:"notification"`
		FilteredNotification string  `json:"filtered_notification"`
		FilteredMore         *string `json:"filtered_more"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("ncclient output: %v\n%s\n%s", err, out, stderr.String())
	}
	if res.SessionID == "" || !res.Base11 {
		t.Errorf("session %q base:1.1 %v", res.SessionID, res.Base11)
	}
	caps := strings.Join(res.Capabilities, "\n")
	contains(t, caps, "urn:ietf:params:netconf:capability:notification:1.0", "module=myno-demo&revision=2026-11-21")
	contains(t, res.Get, "<greeting>hello &lt;world&gt; &amp; co</greeting>")
	if strings.Contains(res.Get, "<item>") {
		t.Errorf("subtree filter ignored: %s", res.Get)
	}
	contains(t, res.GetSchema, "module myno-demo {")
	contains(t, res.Dispatch, "<msg xmlns=\"urn:myno:test:demo\">from ncclient</msg>")
	if res.Fail.Tag != "operation-failed" || res.Fail.Message != "the device did not answer" {
		t.Errorf("rpc-error seen by ncclient: %+v", res.Fail)
	}
	contains(t, res.GetData, `<demo-state xmlns="urn:myno:test:demo"><item><name>b</name></item></demo-state>`)
	if strings.Contains(res.GetData, "<greeting>") || strings.Contains(res.GetData, "<name>a</name>") {
		t.Errorf("get-data's xpath filter let more through: %s", res.GetData)
	}
	contains(t, res.Notification, "<eventTime>", `<tick xmlns="urn:myno:test:demo"><n>42</n></tick>`)
	contains(t, res.FilteredNotification, `<tick xmlns="urn:myno:test:demo"><n>2</n></tick>`)
	if res.FilteredMore != nil {
		t.Errorf("the filtered subscription got a tick it did not select: %s", *res.FilteredMore)
	}
}

func TestInteropYangcliBatch(t *testing.T) {
	yangcli := testenv.Tool(t, "yangcli")
	ts := startServer(t, nil)
	dir := t.TempDir()
	script := filepath.Join(dir, "session.yangcli")
	// yangcli cancels a script at the first error reply, so the error case
	// comes last.
	if err := os.WriteFile(script, []byte("echo msg=from-yangcli\nget-schema identifier=myno-demo\nsget /demo-state\nfail\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(yangcli, "--batch-mode", "--run-script="+script, "--server=127.0.0.1", "--ncport="+ts.port(),
		"--user=admin", "--password="+adminPass, "--home="+dir)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader("")
	out, err := runWithTimeout(cmd, 60*time.Second)
	text := string(out)
	// yangcli exits 0 even when things fail: its output is the verdict.
	if err != nil {
		t.Fatalf("yangcli: %v\n%s", err, text)
	}
	contains(t, text,
		"NETCONF session established for admin",
		"Protocol version set to: RFC 6241 (base:1.1)",
		"myno-demo@2026-11-21",
		"msg from-yangcli",
		"module myno-demo {",
		"greeting 'hello <world> & co'",
		"error-tag operation-failed",
		"error-app-tag device-timeout",
		"error-message 'the device did not answer'")
	for _, bad := range []string{"Start session failed", "mgr_io failed", "Internal error"} {
		if strings.Contains(text, bad) {
			t.Errorf("yangcli reports %q:\n%s", bad, text)
		}
	}
}

// OpenSSH's client with a hand-framed session: the raw framing cases.
func TestInteropOpenSSHSubsystem(t *testing.T) {
	sshBin := testenv.Tool(t, "ssh")
	ts := startServer(t, nil)
	args := func(extra ...string) []string {
		return append([]string{"-F", "/dev/null", "-i", ts.keyFile, "-p", ts.port(), "-o", "BatchMode=yes",
			"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
			"-o", "IdentitiesOnly=yes"}, extra...)
	}
	t.Run("chunked session", func(t *testing.T) {
		in := clientHello11 +
			chunked(`<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><echo xmlns="urn:myno:test:demo"><msg>over openssh</msg></echo></rpc>`) +
			// two chunks for one message
			twoChunks(`<rpc message-id="2" xmlns="urn:ietf:pa`, `rams:xml:ns:netconf:base:1.0"><get-config><source><running/></source></get-config></rpc>`) +
			chunked(`<rpc message-id="3" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><close-session/></rpc>`)
		cmd := exec.Command(sshBin, args("keyuser@127.0.0.1", "-s", "netconf")...)
		cmd.Stdin = strings.NewReader(in)
		out, err := runWithTimeout(cmd, 30*time.Second)
		if err != nil {
			t.Fatalf("ssh: %v\n%s", err, out)
		}
		text := string(out)
		contains(t, text, "]]>]]>", "over openssh</msg>", `message-id="2"`, "<data", `message-id="3"`, "<ok/>", "\n##\n")
	})
	t.Run("base:1.0 session", func(t *testing.T) {
		in := clientHello10 + `<rpc message-id="7" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get><filter type="subtree"><demo-state xmlns="urn:myno:test:demo"><greeting/></demo-state></filter></get></rpc>]]>]]>` +
			`<rpc message-id="8" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><close-session/></rpc>]]>]]>`
		cmd := exec.Command(sshBin, args("keyuser@127.0.0.1", "-s", "netconf")...)
		cmd.Stdin = strings.NewReader(in)
		out, err := runWithTimeout(cmd, 30*time.Second)
		if err != nil {
			t.Fatalf("ssh: %v\n%s", err, out)
		}
		text := string(out)
		contains(t, text, `message-id="7"`, "<greeting>", `message-id="8"`)
		if strings.Contains(text, "\n##\n") {
			t.Errorf("chunked framing towards a base:1.0 client:\n%s", text)
		}
	})
	t.Run("with a terminal, as scrapli-netconf's transport runs it", func(t *testing.T) {
		// `ssh -tt ... -s netconf`: a pty request first, granted and
		// ignored; the session runs as without it.
		in := clientHello11 +
			chunked(`<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><echo xmlns="urn:myno:test:demo"><msg>with a pty</msg></echo></rpc>`) +
			chunked(`<rpc message-id="2" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><close-session/></rpc>`)
		cmd := exec.Command(sshBin, args("-tt", "keyuser@127.0.0.1", "-s", "netconf")...)
		cmd.Stdin = strings.NewReader(in)
		out, err := runWithTimeout(cmd, 30*time.Second)
		if err != nil {
			t.Fatalf("ssh -tt: %v\n%s", err, out)
		}
		contains(t, string(out), "with a pty</msg>", `message-id="2"`, "<ok/>")
	})
	t.Run("other subsystems and commands are refused", func(t *testing.T) {
		for _, extra := range [][]string{{"-s", "sftp"}, {"ls", "/"}, {"-t", "-t"}} {
			cmd := exec.Command(sshBin, args(append([]string{"keyuser@127.0.0.1"}, extra...)...)...)
			cmd.Stdin = strings.NewReader("")
			out, err := runWithTimeout(cmd, 30*time.Second)
			if err == nil {
				t.Errorf("ssh %v succeeded:\n%s", extra, out)
			}
		}
	})
}

func twoChunks(a, b string) string {
	return fmt.Sprintf("\n#%d\n%s\n#%d\n%s\n##\n", len(a), a, len(b), b)
}

func runWithTimeout(cmd *exec.Cmd, d time.Duration) ([]byte, error) {
	var out bytes.Buffer
	cmd.Stdout = &out
	if cmd.Stderr == nil {
		cmd.Stderr = &out
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.Bytes(), err
	case <-time.After(d):
		_ = cmd.Process.Kill()
		<-done
		return out.Bytes(), fmt.Errorf("timed out after %v", d)
	}
}

package systemtest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/mup/updateserver"
)

// Debian's Ansible (ansible.netcommon's netconf connection, over ncclient,
// with host key checking on) sets a device's configuration with
// netconf_config, reads its state with netconf_get and calls an rpc with
// netconf_rpc, through the bridge (issue 20). The device, killed and
// started again, is brought back to its configuration with no one
// asking.
func TestAnsibleNetconfConfigGetAndRPC(t *testing.T) {
	playbookBin := testenv.Tool(t, "ansible-playbook")
	testenv.DebianPython(t, "ncclient")
	b := startBridge(t, "", nil)
	description, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", "led-color.jsonld"))
	if err != nil {
		t.Fatal(err)
	}
	d := bootDevice(t, devices.Config{Description: description, UUID: "led-a", BrokerURL: b.BrokerURL(), Protocol: client.MQTT5,
		Credentials: deviceCreds("led-a"), Logger: testenv.Logger()})
	thermostat, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", "thermostat.jsonld"))
	if err != nil {
		t.Fatal(err)
	}
	thCfg := devices.Config{Description: thermostat, UUID: "th-a", BrokerURL: b.BrokerURL(), Protocol: client.MQTT5,
		Credentials: deviceCreds("th-a"), Logger: testenv.Logger()}
	th := bootDevice(t, thCfg)
	nc := updateserver.NewClient(dialBridge(t, b))
	entry, err := nc.Device("led-a")
	if err != nil {
		t.Fatal(err)
	}
	thEntry, err := nc.Device("th-a")
	if err != nil {
		t.Fatal(err)
	}

	// Ansible checks the host key against ~/.ssh/known_hosts (ncclient's
	// default): HOME is a directory of the test's, its known_hosts holds
	// the bridge's key.
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	var hostKey ssh.PublicKey
	conn, err := ssh.Dial("tcp", b.NetconfAddr(), &ssh.ClientConfig{User: "admin", Auth: []ssh.AuthMethod{ssh.Password("pw")}, Timeout: 10 * time.Second,
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error { hostKey = key; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	host, port, _ := net.SplitHostPort(b.NetconfAddr())
	line := knownhosts.Line([]string{knownhosts.Normalize(b.NetconfAddr())}, hostKey)
	if err := os.WriteFile(filepath.Join(home, ".ssh", "known_hosts"), []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	inventory := fmt.Sprintf("bridge ansible_host=%s ansible_port=%s ansible_user=admin ansible_password=pw "+
		"ansible_connection=ansible.netcommon.netconf ansible_network_os=default ansible_python_interpreter=/usr/bin/python3\n", host, port)
	playbook := fmt.Sprintf(`- hosts: bridge
  gather_facts: false
  tasks:
    - name: the thermostat's threshold
      ansible.netcommon.netconf_config:
        content: |
          <config>
            <configuration xmlns="%[2]s">
              <device>
                <uuid>th-a</uuid>
                <setThreshold><input_1_Operator>gt</input_1_Operator><input_2_Threshold>28</input_2_Threshold></setThreshold>
              </device>
            </configuration>
          </config>
      register: config
    - name: what the thermostat took
      ansible.netcommon.netconf_get:
        filter: <devices xmlns="%[2]s"><device><uuid>th-a</uuid><configuration-state/></device></devices>
      register: applied
    - name: the device's state
      ansible.netcommon.netconf_get:
        filter: <devices xmlns="%[1]s"><device><uuid>led-a</uuid><online/></device></devices>
      register: state
    - name: its rpc
      ansible.netcommon.netconf_rpc:
        rpc: setColor
        xmlns: %[1]s
        content: "<uuidInput>led-a</uuidInput><input_1_Color>green</input_1_Color>"
      register: rpc
`, entry.Namespace, thEntry.Namespace)
	for name, text := range map[string]string{"inventory": inventory, "playbook.yml": playbook} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(playbookBin, "-i", filepath.Join(dir, "inventory"), filepath.Join(dir, "playbook.yml"))
	cmd.Env = append(os.Environ(), "HOME="+home, "ANSIBLE_STDOUT_CALLBACK=ansible.posix.json", "ANSIBLE_HOST_KEY_CHECKING=True",
		"ANSIBLE_LOCAL_TEMP="+filepath.Join(home, "tmp"), "ANSIBLE_PERSISTENT_CONTROL_PATH_DIR="+filepath.Join(home, "cp"), "ANSIBLE_NOCOLOR=1")
	out, err := runWithDeadline(cmd, 120*time.Second)
	if err != nil {
		t.Fatalf("ansible-playbook: %v\n%s", err, out)
	}
	var report struct {
		Plays []struct {
			Tasks []struct {
				Task  struct{ Name string }
				Hosts map[string]json.RawMessage
			}
		}
	}
	if err := json.Unmarshal(out, &report); err != nil || len(report.Plays) != 1 || len(report.Plays[0].Tasks) != 4 {
		t.Fatalf("ansible's report: %v\n%s", err, out)
	}
	task := func(i int) string { return string(report.Plays[0].Tasks[i].Hosts["bridge"]) }
	config, applied, state, rpc := task(0), task(1), task(2), task(3)
	if !strings.Contains(config, `"changed": true`) || strings.Contains(config, `"failed": true`) {
		t.Errorf("netconf_config: %s", config)
	}
	for _, want := range []string{"<status>applied</status>", "<answer>OK</answer>"} {
		if !strings.Contains(applied, want) {
			t.Errorf("the configuration state lacks %s: %s", want, applied)
		}
	}
	if args, _ := th.LastArgs("SET-THRESHOLD"); fmt.Sprint(args) != "[gt 28]" {
		t.Errorf("the thermostat holds %v, want [gt 28]", args)
	}
	for _, want := range []string{"<uuid>led-a</uuid>", "<online>true</online>"} {
		if !strings.Contains(state, want) {
			t.Errorf("netconf_get lacks %s: %s", want, state)
		}
	}
	if !strings.Contains(rpc, "retval") || strings.Contains(rpc, `"failed": true`) {
		t.Errorf("netconf_rpc: %s", rpc)
	}
	if d.Commands.Load() == 0 {
		t.Errorf("the device got no command")
	}

	// Done when (issue 20): the thermostat killed and started again is
	// brought back to its configuration, with no operator action.
	th.Close()
	again := bootDevice(t, thCfg)
	testenv.WaitFor(t, "the restarted thermostat configured again", func() bool {
		args, _ := again.LastArgs("SET-THRESHOLD")
		return fmt.Sprint(args) == "[gt 28]"
	})
}

// runWithDeadline runs cmd, its output combined, killing it after d.
func runWithDeadline(cmd *exec.Cmd, d time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	c := exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	c.Env, c.Dir = cmd.Env, cmd.Dir
	return c.CombinedOutput()
}

package systemtest_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	gonetconf "github.com/Juniper/go-netconf/netconf"
	"golang.org/x/crypto/ssh"

	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/client"
)

// clusterInstance is one `myno bridge --cluster` process.
type clusterInstance struct {
	name, dir string
	nc, http  int
	cmd       *exec.Cmd
}

// Three bridge processes on one Mosquitto, their state in a 3-member
// etcd, converge (issue 18): devices register and delete all along while
// one instance is killed (SIGKILL) and started again on its data, another
// stops (SIGTERM) and starts again, and an etcd member restarts; then
// every instance holds exactly the devices whose last operation was a
// registration.
func TestClusterConvergesUnderChurn(t *testing.T) {
	bin := buildMyno(t)
	mosq := testenv.StartMosquitto(t)
	etcd := testenv.StartEtcd(t, 3)
	insts := make([]*clusterInstance, 3)
	start := func(i *clusterInstance) {
		t.Helper()
		i.cmd = startProcess(t, bin, []string{"bridge", "--mqtt-url", mosq.URL(), "--cluster", "conv", "--instance", i.name,
			"--cluster-etcd", strings.Join(etcd.Endpoints(), ","), "--cluster-lease", "2s",
			"--netconf-listen", fmt.Sprintf("127.0.0.1:%d", i.nc), "--http-listen", fmt.Sprintf("127.0.0.1:%d", i.http),
			"--data-dir", i.dir, "--log-level", "warn"}, "MYNO_ADMIN_PASSWORD=pw")
		testenv.WaitFor(t, i.name+" ready", func() bool { return readyz(i.http) == 200 })
	}
	for n := range insts {
		insts[n] = &clusterInstance{name: fmt.Sprintf("i%d", n), dir: t.TempDir(), nc: testenv.FreePort(t), http: testenv.FreePort(t)}
		start(insts[n])
	}
	description, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", "led-color.jsonld"))
	if err != nil {
		t.Fatal(err)
	}

	// register bootstraps a new device until an instance answers it (its
	// owner may be dead until its lease expires); remove deletes one the
	// same way.
	expected := map[string]bool{}
	live := map[string]*devices.Device{}
	register := func(uuid string) {
		t.Helper()
		d, err := devices.New(devices.Config{Description: description, UUID: uuid, BrokerURL: mosq.URL(), Protocol: client.MQTT5,
			Logger: testenv.Logger()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(d.Close)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := d.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		if err := d.Bootstrap(ctx); err != nil {
			t.Fatalf("%s: %v", uuid, err)
		}
		live[uuid], expected[uuid] = d, true
	}
	remove := func(uuid string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			answer, err := live[uuid].Delete(ctx)
			cancel()
			// NOTFOUND after a try that got no answer: that try deleted it.
			if err == nil && (answer == "OK" || answer == "NOTFOUND") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("delete %s: %q %v", uuid, answer, err)
			}
		}
		delete(expected, uuid)
	}

	for k := range 24 {
		register(fmt.Sprintf("churn-%02d", k))
		if k%3 == 2 {
			remove(fmt.Sprintf("churn-%02d", k-2))
		}
		switch k {
		case 5: // a crash: its lease runs out, the others take its devices
			_ = insts[0].cmd.Process.Kill()
			_ = insts[0].cmd.Wait()
		case 9:
			start(insts[0])
		case 12:
			etcd.Restart(1)
		case 15: // a clean stop: its lease is revoked
			_ = insts[1].cmd.Process.Signal(syscall.SIGTERM)
			_ = insts[1].cmd.Wait()
		case 18:
			start(insts[1])
		}
	}

	want := slices.Sorted(func(yield func(string) bool) {
		for uuid := range expected {
			if !yield(uuid) {
				return
			}
		}
	})
	for _, i := range insts {
		testenv.WaitFor(t, fmt.Sprintf("%s to hold %d devices", i.name, len(want)), func() bool { return slices.Equal(deviceUUIDs(t, i.nc), want) },
			func() string { return fmt.Sprintf("%s holds %v, want %v", i.name, deviceUUIDs(t, i.nc), want) })
	}
}

// readyz is the status code of the bridge's /readyz on port (0: no answer).
func readyz(port int) int {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", port))
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

var uuidLeaf = regexp.MustCompile(`<uuid>([^<]+)</uuid>`)

// deviceUUIDs are the devices the bridge on NETCONF port shows in a whole
// <get/>, sorted.
func deviceUUIDs(t *testing.T, port int) []string {
	t.Helper()
	s, err := gonetconf.DialSSH(fmt.Sprintf("127.0.0.1:%d", port), &ssh.ClientConfig{User: "admin", Auth: []ssh.AuthMethod{ssh.Password("pw")},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
	if err != nil {
		return []string{"(no session: " + err.Error() + ")"}
	}
	defer s.Close()
	reply, err := s.Exec(gonetconf.RawMethod(`<get/>`))
	if err != nil {
		return []string{"(get: " + err.Error() + ")"}
	}
	var uuids []string
	for _, m := range uuidLeaf.FindAllStringSubmatch(reply.Data, -1) {
		uuids = append(uuids, m[1])
	}
	slices.Sort(uuids)
	return slices.Compact(uuids)
}

package systemtest_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/myno-bridge/myno/cluster"
	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/client"
)

// `myno bridge --cluster` reaches an etcd that serves clients over TLS
// only, asks for a client certificate and has authentication on, through
// --cluster-etcd-ca/-cert/-key and --cluster-etcd-username/-password-file:
// a device registered through it is in etcd. With a wrong password the
// bridge refuses to start, and says it is etcd that refused.
func TestClusterFlagsForTLSAndCredentials(t *testing.T) {
	bin := buildMyno(t)
	mosq := testenv.StartMosquitto(t)
	pki := testenv.NewPKI(t, "etcd")
	etcd := testenv.StartEtcdTLS(t, 1, pki)
	etcd.EnableAuth("bridge", "bridge-pw")
	cert, key := pki.Client("bridge")
	dir := t.TempDir()
	good, wrong := filepath.Join(dir, "password"), filepath.Join(dir, "wrong")
	for file, pw := range map[string]string{good: "bridge-pw\n", wrong: "not-the-password\n"} {
		if err := os.WriteFile(file, []byte(pw), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	args := func(instance, passwordFile string, httpPort int) []string {
		return []string{"bridge", "--mqtt-url", mosq.URL(), "--cluster", "tls", "--instance", instance,
			"--cluster-etcd", strings.Join(etcd.Endpoints(), ","), "--cluster-etcd-ca", pki.CAFile,
			"--cluster-etcd-cert", cert, "--cluster-etcd-key", key,
			"--cluster-etcd-username", "bridge", "--cluster-etcd-password-file", passwordFile,
			"--netconf-listen", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
			"--http-listen", fmt.Sprintf("127.0.0.1:%d", httpPort), "--data-dir", t.TempDir()}
	}

	httpPort := testenv.FreePort(t)
	startProcess(t, bin, args("a", good, httpPort), "MYNO_ADMIN_PASSWORD=pw")
	testenv.WaitFor(t, "the bridge ready", func() bool { return readyz(httpPort) == 200 })

	description, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", "led-color.jsonld"))
	if err != nil {
		t.Fatal(err)
	}
	bootDevice(t, devices.Config{Description: description, UUID: "tls-1", BrokerURL: mosq.URL(), Protocol: client.MQTT5, Logger: testenv.Logger()})
	binding, err := cluster.DecodeBinding([]byte(etcd.Get("bridge", "bridge-pw", "/myno/tls/devices/tls-1")))
	if err != nil || binding.By != "a" {
		t.Fatalf("tls-1's binding in etcd: %+v %v", binding, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args("b", wrong, testenv.FreePort(t))...)
	cmd.Env = append(os.Environ(), "MYNO_ADMIN_PASSWORD=pw")
	out, err := cmd.CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("a bridge with a wrong etcd password: %v (%v)\n%s", err, ctx.Err(), out)
	}
	if !strings.Contains(string(out), "join cluster tls") || !strings.Contains(string(out), "authentication failed") {
		t.Fatalf("the refusal does not name its cause:\n%s", out)
	}
}

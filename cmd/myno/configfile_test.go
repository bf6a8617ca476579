package main

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/myno-bridge/myno/internal/testenv"
)

func TestReadConfigFile(t *testing.T) {
	for _, tc := range []struct {
		name, file, text string
		want             map[string][]string
		err              string
	}{
		{name: "yaml", file: "c.yaml", text: "netconf-listen: 127.0.0.1:830\nrpc-timeout: 10s\nmax-chunks: 0x10\nmqtt-allow-anonymous: true\nbridge: [a:1, b:2]\n",
			want: map[string][]string{"netconf-listen": {"127.0.0.1:830"}, "rpc-timeout": {"10s"}, "max-chunks": {"0x10"}, "mqtt-allow-anonymous": {"true"}, "bridge": {"a:1", "b:2"}}},
		{name: "yml, empty", file: "c.yml", text: "", want: map[string][]string{}},
		{name: "toml", file: "c.toml", text: "netconf-listen = \"127.0.0.1:830\"\nmax-chunks = 16\nmqtt-allow-anonymous = true\nbridge = [\"a:1\", \"b:2\"]\n",
			want: map[string][]string{"netconf-listen": {"127.0.0.1:830"}, "max-chunks": {"16"}, "mqtt-allow-anonymous": {"true"}, "bridge": {"a:1", "b:2"}}},
		{name: "unknown format", file: "c.ini", text: "a=b", err: `unknown format ".ini": want .yaml, .yml or .toml`},
		{name: "yaml not a mapping", file: "c.yaml", text: "- a\n- b\n", err: "want a mapping of flag names to values"},
		{name: "yaml nested", file: "c.yaml", text: "netconf:\n  listen: x\n", err: "line 2: netconf: want a value or a list of values"},
		{name: "yaml duplicate key", file: "c.yaml", text: "a: 1\na: 2\n", err: "line 2: a is given twice"},
		{name: "yaml syntax", file: "c.yaml", text: "a: [1\n", err: "yaml:"},
		{name: "toml table", file: "c.toml", text: "[netconf]\nlisten = \"x\"\n", err: "netconf: want a value or a list of values"},
		{name: "toml syntax", file: "c.toml", text: "a = \n", err: "toml:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), tc.file)
			if err := os.WriteFile(path, []byte(tc.text), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := readConfigFile(path)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), path) {
					t.Fatalf("error %v, want one naming %s and saying %q", err, path, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := readConfigFile(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("a missing file: %v", err)
	}
}

// myno bridge --config: the file's values are used unless the environment
// or the command line give others; the bridge's first log line says which
// values are in force, and never the MQTT password.
func TestBridgeConfigFile(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	for _, format := range []struct{ file, text string }{
		{"bridge.yaml", "netconf-listen: 127.0.0.1:0\nmqtt-listen: 127.0.0.1:0\ndata-dir: " + dataDir + "\nrpc-timeout: 7s\nmax-chunks: 99\nlog-level: warn\nmax-shapes: 5\nmqtt-password: file-secret\n"},
		{"bridge.toml", "netconf-listen = \"127.0.0.1:0\"\nmqtt-listen = \"127.0.0.1:0\"\ndata-dir = \"" + dataDir + "\"\nrpc-timeout = \"7s\"\nmax-chunks = 99\nlog-level = \"warn\"\nmax-shapes = 5\nmqtt-password = \"file-secret\"\n"},
	} {
		t.Run(format.file, func(t *testing.T) {
			path := filepath.Join(dir, format.file)
			if err := os.WriteFile(path, []byte(format.text), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Setenv("MYNO_ADMIN_PASSWORD", "pw")
			t.Setenv("MYNO_LOG_LEVEL", "info") // the environment beats the file
			t.Setenv("MYNO_MAX_SHAPES", "6")   // and the command line beats both
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var out, errOut syncBuffer
			done := make(chan int, 1)
			go func() {
				done <- run(ctx, []string{"myno", "bridge", "--config", path, "--max-shapes", "7"}, &out, &errOut)
			}()
			testenv.WaitFor(t, "the bridge to start", func() bool { return strings.Contains(errOut.String(), "bridge started") }, errOut.String)
			cancel()
			if code := <-done; code != 0 {
				t.Fatalf("exit %d\n%s", code, errOut.String())
			}
			var line string
			for l := range strings.SplitSeq(errOut.String(), "\n") {
				if strings.Contains(l, `msg=configuration`) {
					line = l
				}
			}
			for _, want := range []string{"config.config=" + path, "config.data-dir=" + dataDir, "config.rpc-timeout=7s", "config.max-chunks=99",
				"config.log-level=info", "config.max-shapes=7", "config.mqtt-password=(set)", "config.netconf-listen=127.0.0.1:0"} {
				if !strings.Contains(line, want) {
					t.Errorf("configuration line lacks %q: %s", want, line)
				}
			}
			if strings.Contains(errOut.String(), "file-secret") {
				t.Errorf("the password is in the log:\n%s", errOut.String())
			}
		})
	}
}

// A configuration file with a key that is no flag of the command, or a
// value the flag refuses, stops the command with a message naming both.
func TestConfigFileErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, text, want string }{
		{"misspelt key", "netconf-listn: 127.0.0.1:0\n", `unknown key "netconf-listn" (keys are the long flag names of myno bridge --help)`},
		{"the config key itself", "config: other.yaml\n", `unknown key "config"`},
		{"bad duration", "rpc-timeout: soon\n", `rpc-timeout: time: invalid duration "soon"`},
		{"bad log level", "log-level: verbose\n", `--log-level "verbose": want debug, info, warn or error`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
			if err := os.WriteFile(path, []byte(tc.text+"data-dir: "+filepath.Join(dir, "data")+"\nnetconf-listen: 127.0.0.1:0\nmqtt-listen: 127.0.0.1:0\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			var out, errOut syncBuffer
			code := run(context.Background(), []string{"myno", "bridge", "--config", path}, &out, &errOut)
			if code != 2 || !strings.Contains(errOut.String(), tc.want) {
				t.Errorf("exit %d, want 2 and %q:\n%s", code, tc.want, errOut.String())
			}
			if strings.Contains(errOut.String(), "bridge started") {
				t.Errorf("the bridge started:\n%s", errOut.String())
			}
		})
	}
}

// myno device and myno console take --config too, with the same checks.
func TestConfigFileOnOtherCommands(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.toml")
	if err := os.WriteFile(path, []byte("descripton = \"x.jsonld\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, command := range []string{"device", "console"} {
		var out, errOut syncBuffer
		code := run(context.Background(), []string{"myno", command, "--config", path}, &out, &errOut)
		if want := `unknown key "descripton" (keys are the long flag names of myno ` + command + ` --help)`; code != 2 || !strings.Contains(errOut.String(), want) {
			t.Errorf("%s: exit %d, want 2 and %q:\n%s", command, code, want, errOut.String())
		}
	}
}

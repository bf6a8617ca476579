package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/ontology"
)

func runMyno(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), append([]string{"myno"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func testdataFiles(t *testing.T, dir, pattern string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(testenv.RepoRoot(t), "testdata", dir, pattern))
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/%s/%s", dir, pattern)
	}
	return files
}

// distinctShapes is the number of description shapes (one module each)
// among files.
func distinctShapes(t *testing.T, files []string) int {
	t.Helper()
	shapes := map[string]bool{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dev, err := ontology.Parse(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		shapes[dev.Shape()] = true
	}
	return len(shapes)
}

func TestYangPrintsOneModulePerShape(t *testing.T) {
	files := testdataFiles(t, "descriptions", "*.jsonld")
	code, out, errOut := runMyno(t, append([]string{"yang"}, files...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	modules := strings.Count(out, "\nmodule ") + strings.Count(out[:min(len(out), 7)], "module ")
	// Descriptions of one shape share a module: led-color and
	// led-color-same-shape, the variant-led-* template and filled-in
	// forms, variant-range-on-property and its reordered copy.
	if shapes := distinctShapes(t, files); modules != shapes || shapes >= len(files) {
		t.Errorf("%d modules for %d files of %d shapes", modules, len(files), shapes)
	}
	if !strings.Contains(errOut, "same shape as") {
		t.Errorf("the shared shape is not reported: %s", errOut)
	}
}

func TestYangTree(t *testing.T) {
	file := filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", "rgb-lamp.jsonld")
	code, out, errOut := runMyno(t, "yang", "--tree", file)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"module: myno-", "+---x setRgb", "+---w input_1_Rgb", "var_1_Red", "[0..255]", "(device selector)"} {
		if !strings.Contains(out, want) {
			t.Errorf("tree lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "yang-version") {
		t.Errorf("--tree printed YANG")
	}
}

func TestYangRefusesBrokenDescriptions(t *testing.T) {
	for _, file := range testdataFiles(t, "broken", "*.jsonld") {
		t.Run(filepath.Base(file), func(t *testing.T) {
			code, out, errOut := runMyno(t, "yang", file)
			if code != 1 {
				t.Fatalf("exit %d, want 1", code)
			}
			if out != "" {
				t.Errorf("printed a module for a broken description")
			}
			if !strings.Contains(errOut, filepath.Base(file)) {
				t.Errorf("message does not name the file: %s", errOut)
			}
		})
	}
	// One bad file among good ones: the good modules are printed, exit 1.
	good := filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", "led-color.jsonld")
	bad := filepath.Join(testenv.RepoRoot(t), "testdata", "broken", "dangling-reference.jsonld")
	code, out, errOut := runMyno(t, "yang", good, bad)
	if code != 1 || !strings.Contains(out, "module myno-led-color") || !strings.Contains(errOut, "reference to an undefined node") {
		t.Errorf("mixed input: exit %d, stderr %s", code, errOut)
	}
}

func TestYangUsageErrors(t *testing.T) {
	if code, _, errOut := runMyno(t, "yang"); code != 2 || !strings.Contains(errOut, "no description files") {
		t.Errorf("no files: exit %d %s", code, errOut)
	}
	if code, _, _ := runMyno(t, "yang", "--no-such-flag", "x"); code != 2 {
		t.Errorf("unknown flag: exit %d", code)
	}
	if code, _, errOut := runMyno(t, "yang", filepath.Join(t.TempDir(), "missing.jsonld")); code != 1 || !strings.Contains(errOut, "missing.jsonld") {
		t.Errorf("missing file: exit %d %s", code, errOut)
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"yang", "--help"}} {
		code, out, _ := runMyno(t, args...)
		if code != 0 || !strings.Contains(out, "USAGE") {
			t.Errorf("%v: exit %d:\n%s", args, code, out)
		}
	}
	_, out, _ := runMyno(t, "yang", "--help")
	for _, flag := range []string{"--uuid", "--tree", "--out-dir", "--max-bytes", "$MYNO_UUID", "$MYNO_MAX_DESCRIPTION_BYTES"} {
		if !strings.Contains(out, flag) {
			t.Errorf("yang --help does not mention %s", flag)
		}
	}
}

func TestYangFlagsFromEnvironment(t *testing.T) {
	file := filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", "led-color.jsonld")
	t.Setenv("MYNO_MAX_DESCRIPTION_BYTES", "100")
	code, _, errOut := runMyno(t, "yang", file)
	if code != 1 || !strings.Contains(errOut, "description too large") {
		t.Errorf("MYNO_MAX_DESCRIPTION_BYTES=100: exit %d %s", code, errOut)
	}
}

func TestYangOutDirPassesYanglint(t *testing.T) {
	lint := testenv.Tool(t, "yanglint")
	dir := t.TempDir()
	files := testdataFiles(t, "descriptions", "*.jsonld")
	if code, _, errOut := runMyno(t, append([]string{"yang", "--uuid", "dev-42", "--out-dir", dir}, files...)...); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	written, _ := filepath.Glob(filepath.Join(dir, "myno-*@*.yang"))
	if shapes := distinctShapes(t, files); len(written) != shapes {
		t.Fatalf("%d files written for %d shapes", len(written), shapes)
	}
	for _, f := range written {
		if out, err := exec.Command(lint, f).CombinedOutput(); err != nil {
			t.Errorf("yanglint %s: %v\n%s", filepath.Base(f), err, out)
		}
		b, _ := os.ReadFile(f)
		if bytes.Contains(b, []byte("%s")) {
			t.Errorf("%s still holds a %%s placeholder with --uuid", filepath.Base(f))
		}
		if strings.Contains(string(b), "LED-RGB-1") && !strings.Contains(string(b), "RGB lamp dev-42, each channel set from 0 to 255 (100% brightness") {
			t.Errorf("rgb-lamp's description is not bound to the UUID:\n%s", b[:600])
		}
	}
}

// TestMain keeps the NETCONF clients' trust-on-first-use file of this test
// binary out of the user's config dir: the tests' bridges each have their
// own host key and reuse ports, which would look like a changed key.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "myno-known-hosts-")
	if err != nil {
		panic(err)
	}
	os.Setenv("MYNO_KNOWN_HOSTS", filepath.Join(dir, "known_hosts"))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// myno --version names the build; an unknown log level is refused with
// one line that says what is wanted (issue 16).
func TestVersionAndLogLevel(t *testing.T) {
	code, out, _ := runMyno(t, "--version")
	if code != 0 || !strings.HasPrefix(out, "myno version ") || !strings.Contains(out, "go1.") {
		t.Errorf("--version: exit %d %q", code, out)
	}
	if code, _, errOut := runMyno(t, "--log-format", "xml", "yang"); code != 2 || errOut != `myno: invalid value "xml" for flag -log-format: --log-format "xml": want text or json (see myno --help)`+"\n" {
		t.Errorf("--log-format xml: exit %d %q", code, errOut)
	}
	// --log-format json: each log record is one JSON object.
	ctx, cancel := context.WithCancel(context.Background())
	var logs syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"myno", "--log-format", "json", "device", "--description", filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", "led-color.jsonld"),
			"--mqtt-url", "mqtt://127.0.0.1:1"}, io.Discard, &logs)
	}()
	testenv.WaitFor(t, "a log record", func() bool { return strings.Contains(logs.String(), "\n") }, logs.String)
	cancel()
	<-done
	first, _, _ := strings.Cut(logs.String(), "\n")
	var rec map[string]any
	if err := json.Unmarshal([]byte(first), &rec); err != nil || rec["level"] != "WARN" || rec["msg"] == nil {
		t.Errorf("--log-format json: %q %v", first, err)
	}
	code, _, errOut := runMyno(t, "device", "--log-level", "verbose")
	if code != 2 || !strings.Contains(errOut, `--log-level "verbose": want debug, info, warn or error`) {
		t.Errorf("--log-level verbose: exit %d %q", code, errOut)
	}
}

// An unknown command or flag is one error line with a hint, exit 2, and
// no help dump (issue 16).
func TestUnknownCommandsAndFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bogus"}, `myno: unknown command "bogus" (see myno --help)` + "\n"},
		{[]string{"yang", "--bogus"}, "myno: yang: flag provided but not defined: -bogus (see myno yang --help)\n"},
		{[]string{"keys", "gen", "--bogus"}, "myno: gen: flag provided but not defined: -bogus (see myno keys gen --help)\n"},
	} {
		code, out, errOut := runMyno(t, tc.args...)
		if code != 2 || errOut != tc.want || out != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q, want %q", tc.args, code, out, errOut, tc.want)
		}
	}
}

// `myno update --help` describes the campaign options, with an example;
// a bad --rate or --groups is refused, naming the flag.
func TestUpdateCampaignOptions(t *testing.T) {
	_, out, _ := runMyno(t, "update", "--help")
	for _, want := range []string{"--retries", "--retry-backoff", "--rate", "--abort-percent", "--abort-min", "--groups", "--group-success",
		"--state", "--json", "Example: myno update --category", "$MYNO_UPDATE_RATE"} {
		if !strings.Contains(out, want) {
			t.Errorf("update --help does not mention %s", want)
		}
	}
	for in, want := range map[string]string{"fast": `--rate "fast"`, "10/day": `--rate "10/day"`, "0/min": `--rate "0/min"`, "-3/s": `--rate "-3/s"`} {
		if _, err := parseRate(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseRate(%q): %v", in, err)
		}
	}
	for in, want := range map[string]string{"10%,5%,100%": "increasing", "10%,50%": "the last must be 100%", "1%,x": `"x" is not a percentage`} {
		if _, err := parseGroups(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseGroups(%q): %v", in, err)
		}
	}
	for in, want := range map[string]float64{"60/min": 60, "2/s": 120, "120/h": 2, "30": 30, "1.5/m": 1.5} {
		if got, err := parseRate(in); err != nil || got != want {
			t.Errorf("parseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}

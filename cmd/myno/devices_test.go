package main

import (
	"bufio"
	"context"
	"crypto/pbkdf2"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/access"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/wire"
)

// tokenPattern is a token of myno devices add: 256 bits in base64url
// without padding.
var tokenPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// addedTokens parses the NAME ROLE TOKEN table of myno devices add into
// name -> [role, token].
func addedTokens(t *testing.T, out string) map[string][2]string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) == 0 || !slices.Equal(strings.Fields(lines[0]), []string{"NAME", "ROLE", "TOKEN"}) {
		t.Fatalf("devices add printed no NAME ROLE TOKEN header:\n%s", out)
	}
	rows := map[string][2]string{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 3 {
			t.Fatalf("devices add row %q: want NAME ROLE TOKEN", l)
		}
		rows[f[0]] = [2]string{f[1], f[2]}
	}
	return rows
}

// addDevices runs myno devices add and returns the tokens by name.
func addDevices(t *testing.T, args ...string) map[string]string {
	t.Helper()
	code, out, errOut := runMyno(t, append([]string{"devices", "add"}, args...)...)
	if code != 0 {
		t.Fatalf("devices add %v: exit %d\n%s", args, code, errOut)
	}
	tokens := map[string]string{}
	for name, row := range addedTokens(t, out) {
		tokens[name] = row[1]
	}
	return tokens
}

// authenticate logs name in with token against the credential file in
// dataDir, as the bridge's embedded broker would.
func authenticate(t *testing.T, dataDir, name, token string, enrol access.Enrolment) error {
	t.Helper()
	store, err := access.OpenStore(filepath.Join(dataDir, bridge.CredentialsFile))
	if err != nil {
		t.Fatal(err)
	}
	c := &access.Controller{Store: store, Enrolment: enrol, Logger: testenv.Logger()}
	_, err = c.Authenticate(access.ConnectRequest{ClientID: name, Username: name, Password: []byte(token)})
	return err
}

func TestDevicesAdd(t *testing.T) {
	dir, tokenDir := t.TempDir(), filepath.Join(t.TempDir(), "tokens")
	code, out, errOut := runMyno(t, "devices", "add", "--data-dir", dir, "--token-dir", tokenDir, "dev-a", "dev-b")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	rows := addedTokens(t, out)
	if len(rows) != 2 {
		t.Fatalf("%d rows for two names:\n%s", len(rows), out)
	}
	credFile := filepath.Join(dir, bridge.CredentialsFile)
	stored, err := os.ReadFile(credFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errOut, "Tokens are shown once") {
		t.Errorf("no word that the tokens are shown once: %s", errOut)
	}
	for _, name := range []string{"dev-a", "dev-b"} {
		role, token := rows[name][0], rows[name][1]
		if role != string(access.RoleDevice) {
			t.Errorf("%s: role %q, want the default device", name, role)
		}
		if !tokenPattern.MatchString(token) {
			t.Errorf("%s: token %q is not 43 characters of base64url", name, token)
		} else if raw, err := base64.RawURLEncoding.DecodeString(token); err != nil || len(raw) != 32 {
			t.Errorf("%s: token %q does not decode to 256 bits: %d bytes, %v", name, token, len(raw), err)
		}
		file := filepath.Join(tokenDir, name+".token")
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if string(data) != token+"\n" {
			t.Errorf("%s holds %q, want the printed token %q", file, data, token)
		}
		checkMode(t, file, 0o600)
		// The credential file keeps digests only.
		if strings.Contains(string(stored), token) {
			t.Errorf("the credential file holds %s's token", name)
		}
		if err := authenticate(t, dir, name, token, access.EnrolClosed); err != nil {
			t.Errorf("%s cannot log in with its printed token: %v", name, err)
		}
	}
	if rows["dev-a"][1] == rows["dev-b"][1] {
		t.Error("two devices got the same token")
	}
	checkMode(t, credFile, 0o600)

	// A name that exists keeps its token unless --replace.
	oldToken := rows["dev-a"][1]
	code, out, errOut = runMyno(t, "devices", "add", "--data-dir", dir, "--token-dir", tokenDir, "dev-a")
	if code != 1 || !strings.Contains(errOut, "dev-a: already provisioned") || strings.Contains(out, "dev-a") {
		t.Errorf("second add of dev-a: exit %d, stdout %q, stderr %s", code, out, errOut)
	}
	if data, _ := os.ReadFile(filepath.Join(tokenDir, "dev-a.token")); string(data) != oldToken+"\n" {
		t.Errorf("a refused add rewrote the token file: %q", data)
	}
	if err := authenticate(t, dir, "dev-a", oldToken, access.EnrolClosed); err != nil {
		t.Errorf("a refused add changed dev-a's credential: %v", err)
	}
	newToken := addDevices(t, "--data-dir", dir, "--token-dir", tokenDir, "--replace", "dev-a")["dev-a"]
	if !tokenPattern.MatchString(newToken) || newToken == oldToken {
		t.Fatalf("--replace: token %q (old %q)", newToken, oldToken)
	}
	if data, _ := os.ReadFile(filepath.Join(tokenDir, "dev-a.token")); string(data) != newToken+"\n" {
		t.Errorf("--replace did not rewrite the token file: %q", data)
	}
	if err := authenticate(t, dir, "dev-a", oldToken, access.EnrolClosed); !errors.Is(err, access.ErrBadCredentials) {
		t.Errorf("the replaced token: %v, want %v", err, access.ErrBadCredentials)
	}
	if err := authenticate(t, dir, "dev-a", newToken, access.EnrolClosed); err != nil {
		t.Errorf("the new token: %v", err)
	}

	// Roles.
	code, out, _ = runMyno(t, "devices", "add", "--data-dir", dir, "--role", "update-server", "upd-1")
	if code != 0 || addedTokens(t, out)["upd-1"][0] != string(access.RoleUpdateServer) {
		t.Errorf("--role update-server: exit %d\n%s", code, out)
	}
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--role", "bad", "dev-c"}, 2, `unknown role "bad"`},
		{[]string{}, 2, "give at least one NAME"},
		{[]string{"bad/name"}, 1, `name "bad/name"`},
		{[]string{"--enrolment", "--role", "bridge", "bridge-1"}, 1, "an enrolment token is for a device, not a bridge"},
		{[]string{"--enrolment", "--role", "update-server", "upd-2"}, 1, "an enrolment token is for a device"},
	} {
		code, out, errOut := runMyno(t, append([]string{"devices", "add", "--data-dir", dir}, tc.args...)...)
		if code != tc.code || !strings.Contains(errOut, tc.msg) {
			t.Errorf("devices add %v: exit %d (want %d), %s", tc.args, code, tc.code, errOut)
		}
		if tokenPattern.MatchString(lastField(out)) {
			t.Errorf("devices add %v printed a token although it failed:\n%s", tc.args, out)
		}
	}
	// The refused names are not in the file.
	_, list, _ := runMyno(t, "devices", "list", "--data-dir", dir)
	for _, name := range []string{"dev-c", "bridge-1", "upd-2"} {
		if strings.Contains(list, name) {
			t.Errorf("refused %s is listed:\n%s", name, list)
		}
	}
	// An enrolment token for a device works under --enrol token only.
	enrolToken := addDevices(t, "--data-dir", dir, "--enrolment", "dev-e")["dev-e"]
	if err := authenticate(t, dir, "dev-e", enrolToken, access.EnrolClosed); !errors.Is(err, access.ErrNotEnrolled) {
		t.Errorf("an enrolment token under --enrol closed: %v, want %v", err, access.ErrNotEnrolled)
	}
	if err := authenticate(t, dir, "dev-e", enrolToken, access.EnrolToken); err != nil {
		t.Errorf("an enrolment token under --enrol token: %v", err)
	}
}

// checkMode fails the test unless file has the permission bits perm.
func checkMode(t *testing.T, file string, perm os.FileMode) {
	t.Helper()
	info, err := os.Stat(file)
	if err != nil {
		t.Error(err)
	} else if info.Mode().Perm() != perm {
		t.Errorf("%s: mode %v, want %v", file, info.Mode().Perm(), perm)
	}
}

func lastField(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return ""
	}
	return f[len(f)-1]
}

// listRows parses myno devices list: name -> the line.
func listRows(t *testing.T, out string) map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if !slices.Equal(strings.Fields(lines[0]), []string{"NAME", "ROLE", "STATE", "CREATED"}) {
		t.Fatalf("devices list printed no NAME ROLE STATE CREATED header:\n%s", out)
	}
	rows := map[string]string{}
	for _, l := range lines[1:] {
		rows[strings.Fields(l)[0]] = l
	}
	return rows
}

func TestDevicesListAndRemove(t *testing.T) {
	dir := t.TempDir()
	tokens := addDevices(t, "--data-dir", dir, "dev-p", "dev-q")
	for name, token := range addDevices(t, "--data-dir", dir, "--role", "e2e-manager", "mgr-1") {
		tokens[name] = token
	}
	for name, token := range addDevices(t, "--data-dir", dir, "--enrolment", "dev-new", "dev-used") {
		tokens[name] = token
	}
	for name, token := range addDevices(t, "--data-dir", dir, "--enrolment", "--ttl", "1ns", "dev-late") {
		tokens[name] = token
	}
	// dev-used enrols with its token, as at the bridge with --enrol token.
	if err := authenticate(t, dir, "dev-used", tokens["dev-used"], access.EnrolToken); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runMyno(t, "devices", "list", "--data-dir", dir)
	if code != 0 {
		t.Fatalf("list: exit %d %s", code, errOut)
	}
	for name, token := range tokens {
		if strings.Contains(out, token) {
			t.Errorf("list prints %s's token:\n%s", name, out)
		}
	}
	rows := listRows(t, out)
	created := `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`
	for name, want := range map[string]string{
		"dev-p":    `^dev-p\s+device\s+provisioned\s+` + created + `$`,
		"dev-q":    `^dev-q\s+device\s+provisioned\s+`,
		"mgr-1":    `^mgr-1\s+e2e-manager\s+provisioned\s+`,
		"dev-new":  `^dev-new\s+device\s+enrolment token unused\s+` + created + `$`,
		"dev-used": `^dev-used\s+device\s+enrolled ` + created + `\s+` + created + `$`,
		"dev-late": `^dev-late\s+device\s+enrolment token expired ` + created + `\s+`,
	} {
		if !regexp.MustCompile(want).MatchString(rows[name]) {
			t.Errorf("%s: row %q, want %s", name, rows[name], want)
		}
	}
	if len(rows) != len(tokens) {
		t.Errorf("%d rows for %d identities:\n%s", len(rows), len(tokens), out)
	}
	// An expired enrolment token admits nobody.
	if err := authenticate(t, dir, "dev-late", tokens["dev-late"], access.EnrolToken); !errors.Is(err, access.ErrNotEnrolled) {
		t.Errorf("expired enrolment token: %v, want %v", err, access.ErrNotEnrolled)
	}

	// remove
	if code, _, errOut := runMyno(t, "devices", "remove", "--data-dir", dir, "dev-p", "mgr-1"); code != 0 {
		t.Fatalf("remove: exit %d %s", code, errOut)
	}
	_, out, _ = runMyno(t, "devices", "list", "--data-dir", dir)
	rows = listRows(t, out)
	if _, ok := rows["dev-p"]; ok {
		t.Errorf("dev-p still listed after remove:\n%s", out)
	}
	if _, ok := rows["mgr-1"]; ok {
		t.Errorf("mgr-1 still listed after remove:\n%s", out)
	}
	if _, ok := rows["dev-q"]; !ok {
		t.Errorf("dev-q went with dev-p:\n%s", out)
	}
	if err := authenticate(t, dir, "dev-p", tokens["dev-p"], access.EnrolClosed); !errors.Is(err, access.ErrNotEnrolled) {
		t.Errorf("removed dev-p logs in: %v", err)
	}
	code, _, errOut = runMyno(t, "devices", "remove", "--data-dir", dir, "dev-p")
	if code != 1 || !strings.Contains(errOut, "not provisioned: dev-p") {
		t.Errorf("removing a missing name: exit %d %s", code, errOut)
	}
	code, _, errOut = runMyno(t, "devices", "remove", "--data-dir", dir, "no-such-device", "also-missing")
	if code != 1 || !strings.Contains(errOut, "not provisioned: no-such-device, also-missing") {
		t.Errorf("removing missing names: exit %d %s", code, errOut)
	}

	// --mqtt-credentials names another file than the data directory's.
	other := filepath.Join(t.TempDir(), "creds.json")
	addDevices(t, "--mqtt-credentials", other, "elsewhere-1")
	_, out, _ = runMyno(t, "devices", "list", "--mqtt-credentials", other)
	if rows := listRows(t, out); len(rows) != 1 || rows["elsewhere-1"] == "" {
		t.Errorf("list of --mqtt-credentials %s:\n%s", other, out)
	}
	_, out, _ = runMyno(t, "devices", "list", "--data-dir", dir)
	if strings.Contains(out, "elsewhere-1") {
		t.Errorf("--mqtt-credentials wrote to the data directory's file:\n%s", out)
	}
}

// parseACL splits a Mosquitto ACL file into its user blocks: name -> the
// block's topic lines.
func parseACL(t *testing.T, acl string) map[string][]string {
	t.Helper()
	blocks := map[string][]string{}
	user := ""
	sc := bufio.NewScanner(strings.NewReader(acl))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "user "):
			user = strings.TrimPrefix(line, "user ")
			if _, dup := blocks[user]; dup {
				t.Errorf("two blocks for user %s", user)
			}
			blocks[user] = []string{}
		case strings.HasPrefix(line, "topic write ") || strings.HasPrefix(line, "topic read "):
			if user == "" {
				t.Errorf("%q outside a user block", line)
			}
			blocks[user] = append(blocks[user], line)
		default:
			t.Errorf("unexpected ACL line %q", line)
		}
	}
	return blocks
}

// mosquittoHashRE is a line of a Mosquitto password file ($7$: PBKDF2 with
// HMAC-SHA-512).
var mosquittoHashRE = regexp.MustCompile(`^([^:]+):\$7\$101\$([A-Za-z0-9+/]+=*)\$([A-Za-z0-9+/]+=*)$`)

func TestACLExportMosquitto(t *testing.T) {
	dir, out := t.TempDir(), t.TempDir()
	tokens := addDevices(t, "--data-dir", dir, "acl-dev-1", "acl-dev-2", "acl-mup-1")
	addDevices(t, "--data-dir", dir, "--role", "bridge", "bridge-1")
	addDevices(t, "--data-dir", dir, "--role", "update-server", "upd-1")
	addDevices(t, "--data-dir", dir, "--role", "e2e-manager", "mgr-1")
	addDevices(t, "--data-dir", dir, "--enrolment", "acl-pending")
	descs := filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions")
	pwFile, aclFile := filepath.Join(out, "passwd"), filepath.Join(out, "acl")
	export := func(t *testing.T, extra ...string) (passwd string, blocks map[string][]string) {
		t.Helper()
		code, stdout, errOut := runMyno(t, append([]string{"acl", "export", "--data-dir", dir, "--format", "mosquitto",
			"--password-file", pwFile, "--acl-file", aclFile}, extra...)...)
		if code != 0 {
			t.Fatalf("acl export %v: exit %d %s", extra, code, errOut)
		}
		if !strings.Contains(stdout, "7 identities") {
			t.Errorf("acl export: %s", stdout)
		}
		pw, err := os.ReadFile(pwFile)
		if err != nil {
			t.Fatal(err)
		}
		checkMode(t, pwFile, 0o600)
		acl, err := os.ReadFile(aclFile)
		if err != nil {
			t.Fatal(err)
		}
		return string(pw), parseACL(t, string(acl))
	}
	passwd, blocks := export(t,
		"--description", "acl-dev-1="+filepath.Join(descs, "led-color.jsonld"),
		"--description", "acl-mup-1="+filepath.Join(descs, "mup-device.jsonld"))

	// The password file: one $7$ line per identity with a credential, none
	// for the unused enrolment token; the hash is of the device's token.
	var names []string
	for _, line := range strings.Split(strings.TrimRight(passwd, "\n"), "\n") {
		m := mosquittoHashRE.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("password file line %q: want name:$7$101$salt$hash", line)
			continue
		}
		names = append(names, m[1])
		if m[1] != "acl-dev-1" {
			continue
		}
		salt, err1 := base64.StdEncoding.DecodeString(m[2])
		hash, err2 := base64.StdEncoding.DecodeString(m[3])
		key, err3 := pbkdf2.Key(sha512.New, tokens["acl-dev-1"], salt, 101, sha512.Size)
		if err := errors.Join(err1, err2, err3); err != nil || string(key) != string(hash) {
			t.Errorf("acl-dev-1's hash is not PBKDF2-SHA512 of its token (%v)", err)
		}
	}
	if want := []string{"acl-dev-1", "acl-dev-2", "acl-mup-1", "bridge-1", "mgr-1", "upd-1"}; !slices.Equal(names, want) {
		t.Errorf("password file names %v, want %v", names, want)
	}
	if strings.Contains(passwd, "acl-pending") {
		t.Error("the unused enrolment token is in the password file")
	}

	// The ACL: a block per identity, the unused enrolment token left out.
	if got := slices.Sorted(maps.Keys(blocks)); !slices.Equal(got, names) {
		t.Errorf("ACL users %v, want %v", got, names)
	}
	dev := blocks["acl-dev-1"]
	for _, want := range []string{
		"topic write " + wire.DeviceBootstrapTopic(wire.TopicCreate, "acl-dev-1"),
		"topic write " + wire.ResponseTopic("acl-dev-1"),
		"topic read " + wire.BootstrapResponseTopic(wire.TopicCreate, "acl-dev-1"),
		"topic read " + wire.TopicUpdateServerCert,
		// From its description (--description):
		"topic read actuator/led/acl-dev-1",
		"topic write sensor/brightness/acl-dev-1",
	} {
		if !slices.Contains(dev, want) {
			t.Errorf("acl-dev-1's block lacks %q:\n%s", want, strings.Join(dev, "\n"))
		}
	}
	for _, line := range dev {
		switch {
		case line == "topic write "+wire.TopicUpdateServerCert:
			t.Errorf("a device may write the Update Server certificate: %q", line)
		case line == "topic write "+wire.TopicCreate || line == "topic write "+wire.TopicLegacy:
			t.Errorf("a device may write a shared bootstrap topic without --legacy-bootstrap-topics: %q", line)
		case strings.Contains(line, "acl-dev-2") || strings.Contains(line, "acl-mup-1") || strings.HasSuffix(line, " #"):
			t.Errorf("acl-dev-1 is granted another's topics: %q", line)
		}
	}
	// acl-dev-2 has no description: only its own bootstrap, response,
	// status and E2E topics.
	for _, line := range blocks["acl-dev-2"] {
		if !strings.Contains(line, "acl-dev-2") && line != "topic read "+wire.TopicUpdateServerCert {
			t.Errorf("acl-dev-2 without a description is granted %q", line)
		}
		if strings.Contains(line, "actuator/") || strings.Contains(line, "sensor/") {
			t.Errorf("acl-dev-2 without a description is granted %q", line)
		}
	}
	// Firmware images: the device reads its image topic and acknowledges,
	// the Update Server the other way round; the E2E manager has neither.
	image := "yang/update/image/acl-mup-1"
	for _, c := range []struct {
		user string
		want []string
	}{
		{"acl-mup-1", []string{"topic read " + image, "topic write " + wire.FirmwareAckTopic(image)}},
		{"upd-1", []string{"topic write " + image, "topic read " + wire.FirmwareAckTopic(image), "topic read " + wire.FirmwareStatusFilter,
			"topic write " + wire.DefaultE2EPrefix + "/upd-1/+/notify"}},
		{"mgr-1", []string{"topic write " + wire.DefaultE2EPrefix + "/mgr-1/+/notify", "topic read " + wire.DefaultE2EPrefix + "/mgr-1/+/ready"}},
		{"bridge-1", []string{"topic write #", "topic read #"}},
	} {
		for _, want := range c.want {
			if !slices.Contains(blocks[c.user], want) {
				t.Errorf("%s's block lacks %q:\n%s", c.user, want, strings.Join(blocks[c.user], "\n"))
			}
		}
	}
	for _, line := range blocks["mgr-1"] {
		if strings.Contains(line, image) || strings.Contains(line, "/upd-1/") {
			t.Errorf("the E2E manager is granted %q", line)
		}
	}

	// Without the descriptions, nothing of them is granted; with
	// --legacy-bootstrap-topics the shared bootstrap topics are.
	_, blocks = export(t, "--legacy-bootstrap-topics")
	if dev := blocks["acl-dev-1"]; slices.Contains(dev, "topic read actuator/led/acl-dev-1") || !slices.Contains(dev, "topic write "+wire.TopicCreate) {
		t.Errorf("acl-dev-1 without its description, with --legacy-bootstrap-topics:\n%s", strings.Join(dev, "\n"))
	}
	if slices.Contains(blocks["upd-1"], "topic write "+image) {
		t.Errorf("upd-1 may write the image topic of a device not described")
	}

	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--format", "json"}, 2, `--format "json"`},
		{[]string{"--description", "acl-dev-1"}, 2, "want UUID=FILE"},
		{[]string{"--description", "acl-dev-1=" + filepath.Join(out, "missing.jsonld")}, 1, "missing.jsonld"},
		{[]string{"--description", "acl-dev-1=" + filepath.Join(testenv.RepoRoot(t), "testdata", "broken", "no-device.jsonld")}, 1, "acl-dev-1"},
	} {
		code, _, errOut := runMyno(t, append([]string{"acl", "export", "--data-dir", dir, "--password-file", pwFile, "--acl-file", aclFile}, tc.args...)...)
		if code != tc.code || !strings.Contains(errOut, tc.msg) {
			t.Errorf("acl export %v: exit %d (want %d), %s", tc.args, code, tc.code, errOut)
		}
	}
}

// A running bridge follows myno devices: a device provisioned while it
// runs logs in, a wrong token is refused, and a removed device is
// disconnected and cannot log in again.
func TestBridgeFollowsDevicesCommand(t *testing.T) {
	dir, tokenDir := t.TempDir(), t.TempDir()
	t.Setenv("MYNO_ADMIN_PASSWORD", "pw")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"myno", "bridge", "--data-dir", dir, "--netconf-listen", "127.0.0.1:0", "--mqtt-listen", "127.0.0.1:0",
			"--enrol", "closed", "--log-level", "info"}, &out, &errOut)
	}()
	brokerRE := regexp.MustCompile(`msg="bridge started" .*mqtt=(mqtt://127\.0\.0\.1:\d+)`)
	testenv.WaitFor(t, "the bridge to start", func() bool { return brokerRE.MatchString(errOut.String()) }, errOut.String)
	url := brokerRE.FindStringSubmatch(errOut.String())[1]
	if !strings.Contains(errOut.String(), "enrol=closed") {
		t.Errorf("the bridge does not run with --enrol closed:\n%s", errOut.String())
	}

	dial := func(clientID, token string, timeout time.Duration) (client.Transport, error) {
		dctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return client.Dial(dctx, client.Config{URL: url, ClientID: clientID, Logger: testenv.Logger(),
			Credentials: client.Credentials{Username: "dev-x", Password: token}})
	}
	refused := func(what, clientID, token, code string) {
		t.Helper()
		tr, err := dial(clientID, token, 3*time.Second)
		if err == nil {
			tr.Close(context.Background())
			t.Fatalf("%s: admitted", what)
		}
		if !strings.Contains(err.Error(), "CONNACK reason "+code) {
			t.Errorf("%s: %v, want CONNACK %s", what, err, code)
		}
		t.Logf("%s: %v", what, err)
	}

	// Not provisioned yet: --enrol closed refuses it.
	refused("dev-x before it is provisioned", "dev-x", "a-token-nobody-made-0123456789", "0x87")
	token := addDevices(t, "--data-dir", dir, "--token-dir", tokenDir, "dev-x")["dev-x"]
	if token == "" {
		t.Fatal("no token for dev-x")
	}
	data, err := os.ReadFile(filepath.Join(tokenDir, "dev-x.token"))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := dial("dev-x", strings.TrimSpace(string(data)), 10*time.Second)
	if err != nil {
		t.Fatalf("dev-x with its token: %v\n%s", err, errOut.String())
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		tr.Close(cctx)
	}()
	// Admitted as itself: its own topics, not another device's.
	if err := tr.Subscribe(ctx, wire.BootstrapResponseTopic(wire.TopicCreate, "dev-x")); err != nil {
		t.Errorf("dev-x may not subscribe to its bootstrap answers: %v", err)
	}
	if err := tr.Subscribe(ctx, wire.BootstrapResponseTopic(wire.TopicCreate, "dev-y")); err == nil {
		t.Error("dev-x may subscribe to dev-y's bootstrap answers")
	}
	refused("a wrong token", wire.DeviceClientID("dev-x"), "not-"+token, "0x86")
	refused("another client identifier", "someone-else", token, "0x85")
	if !tr.Connected() {
		t.Fatal("the refused logins disconnected dev-x")
	}

	if code, _, errOut := runMyno(t, "devices", "remove", "--data-dir", dir, "dev-x"); code != 0 {
		t.Fatalf("devices remove: exit %d %s", code, errOut)
	}
	testenv.WaitFor(t, "the bridge to disconnect the removed dev-x", func() bool {
		return strings.Contains(errOut.String(), `msg="mqtt credential removed" name=dev-x disconnected=1`) && !tr.Connected()
	}, errOut.String)
	refused("dev-x after its removal", "dev-x", token, "0x87")
	// Its own reconnection attempts are refused as well: it stays off.
	if tr.Connected() {
		t.Error("the removed dev-x is connected again")
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("bridge exit %d:\n%s", code, errOut.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the bridge did not stop")
	}
}

package deploy

import (
	"bufio"
	"debug/elf"
	"encoding/json"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/myno-bridge/myno/internal/testenv"
)

const unitName = "myno-bridge.service"

// buildMyno builds ./cmd/myno into a temporary directory as deploy/Dockerfile
// does (TestDockerfile checks the Dockerfile says so): without cgo, paths
// or symbols. The environment, GOFLAGS included, is the test's.
func buildMyno(t *testing.T) string {
	t.Helper()
	goTool := testenv.Tool(t, "go")
	out := filepath.Join(t.TempDir(), "myno")
	cmd := exec.Command(goTool, "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./cmd/myno")
	cmd.Dir = testenv.RepoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, msg)
	}
	return out
}

// The image's final stage has no libc and the unit forbids nothing a
// static binary needs: no dynamic loader, no shared libraries.
func TestStaticBinary(t *testing.T) {
	bin := buildMyno(t)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has a PT_INTERP program header: it needs a dynamic loader", bin)
		}
	}
	needed, err := f.DynString(elf.DT_NEEDED)
	if err != nil {
		t.Fatal(err)
	}
	if len(needed) > 0 {
		t.Errorf("%s needs shared libraries (DT_NEEDED): %v", bin, needed)
	}
}

// unit is a parsed systemd unit file: "Section.Key" → its assignments, in
// order.
type unit map[string][]string

// last is the key's last assignment, the one in effect for a plain setting.
func (u unit) last(key string) (string, bool) {
	v := u[key]
	if len(v) == 0 {
		return "", false
	}
	return v[len(v)-1], true
}

// parseUnit reads a unit file as systemd does: sections, Key=Value,
// comments (# and ;) and lines continued with a backslash.
func parseUnit(t *testing.T, file string) unit {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	u := unit{}
	section, pending := "", ""
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if pending == "" && (line == "" || line[0] == '#' || line[0] == ';') {
			continue
		}
		if l, ok := strings.CutSuffix(line, "\\"); ok {
			pending += l + " "
			continue
		}
		line, pending = pending+line, ""
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = line[1 : len(line)-1]
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: not Key=Value: %q", file, line)
		}
		key = section + "." + strings.TrimSpace(key)
		u[key] = append(u[key], strings.TrimSpace(value))
	}
	return u
}

// environment is the unit's Environment= assignments (KEY=VALUE words,
// optionally quoted).
func (u unit) environment() map[string]string {
	env := map[string]string{}
	for _, v := range u["Service.Environment"] {
		for _, word := range strings.Fields(v) {
			k, val, _ := strings.Cut(strings.Trim(word, `"`), "=")
			env[k] = val
		}
	}
	return env
}

func TestSystemdUnitVerifies(t *testing.T) {
	unitFile := filepath.Join(testenv.RepoRoot(t), "deploy", unitName)
	u := parseUnit(t, unitFile)

	t.Run("hardening", func(t *testing.T) {
		for _, c := range []struct{ key, want string }{
			{"DynamicUser", "yes"},
			{"StateDirectory", "myno"},
			{"ProtectSystem", "strict"},
			{"ProtectHome", "yes"},
			{"PrivateTmp", "yes"},
			{"PrivateDevices", "yes"},
			{"NoNewPrivileges", "yes"},
			{"CapabilityBoundingSet", ""},
			{"AmbientCapabilities", ""},
			{"SystemCallArchitectures", "native"},
			{"MemoryDenyWriteExecute", "yes"},
			{"LockPersonality", "yes"},
			{"RestrictNamespaces", "yes"},
			{"RestrictRealtime", "yes"},
			{"RestrictSUIDSGID", "yes"},
			{"ProtectKernelTunables", "yes"},
			{"ProtectKernelModules", "yes"},
			{"ProtectKernelLogs", "yes"},
			{"ProtectControlGroups", "yes"},
			{"ProtectClock", "yes"},
			{"ProtectHostname", "yes"},
			{"ProtectProc", "invisible"},
			{"ProcSubset", "pid"},
			{"UMask", "0077"},
			{"Restart", "on-failure"},
			{"KillSignal", "SIGTERM"},
			// cmd/myno/bridge.go reloads the users file on SIGHUP.
			{"ExecReload", "/bin/kill -HUP $MAINPID"},
			{"EnvironmentFile", "-/etc/myno/bridge.env"},
		} {
			if got, ok := u.last("Service." + c.key); !ok || got != c.want {
				t.Errorf("%s=%q, want %q (set: %t)", c.key, got, c.want, ok)
			}
		}
		if got, _ := u.last("Service.RestrictAddressFamilies"); !sameWords(got, "AF_INET AF_INET6 AF_UNIX") {
			t.Errorf("RestrictAddressFamilies=%q, want AF_INET AF_INET6 AF_UNIX", got)
		}
		if !slices.Contains(u["Service.SystemCallFilter"], "@system-service") {
			t.Errorf("SystemCallFilter=%q, want @system-service among them", u["Service.SystemCallFilter"])
		}
		if start, _ := u.last("Service.ExecStart"); !strings.HasPrefix(start+" ", "/usr/local/bin/myno bridge ") {
			t.Errorf("ExecStart=%q, want /usr/local/bin/myno bridge ...", start)
		}
		env := u.environment()
		state, _ := u.last("Service.StateDirectory")
		if env["MYNO_DATA_DIR"] != "/var/lib/"+state {
			t.Errorf("Environment MYNO_DATA_DIR=%q, want the StateDirectory /var/lib/%s", env["MYNO_DATA_DIR"], state)
		}
		// Without capabilities the bridge may only bind ports above 1023.
		for k, v := range env {
			if !strings.HasSuffix(k, "_LISTEN") {
				continue
			}
			_, port, err := net.SplitHostPort(v)
			if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 1024 {
				t.Errorf("%s=%q: want an address with a port of 1024 or more (the unit has no CAP_NET_BIND_SERVICE)", k, v)
			}
		}
	})

	t.Run("systemd-analyze", func(t *testing.T) {
		analyze := testenv.Tool(t, "systemd-analyze")
		bin := buildMyno(t)
		root := t.TempDir()
		start, _ := u.last("Service.ExecStart")
		if start == "" {
			t.Fatal("no ExecStart")
		}
		startPath := strings.Fields(start)[0]
		install(t, bin, filepath.Join(root, startPath), 0o755)
		// verify checks that every command of the unit is an executable file
		// in the root; /bin/kill is the host's (procps), not ours, so a stub
		// stands in for it.
		for _, key := range []string{"ExecStartPre", "ExecStartPost", "ExecReload", "ExecStop", "ExecStopPost"} {
			for _, cmd := range u["Service."+key] {
				p := strings.TrimLeft(strings.Fields(cmd)[0], "-@:+!")
				if p != startPath {
					writeFile(t, filepath.Join(root, p), "#!/bin/sh\n", 0o755)
				}
			}
		}
		// The units the service depends on, as stubs: the default
		// dependencies of a service (sysinit.target is required; without it
		// verify fails) and those the unit names. The root holds nothing
		// else, so the result does not depend on the host's units.
		deps := []string{"sysinit.target", "basic.target", "shutdown.target"}
		for _, key := range []string{"Unit.Wants", "Unit.Requires", "Unit.After", "Unit.Before", "Install.WantedBy"} {
			for _, v := range u[key] {
				deps = append(deps, strings.Fields(v)...)
			}
		}
		for _, d := range deps {
			writeFile(t, filepath.Join(root, "usr/lib/systemd/system", d), "[Unit]\nDescription=stub of "+d+"\n", 0o644)
		}
		installed := filepath.Join(root, "etc/systemd/system", unitName)
		install(t, unitFile, installed, 0o644)

		out, err := exec.Command(analyze, "verify", "--root="+root, installed).CombinedOutput()
		if len(out) > 0 {
			t.Logf("systemd-analyze verify:\n%s", out)
		}
		if err != nil {
			t.Errorf("systemd-analyze verify: %v", err)
		}
		// verify exits 0 on warnings (unknown keys, values it ignores), so
		// every line about the unit, its file or its commands fails the
		// test. Other lines (none with this root on systemd 252) would be
		// about the host, e.g. its own units: logged above, not failed.
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if line != "" && (strings.Contains(line, unitName) || strings.Contains(line, root) || strings.Contains(line, startPath)) {
				t.Errorf("systemd-analyze verify: %s", line)
			}
		}

		// The exposure score of the hardening (0 best, 10 worst) stays
		// at most 2.0 (1.4 when written).
		out, err = exec.Command(analyze, "security", "--offline=yes", "--root="+root, "--threshold=20", installed).CombinedOutput()
		if err != nil {
			t.Errorf("systemd-analyze security: %v\n%s", err, out)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "Overall exposure level") {
				t.Log(strings.TrimSpace(line))
			}
		}
	})
}

func sameWords(a, b string) bool {
	x, y := strings.Fields(a), strings.Fields(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

// install copies src to dst, creating its directories.
func install(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dst, string(data), mode)
}

func writeFile(t *testing.T, file, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// instruction is one Dockerfile instruction, continuations joined.
type instruction struct {
	cmd, args string
	line      int
}

// stage is a FROM and the instructions up to the next one.
type stage struct {
	image, name string
	ins         []instruction
}

// find returns the stage's instructions of one kind.
func (s stage) find(cmd string) []instruction {
	var out []instruction
	for _, in := range s.ins {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// parseDockerfile splits a Dockerfile into stages of instructions: lines
// continued with a backslash are joined, comment lines (also inside a
// continuation) and blank lines dropped, as Docker does.
func parseDockerfile(t *testing.T, file string) []stage {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		stages  []stage
		pending string
		first   int
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if pending == "" {
			first = n
		}
		if l, ok := strings.CutSuffix(line, "\\"); ok {
			pending += l + " "
			continue
		}
		line, pending = pending+line, ""
		word, args, _ := strings.Cut(line, " ")
		in := instruction{cmd: strings.ToUpper(word), args: strings.TrimSpace(args), line: first}
		if in.cmd == "FROM" {
			fields := slices.DeleteFunc(strings.Fields(in.args), func(w string) bool { return strings.HasPrefix(w, "--") })
			s := stage{image: fields[0]}
			if len(fields) == 3 && strings.EqualFold(fields[1], "AS") {
				s.name = fields[2]
			}
			stages = append(stages, s)
			continue
		}
		if len(stages) == 0 {
			t.Fatalf("%s:%d: %s before the first FROM", file, first, in.cmd)
		}
		stages[len(stages)-1].ins = append(stages[len(stages)-1].ins, in)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if pending != "" {
		t.Fatalf("%s: ends inside a continued line", file)
	}
	return stages
}

// env is the KEY=VALUE pairs of a stage's ENV instructions.
func (s stage) env() map[string]string {
	env := map[string]string{}
	for _, in := range s.find("ENV") {
		for _, word := range strings.Fields(in.args) {
			k, v, _ := strings.Cut(word, "=")
			env[k] = strings.Trim(v, `"`)
		}
	}
	return env
}

// execForm parses an instruction's JSON (exec) form.
func execForm(t *testing.T, in instruction) []string {
	t.Helper()
	var argv []string
	if err := json.Unmarshal([]byte(in.args), &argv); err != nil || len(argv) == 0 {
		t.Fatalf("Dockerfile:%d: %s %s: want the exec form [\"...\"]", in.line, in.cmd, in.args)
	}
	return argv
}

// image is the Dockerfile's final stage: its user and environment.
type image struct {
	user string
	env  map[string]string
}

func finalImage(t *testing.T) image {
	t.Helper()
	stages := parseDockerfile(t, filepath.Join(testenv.RepoRoot(t), "deploy", "Dockerfile"))
	final := stages[len(stages)-1]
	img := image{env: final.env()}
	if users := final.find("USER"); len(users) > 0 {
		img.user = users[len(users)-1].args
	}
	return img
}

func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t, filepath.Join(testenv.RepoRoot(t), "deploy", "Dockerfile"))
	if len(stages) < 2 {
		t.Fatalf("%d FROM stages, want a build stage and a runtime stage", len(stages))
	}
	final := stages[len(stages)-1]

	// The build: a stage before the last runs a static go build of
	// ./cmd/myno (with the flags buildMyno uses).
	var build *stage
	var binary string
	for i := range stages[:len(stages)-1] {
		for _, run := range stages[i].find("RUN") {
			if !strings.Contains(run.args, "go build") {
				continue
			}
			for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags="-s -w"`, "./cmd/myno"} {
				if !strings.Contains(run.args, want) {
					t.Errorf("Dockerfile:%d: the go build lacks %s", run.line, want)
				}
			}
			if m := regexp.MustCompile(`-o\s+(\S+)`).FindStringSubmatch(run.args); m != nil {
				build, binary = &stages[i], m[1]
			}
		}
	}
	if build == nil {
		t.Fatal("no stage before the last runs go build -o ... ./cmd/myno")
	}
	if final.image == build.image {
		t.Errorf("the final stage is the build image %s", final.image)
	}

	// The final stage copies the binary from the build stage, and runs it.
	var installed string
	for _, c := range final.find("COPY") {
		words := strings.Fields(c.args)
		from := ""
		var paths []string
		for _, w := range words {
			if f, ok := strings.CutPrefix(w, "--from="); ok {
				from = f
			} else if !strings.HasPrefix(w, "--") {
				paths = append(paths, w)
			}
		}
		if from != "" && from == build.name && len(paths) == 2 && paths[0] == binary {
			installed = paths[1]
			if strings.HasSuffix(installed, "/") {
				installed += path.Base(binary)
			}
		}
	}
	if installed == "" {
		t.Fatalf("the final stage does not COPY --from=%s %s", build.name, binary)
	}
	entry := final.find("ENTRYPOINT")
	if len(entry) == 0 {
		t.Fatal("the final stage has no ENTRYPOINT")
	}
	if argv := execForm(t, entry[len(entry)-1]); argv[0] != installed {
		t.Errorf("ENTRYPOINT %v, want it to run %s", argv, installed)
	}
	if cmd := final.find("CMD"); len(cmd) == 0 || execForm(t, cmd[len(cmd)-1])[0] != "bridge" {
		t.Errorf("CMD: want [\"bridge\", ...]")
	}

	// A numeric user that is not root, user and group: a runtime (and
	// Kubernetes' runAsNonRoot) can check it without /etc/passwd.
	users := final.find("USER")
	if len(users) == 0 {
		t.Fatal("the final stage has no USER: it would run as root")
	}
	user := users[len(users)-1].args
	for _, id := range strings.Split(user, ":") {
		if n, err := strconv.Atoi(id); err != nil || n == 0 {
			t.Errorf("USER %s: want numeric ids other than 0", user)
			break
		}
	}

	// The data directory is a volume, and the listen ports are exposed.
	env := final.env()
	var volumes, exposed []string
	for _, v := range final.find("VOLUME") {
		if strings.HasPrefix(v.args, "[") {
			volumes = append(volumes, execForm(t, v)...)
		} else {
			volumes = append(volumes, strings.Fields(v.args)...)
		}
	}
	for _, e := range final.find("EXPOSE") {
		exposed = append(exposed, strings.Fields(e.args)...)
	}
	if dir := env["MYNO_DATA_DIR"]; dir == "" || !slices.Contains(volumes, dir) {
		t.Errorf("MYNO_DATA_DIR=%q, VOLUME %v: want the data directory a volume", dir, volumes)
	}
	for _, k := range []string{"MYNO_NETCONF_LISTEN", "MYNO_MQTT_LISTEN"} {
		host, port, err := net.SplitHostPort(env[k])
		if err != nil || host != "" || !slices.Contains(exposed, port) {
			t.Errorf("%s=%q, EXPOSE %v: want every interface (\":port\") and the port exposed", k, env[k], exposed)
		}
	}
}

// yamlEntries flattens the block-style YAML that compose.yaml is written in
// (mappings, "- " lists, scalars, one-line flow lists) into path → values:
// "services.bridge.environment.MYNO_MQTT_URL" → the URL,
// "services.bridge.depends_on" → ["mosquitto"]. The items of a list that
// are mappings are numbered: "services.mosquitto.volumes.1.source".
func yamlEntries(t *testing.T, file string) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	type level struct {
		indent int
		key    string
	}
	var stack []level
	entries := map[string][]string{}
	items := map[string]int{}
	pathOf := func(key string) string {
		var keys []string
		for _, l := range stack {
			keys = append(keys, l.key)
		}
		return strings.Join(append(keys, key), ".")
	}
	add := func(p, value string) {
		value = strings.TrimSpace(value)
		if strings.HasPrefix(value, "[") && strings.HasSuffix(value, "]") {
			for _, v := range strings.Split(value[1:len(value)-1], ",") {
				entries[p] = append(entries[p], unquote(v))
			}
			return
		}
		entries[p] = append(entries[p], unquote(value))
	}
	for n, line := range strings.Split(string(data), "\n") {
		content := strings.TrimSpace(stripComment(line))
		if content == "" || content == "---" {
			continue
		}
		indent := len(line) - len(strings.TrimLeft(line, " "))
		for len(stack) > 0 && stack[len(stack)-1].indent >= indent {
			stack = stack[:len(stack)-1]
		}
		if item, ok := strings.CutPrefix(content, "- "); ok {
			list := pathOf("")
			list = strings.TrimSuffix(list, ".")
			i := items[list]
			items[list]++
			if k, v, ok := cutKey(item); ok {
				// A mapping as a list item: its keys sit two columns in.
				stack = append(stack, level{indent, strconv.Itoa(i)})
				if v == "" {
					stack = append(stack, level{indent + 2, k})
				} else {
					add(pathOf(k), v)
				}
				continue
			}
			add(list, item)
			continue
		}
		k, v, ok := cutKey(content)
		if !ok {
			t.Fatalf("%s:%d: not a key, list item or comment: %q", file, n+1, line)
		}
		if v == "" {
			stack = append(stack, level{indent, k})
			continue
		}
		add(pathOf(k), v)
	}
	return entries
}

// cutKey splits "key: value" or "key:"; false for a plain scalar.
func cutKey(s string) (key, value string, ok bool) {
	if strings.HasPrefix(s, `"`) || strings.HasPrefix(s, `'`) {
		return "", "", false
	}
	if k, ok := strings.CutSuffix(s, ":"); ok && !strings.Contains(k, ": ") {
		return k, "", true
	}
	k, v, ok := strings.Cut(s, ": ")
	return k, v, ok
}

// stripComment removes a comment that is not inside quotes.
func stripComment(line string) string {
	quote := rune(0)
	for i, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '"' || r == '\'':
			quote = r
		case r == '#' && (i == 0 || line[i-1] == ' '):
			return line[:i]
		}
	}
	return line
}

func unquote(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}

// The Compose file runs the bridge on Mosquitto, and what myno acl export
// writes in the bridge's volume is what Mosquitto reads.
func TestComposeWithMosquitto(t *testing.T) {
	img := finalImage(t) // TestDockerfile checks it
	dir := filepath.Join(testenv.RepoRoot(t), "deploy")
	c := yamlEntries(t, filepath.Join(dir, "compose.yaml"))
	one := func(p string) string {
		t.Helper()
		if v := c[p]; len(v) == 1 {
			return v[0]
		}
		t.Fatalf("compose.yaml: %s = %q, want one value", p, c[p])
		return ""
	}

	if img := one("services.mosquitto.image"); !strings.HasPrefix(img, "eclipse-mosquitto:2") {
		t.Errorf("services.mosquitto.image %q, want eclipse-mosquitto:2", img)
	}
	// The bridge is built from this directory's Dockerfile.
	ctx, dockerfile := one("services.bridge.build.context"), one("services.bridge.build.dockerfile")
	if got := filepath.Join(dir, ctx, dockerfile); got != filepath.Join(dir, "Dockerfile") {
		t.Errorf("services.bridge.build: %s, want deploy/Dockerfile", got)
	}
	if !slices.Contains(c["services.bridge.depends_on"], "mosquitto") {
		t.Errorf("services.bridge.depends_on %q, want mosquitto", c["services.bridge.depends_on"])
	}
	u, err := url.Parse(one("services.bridge.environment.MYNO_MQTT_URL"))
	if err != nil || u.Hostname() != "mosquitto" {
		t.Errorf("services.bridge.environment.MYNO_MQTT_URL: want mqtt://mosquitto:PORT (%v)", err)
	}

	// The bridge's data volume, mounted at the image's data directory.
	var volume string
	for _, v := range c["services.bridge.volumes"] {
		if name, target, ok := strings.Cut(v, ":"); ok && target == img.env["MYNO_DATA_DIR"] {
			volume = name
		}
	}
	if volume == "" {
		t.Fatalf("services.bridge.volumes %q: none mounted at MYNO_DATA_DIR %s", c["services.bridge.volumes"], img.env["MYNO_DATA_DIR"])
	}

	// Mosquitto's configuration file: no anonymous clients, a password
	// file and an ACL file.
	var conf string
	for _, v := range c["services.mosquitto.volumes"] {
		if src, rest, ok := strings.Cut(v, ":"); ok && strings.HasPrefix(rest, "/mosquitto/config/mosquitto.conf") {
			conf = filepath.Join(dir, src)
		}
	}
	if conf == "" {
		t.Fatal("services.mosquitto.volumes: no file mounted at /mosquitto/config/mosquitto.conf")
	}
	settings := map[string][]string{}
	data, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && !strings.HasPrefix(f[0], "#") {
			settings[f[0]] = append(settings[f[0]], strings.Join(f[1:], " "))
		}
	}
	if !slices.Equal(settings["allow_anonymous"], []string{"false"}) {
		t.Errorf("%s: allow_anonymous %q, want false", conf, settings["allow_anonymous"])
	}
	if len(settings["password_file"]) != 1 || len(settings["acl_file"]) != 1 {
		t.Fatalf("%s: want one password_file and one acl_file, have %q and %q", conf, settings["password_file"], settings["acl_file"])
	}

	// Mosquitto mounts a subpath of the bridge's volume; the files it reads
	// there are those the bridge's acl export environment names.
	var target, subpath string
	// List items are numbered in order, scalars included.
	for i := range len(c["services.mosquitto.volumes"]) + 8 {
		p := "services.mosquitto.volumes." + strconv.Itoa(i)
		if slices.Equal(c[p+".source"], []string{volume}) {
			target, subpath = one(p+".target"), one(p+".volume.subpath")
		}
	}
	if target == "" {
		t.Fatalf("services.mosquitto.volumes: the bridge's volume %s is not mounted (with a subpath)", volume)
	}
	for _, f := range []struct{ setting, env string }{{"password_file", "MYNO_ACL_PASSWORD_FILE"}, {"acl_file", "MYNO_ACL_FILE"}} {
		read := settings[f.setting][0]
		written := one("services.bridge.environment." + f.env)
		rel, err := filepath.Rel(target, read)
		if err != nil || strings.HasPrefix(rel, "..") {
			t.Errorf("%s %s is not in Mosquitto's mount %s of the bridge's volume", f.setting, read, target)
			continue
		}
		if want := path.Join(img.env["MYNO_DATA_DIR"], subpath, rel); written != want {
			t.Errorf("%s=%s, but Mosquitto reads %s, i.e. %s in the bridge", f.env, written, read, want)
		}
	}
	// Mosquitto runs as the image's user: the password file is the
	// bridge's (mode 0600), and Mosquitto must read it.
	if got := one("services.mosquitto.user"); got != img.user {
		t.Errorf("services.mosquitto.user %q, want the image's USER %q", got, img.user)
	}
}

// Every MYNO_* variable the packaging sets is the environment twin of a
// flag of the command it is meant for (a misspelt one would be ignored).
func TestEnvironmentTwins(t *testing.T) {
	bin := buildMyno(t)
	known := map[string]bool{}
	for _, args := range [][]string{{"bridge"}, {"acl", "export"}, {"devices", "add"}, {"users", "passwd"}} {
		out, err := exec.Command(bin, append(args, "--help")...).CombinedOutput()
		if err != nil {
			t.Fatalf("myno %s --help: %v\n%s", strings.Join(args, " "), err, out)
		}
		for _, m := range regexp.MustCompile(`\$(MYNO_[A-Z0-9_]+)`).FindAllStringSubmatch(string(out), -1) {
			known[m[1]] = true
		}
	}
	root := testenv.RepoRoot(t)
	set := map[string]string{} // variable → where
	for k := range parseUnit(t, filepath.Join(root, "deploy", unitName)).environment() {
		set[k] = unitName
	}
	stages := parseDockerfile(t, filepath.Join(root, "deploy", "Dockerfile"))
	for k := range stages[len(stages)-1].env() {
		set[k] = "Dockerfile"
	}
	for p := range yamlEntries(t, filepath.Join(root, "deploy", "compose.yaml")) {
		if _, k, ok := strings.Cut(p, ".environment."); ok {
			set[k] = "compose.yaml"
		}
	}
	if len(set) == 0 {
		t.Fatal("no MYNO_* variable found in the packaging files")
	}
	for k, where := range set {
		if strings.HasPrefix(k, "MYNO_") && !known[k] {
			t.Errorf("%s sets %s, which no flag of myno bridge, acl export, devices add or users reads", where, k)
		}
	}
}

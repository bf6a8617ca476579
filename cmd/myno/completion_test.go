package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/myno-bridge/myno/internal/testenv"
)

// completeMyno runs myno as a completion script does. urfave/cli reads the
// words to complete at the top level from os.Args, which is what main
// passes to run; so they are set here too.
func completeMyno(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	saved := os.Args
	os.Args = append([]string{"myno"}, args...)
	defer func() { os.Args = saved }()
	return runMyno(t, args...)
}

// myno completion SHELL prints the shell's completion script.
func TestCompletionScripts(t *testing.T) {
	for shell, want := range map[string]string{
		"bash": "complete -o bashdefault -o default -F __myno_bash_autocomplete myno",
		"zsh":  "#compdef myno",
		"fish": "complete -c myno -f -a '(__myno_perform_completion)'",
		"pwsh": "Register-ArgumentCompleter -Native",
	} {
		code, out, errOut := runMyno(t, "completion", shell)
		if code != 0 || errOut != "" || !strings.Contains(out, want) || !strings.Contains(out, "--generate-shell-completion") {
			t.Errorf("myno completion %s: exit %d %s\n%s", shell, code, errOut, out)
		}
	}
	// The command is listed, and its help says how to install the scripts.
	if code, out, _ := runMyno(t, "--help"); code != 0 || !strings.Contains(out, "\n   completion ") {
		t.Errorf("myno --help does not list completion:\n%s", out)
	}
	if code, out, _ := runMyno(t, "completion"); code != 0 || !strings.Contains(out, "source <(myno completion bash)") {
		t.Errorf("myno completion: exit %d\n%s", code, out)
	}
}

// An unknown shell, an unknown flag or an unknown command is one line and
// exit 2.
func TestCompletionUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"completion", "tcsh"}, `myno: completion: unknown shell "tcsh": want bash, zsh, fish or pwsh` + "\n"},
		{[]string{"completion", "--shell", "bash"}, "myno: completion: flag provided but not defined: -shell (see myno completion --help)\n"},
		{[]string{"bogus"}, `myno: unknown command "bogus" (see myno --help)` + "\n"},
	} {
		code, out, errOut := runMyno(t, tc.args...)
		if code != 2 || out != "" || errOut != tc.want {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.args, code, out, errOut, tc.want)
		}
	}
}

// --generate-shell-completion, which the scripts append, lists the
// commands, or the flags of a command for a word that begins with "-",
// and runs nothing.
func TestCompletionWords(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		want, not []string // line prefixes
	}{
		{[]string{"--generate-shell-completion"},
			[]string{"bridge:run the NETCONF-MQTT bridge", "device:", "devices:", "update:", "rpc:", "completion:"}, []string{"--"}},
		{[]string{"--lo", "--generate-shell-completion"}, []string{"--log-format:"}, []string{"bridge"}},
		// No bridge is asked: myno rpc does not run.
		{[]string{"rpc", "--addr", "127.0.0.1:1", "--r", "--generate-shell-completion"}, []string{"--raw:"}, []string{"--addr"}},
		{[]string{"completion", "--generate-shell-completion"}, []string{"bash:", "zsh:", "fish:", "pwsh:"}, nil},
	} {
		code, out, errOut := completeMyno(t, tc.args...)
		if code != 0 || errOut != "" {
			t.Errorf("%v: exit %d %s", tc.args, code, errOut)
		}
		lines := strings.Split(out, "\n")
		for _, w := range tc.want {
			found := false
			for _, l := range lines {
				found = found || strings.HasPrefix(l, w)
			}
			if !found {
				t.Errorf("%v: no %q in\n%s", tc.args, w, out)
			}
		}
		for _, l := range lines {
			for _, n := range tc.not {
				if strings.HasPrefix(l, n) {
					t.Errorf("%v: %q in\n%s", tc.args, l, out)
				}
			}
		}
	}
}

// The bash script completes in bash (with bash-completion, which it needs
// for _get_comp_words_by_ref): "myno up<TAB>" gives update, "myno rpc
// --ra<TAB>" gives --raw. The script runs myno, so this test builds it.
func TestCompletionInBash(t *testing.T) {
	bash := testenv.Tool(t, "bash")
	goTool := testenv.Tool(t, "go")
	const bashCompletion = "/usr/share/bash-completion/bash_completion"
	if _, err := os.Stat(bashCompletion); err != nil {
		msg := "bash-completion is not installed (apt-get install bash-completion): " + err.Error()
		if testenv.InCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	if out, err := exec.Command(goTool, "build", "-o", filepath.Join(dir, "myno"), ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	script := `set -e
source ` + bashCompletion + `
source <(myno completion bash)
complete -p myno
complete_words() {
  COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; COMPREPLY=()
  __myno_bash_autocomplete
  echo "$* => ${COMPREPLY[*]}"
}
complete_words myno up
complete_words myno rpc --ra
complete_words myno completion
`
	cmd := exec.Command(bash, "--norc", "--noprofile", "-c", script)
	cmd.Env = append(os.Environ(), "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	got := string(out)
	for _, want := range []string{
		"complete -o bashdefault -o default -F __myno_bash_autocomplete myno\n",
		"myno up => update\n",
		"myno rpc --ra => --raw\n",
		"myno completion => completion\n",
	} {
		if err != nil || !strings.Contains(got, want) {
			t.Errorf("no %q: %v\n%s", want, err, got)
		}
	}
}

package console

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// The update history outlives the console: finished jobs are appended as
// JSON lines, a new console lists them, the file is compacted to the last
// maxJobs once it holds twice as many, and a file it cannot read stops it
// with the file and line named.
func TestUpdateHistorySurvivesRestarts(t *testing.T) {
	file := filepath.Join(t.TempDir(), "history.jsonl")
	js := newJobs()
	for i := range 2*maxJobs + 1 {
		j := &job{User: "admin", Started: time.Unix(int64(i), 0).UTC(), Image: "fw.bin", Devices: []string{"mup-1"},
			state: map[string]*jobEvent{"mup-1": {UUID: "mup-1", State: "verified", Percent: 100, Version: uint32(i)}}, done: true}
		js.add(j)
		if err := appendHistory(file, j, js.list); err != nil {
			t.Fatal(err)
		}
	}
	data, _ := os.ReadFile(file)
	if n := bytes.Count(data, []byte{'\n'}); n > 2*maxJobs || n < maxJobs {
		t.Errorf("history of %d lines after %d jobs: not compacted", n, 2*maxJobs+1)
	}
	c, err := New(Config{Bridges: []string{"127.0.0.1:1"}, HostKey: ssh.InsecureIgnoreHostKey(), HistoryFile: file})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	all := c.jobs.all()
	if len(all) != maxJobs || all[0].ID != 2*maxJobs+1 || !all[0].Done() || all[0].snapshot()[0].Version != 2*maxJobs {
		t.Fatalf("restored history: %d jobs, newest %+v", len(all), all[0])
	}
	// The next job gets the next number.
	next := &job{state: map[string]*jobEvent{}}
	c.jobs.add(next)
	if next.ID != 2*maxJobs+2 {
		t.Errorf("next job %d", next.ID)
	}
	if err := os.WriteFile(file, []byte("{not json\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Bridges: []string{"127.0.0.1:1"}, HostKey: ssh.InsecureIgnoreHostKey(), HistoryFile: file}); err == nil ||
		!bytes.Contains([]byte(err.Error()), []byte("line 1")) {
		t.Errorf("unreadable history: %v", err)
	}
}

package console

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/myno-bridge/myno/internal/atomicfile"
)

// historyRecord is one finished update job as the history file keeps it:
// one JSON object per line, appended when the job ends.
type historyRecord struct {
	ID      int        `json:"id"`
	User    string     `json:"user"`
	Started time.Time  `json:"started"`
	Image   string     `json:"image"`
	Devices []jobEvent `json:"devices"`
}

// loadHistory reads the last maxJobs jobs of file ("" or missing: none).
// A line that does not decode is an error naming the file and the line:
// the console does not start on a history it cannot read.
func loadHistory(file string) ([]*job, error) {
	if file == "" {
		return nil, nil
	}
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*job
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		var r historyRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("update history %s line %d: %w", file, n, err)
		}
		j := &job{ID: r.ID, User: r.User, Started: r.Started, Image: r.Image, state: map[string]*jobEvent{}, done: true}
		for i := range r.Devices {
			j.Devices = append(j.Devices, r.Devices[i].UUID)
			j.state[r.Devices[i].UUID] = &r.Devices[i]
		}
		out = append(out, j)
		if len(out) > maxJobs {
			out = out[1:]
		}
	}
	return out, sc.Err()
}

// appendHistory appends a finished job to file; past twice maxJobs lines
// the file is rewritten with the last maxJobs (atomically).
func appendHistory(file string, j *job, all []*job) error {
	line, err := json.Marshal(historyRecord{ID: j.ID, User: j.User, Started: j.Started, Image: j.Image, Devices: j.snapshot()})
	if err != nil {
		return err
	}
	data, err := os.ReadFile(file)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if bytes.Count(data, []byte{'\n'}) >= 2*maxJobs {
		var b bytes.Buffer
		for _, old := range all {
			if !old.Done() {
				continue
			}
			l, err := json.Marshal(historyRecord{ID: old.ID, User: old.User, Started: old.Started, Image: old.Image, Devices: old.snapshot()})
			if err != nil {
				return err
			}
			b.Write(append(l, '\n'))
		}
		return atomicfile.Write(file, b.Bytes(), 0o600)
	}
	f, err := os.OpenFile(file, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

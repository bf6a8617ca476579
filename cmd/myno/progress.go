package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progress reports long work: a progress bar on a terminal; elsewhere (a
// log, a pipe, CI) one plain line at most every progressEvery and at the
// end, so that no carriage return reaches a log.
type progress struct {
	bar *progressbar.ProgressBar // on a terminal; nil otherwise

	w     io.Writer
	desc  string
	total int
	bytes bool

	mu   sync.Mutex
	n    int
	last time.Time
}

// progressEvery spaces out the plain progress lines.
const progressEvery = 2 * time.Second

// newProgress reports progress towards total on w, counted in bytes or
// in items.
func newProgress(w io.Writer, total int, desc string, bytes bool) *progress {
	p := &progress{w: w, desc: desc, total: total, bytes: bytes, last: time.Now()}
	if isTerminal(w) {
		opts := []progressbar.Option{progressbar.OptionSetWriter(w), progressbar.OptionSetDescription(desc), progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(100 * time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) })}
		if bytes {
			opts = append(opts, progressbar.OptionShowBytes(true))
		}
		p.bar = progressbar.NewOptions(total, opts...)
	}
	return p
}

// isTerminal tells whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Describe changes the description.
func (p *progress) Describe(desc string) {
	p.mu.Lock()
	p.desc = desc
	p.mu.Unlock()
	if p.bar != nil {
		p.bar.Describe(desc)
	}
}

// Set reports n done.
func (p *progress) Set(n int) {
	if p.bar != nil {
		_ = p.bar.Set(n)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n = n
	if n < p.total && time.Since(p.last) < progressEvery {
		return
	}
	p.last = time.Now()
	unit := ""
	if p.bytes {
		unit = " bytes"
	}
	pct := 100
	if p.total > 0 {
		pct = 100 * n / p.total
	}
	fmt.Fprintf(p.w, "%s: %d/%d%s (%d%%)\n", p.desc, n, p.total, unit, pct)
}

// Add reports d more done.
func (p *progress) Add(d int) {
	p.mu.Lock()
	n := p.n + d
	p.mu.Unlock()
	if p.bar != nil {
		_ = p.bar.Add(d)
		p.mu.Lock()
		p.n = n
		p.mu.Unlock()
		return
	}
	p.Set(n)
}

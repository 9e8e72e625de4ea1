package main

import (
	"fmt"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progress draws a bar with ETA and real-time factor on a terminal; it is silent otherwise.
type progress struct {
	bar   *progressbar.ProgressBar
	start time.Time
	name  string
}

func newProgress(tty bool, name string, n, of int) *progress {
	p := &progress{start: time.Now(), name: name}
	if !tty {
		return p
	}
	desc := name
	if of > 1 {
		desc = fmt.Sprintf("[%d/%d] %s", n, of, name)
	}
	p.name = desc
	p.bar = progressbar.NewOptions64(1000,
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionSetWidth(30),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionThrottle(100*time.Millisecond),
	)
	return p
}

// update is the transcription's progress callback: done of total audio.
func (p *progress) update(done, total time.Duration) {
	if p.bar == nil || total <= 0 {
		return
	}
	el := time.Since(p.start).Seconds()
	rtf := 0.0
	if el > 0 {
		rtf = done.Seconds() / el
	}
	p.bar.Describe(fmt.Sprintf("%s %s/%s %.1fx", p.name, done.Round(time.Second), total.Round(time.Second), rtf))
	_ = p.bar.Set64(int64(1000 * done.Seconds() / total.Seconds()))
}

func (p *progress) done() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}

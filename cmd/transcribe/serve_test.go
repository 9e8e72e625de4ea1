package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/verbatimhq/verbatim/daemon"
	"github.com/verbatimhq/verbatim/daemon/queue"
	"github.com/verbatimhq/verbatim/internal/testkit"
)

// The daemon's acceptance tests: the real binary (transcribe serve) on real folders, with a
// synthetic micro model on the CPU (its text is noise; these tests are about which files become
// jobs, when, and how often), its real SQLite queue read back, real signals.

var (
	microOnce sync.Once
	microPath string
)

// microModel is a synthetic micro model, made once per test run.
func microModel(t *testing.T) string {
	t.Helper()
	microOnce.Do(func() {
		dir, err := testkit.SharedDir("transcribe-micro-")
		if err != nil {
			t.Fatal(err)
		}
		microPath = filepath.Join(dir, "micro.bin")
		if out, errOut, code := run(t, "models", "synth", "--arch", "micro", "--dtype", "f32", "--seed", "1", "-o", microPath); code != 0 {
			microPath = ""
			t.Fatalf("synth: exit %d\n%s%s", code, out, errOut)
		}
	})
	if microPath == "" {
		t.Fatal("no micro model (its synth failed earlier)")
	}
	return microPath
}

// serveArgs are the daemon's flags for these tests: the micro model decoding greedily without
// VAD, word timing or fallback (fast), SRT sidecars, quick settling and rescans, the listener on
// a port of the system's choosing.
func serveArgs(t *testing.T, state string, watch ...string) []string {
	args := []string{"serve", "--state-dir", state, "--addr", "127.0.0.1:0", "--model", microModel(t),
		"--language", "en", "--beam-size", "1", "--no-fallback", "--no-vad", "--no-word-timestamps",
		"--formats", "srt", "--settle", "1s", "--rescan", "3s", "--idle-unload", "2s", "--summary", "extractive",
		"--no-power-pause"} // a laptop on battery would otherwise wait
	for _, w := range watch {
		args = append(args, "--watch", w)
	}
	return args
}

// proc is a daemon process; its log (JSON lines on stderr) goes to a file in the state folder.
type proc struct {
	cmd  *exec.Cmd
	log  string
	addr string
	done chan struct{}
	err  error
}

var runs sync.Map // state folder -> number of daemons started on it

// startDaemon starts transcribe with args (serve and its flags) and waits until its listener
// answers /healthz.
func startDaemon(t *testing.T, state string, args []string) *proc {
	t.Helper()
	return startDaemonCmd(t, state, binary(t), args)
}

// startDaemonCmd is startDaemon with the daemon started by program (prlimit, say) with args.
func startDaemonCmd(t *testing.T, state, program string, args []string) *proc {
	t.Helper()
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	n, _ := runs.LoadOrStore(state, new(int))
	*n.(*int)++
	p := &proc{log: filepath.Join(state, fmt.Sprintf("run-%02d.log", *n.(*int))), done: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(program, args...)
	p.cmd.Stderr, p.cmd.Stdout = f, f
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); f.Close(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		// A binary built with -race reports here.
		if b, _ := os.ReadFile(p.log); bytes.Contains(b, []byte("WARNING: DATA RACE")) {
			t.Errorf("the daemon had a data race:\n%s", b)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for p.addr == "" {
		select {
		case <-p.done:
			t.Fatalf("the daemon exited at start (%v):\n%s", p.err, readFile(t, p.log))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon does not listen after 30 s:\n%s", readFile(t, p.log))
		}
		for _, l := range logLines(t, p.log) {
			if a, ok := l["addr"].(string); ok && l["message"] == "listening" {
				p.addr = a
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := http.Get("http://" + p.addr + "/healthz")
	if err != nil {
		t.Fatalf("healthz: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %s", resp.Status)
	}
	return p
}

// kill sends SIGKILL and waits for the process to end.
func (p *proc) kill() {
	if p.cmd.Process != nil {
		p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.done
}

// stop sends SIGTERM and returns how long the daemon took to exit and its error.
func (p *proc) stop(t *testing.T) (time.Duration, error) {
	t.Helper()
	start := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.kill()
		t.Fatalf("the daemon did not exit within 30 s of SIGTERM:\n%s", readFile(t, p.log))
	}
	return time.Since(start), p.err
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// logLines reads a daemon's log: one JSON object a line (a line that is not one is kept as its
// message).
func logLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := map[string]any{}
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			m = map[string]any{"message": sc.Text(), "level": "text"}
		}
		out = append(out, m)
	}
	return out
}

// allLogs is every line of every daemon run on state, in order.
func allLogs(t *testing.T, state string) []map[string]any {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(state, "run-*.log"))
	slices.Sort(names)
	var out []map[string]any
	for _, n := range names {
		out = append(out, logLines(t, n)...)
	}
	return out
}

// countLogs counts the lines with message msg for each path.
func countLogs(lines []map[string]any, msg string) map[string]int {
	n := map[string]int{}
	for _, l := range lines {
		if l["message"] == msg {
			p, _ := l["path"].(string)
			n[p]++
		}
	}
	return n
}

// jobsOf reads every job of the daemon's queue database (the real file, read only, as
// transcribe status does).
func jobsOf(t *testing.T, state string) []queue.Job {
	t.Helper()
	q, err := queue.OpenReadOnly(context.Background(), filepath.Join(state, daemon.QueueFile))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, queue.ErrNotReady) {
		return nil // the daemon has not made its queue yet
	}
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	jobs, err := q.List(context.Background(), queue.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	return jobs
}

// waitSettled waits until the queue has want jobs and none queued or running, and returns them.
func waitSettled(t *testing.T, p *proc, state string, want int, timeout time.Duration) []queue.Job {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		jobs := jobsOf(t, state)
		open := 0
		for _, j := range jobs {
			if j.State == queue.Queued || j.State == queue.Running {
				open++
			}
		}
		if len(jobs) >= want && open == 0 {
			return jobs
		}
		select {
		case <-p.done:
			t.Fatalf("the daemon exited (%v) with %d jobs, %d open:\n%s", p.err, len(jobs), open, readFile(t, p.log))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %d jobs (want %d), %d queued or running:\n%s", timeout, len(jobs), want, open, readFile(t, p.log))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tone writes a WAV file of seconds of a sine at hz (distinct contents for distinct hz).
func tone(t *testing.T, path string, seconds, hz float64) {
	t.Helper()
	s := make([]float32, int(seconds*16000))
	for i := range s {
		s[i] = float32(0.3 * math.Sin(2*math.Pi*hz*float64(i)/16000))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	testkit.WriteWAV(t, path, s, 16000)
}

// toneBytes is tone's file as bytes.
func toneBytes(t *testing.T, seconds, hz float64) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tone.wav")
	tone(t, p, seconds, hz)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeSlowly writes data to path in chunks spread over d, and returns when the last byte is
// written (the file closed).
func writeSlowly(t *testing.T, path string, data []byte, chunks int, d time.Duration) time.Time {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	size := (len(data) + chunks - 1) / chunks
	for i := 0; i < len(data); i += size {
		if i > 0 {
			time.Sleep(d / time.Duration(chunks-1))
		}
		if _, err := f.Write(data[i:min(i+size, len(data))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return time.Now()
}

// files lists every file under dir, relative, sorted.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// withSidecars is inputs (relative paths) with the sidecars the tests' daemon writes for each
// (.srt and the .json run record), sorted.
func withSidecars(inputs ...string) []string {
	var out []string
	for _, in := range inputs {
		base := strings.TrimSuffix(in, filepath.Ext(in))
		out = append(out, in, base+".srt", base+".json")
	}
	slices.Sort(out)
	return out
}

// TestServeWatchedFolder is the watching half of the daemon's acceptance: a slow copy is one
// job, started after the copy ended; an mp4 whose index comes last waits for it; a .part file
// renamed is processed once; files in a new subfolder and in a folder moved in are processed;
// sidecars, temp files, partial downloads, hidden and non-media files never start a job; a copy
// of a transcribed file gets its sidecars without a transcription; a file whose sidecars were
// deleted gets them again; and the daemon stops within seconds of SIGTERM.
func TestServeWatchedFolder(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg is not installed")
	}
	t.Parallel()
	base := t.TempDir()
	root, state, outside := filepath.Join(base, "watched"), filepath.Join(base, "state"), filepath.Join(base, "outside")
	for _, d := range []string{root, outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Present before the start: found by the first scan.
	tone(t, filepath.Join(root, "early.wav"), 2, 300)
	// Files that must never become jobs, present from the start and written later.
	never := map[string][]byte{
		"other.srt": []byte("1\n00:00:00,000 --> 00:00:01,000\nhi\n"), "notes.md": []byte("# notes\n"),
		"photo.jpg": []byte("\xff\xd8\xff"), "readme.txt": []byte("text"), ".hidden.wav": toneBytes(t, 1, 310),
		"~$draft.wav": toneBytes(t, 1, 320), "dl.mp3.crdownload": toneBytes(t, 1, 330), "dl.m4a.download": toneBytes(t, 1, 340),
		"x.wav.tmp": toneBytes(t, 1, 350), "old.wav.part": toneBytes(t, 1, 360),
		// A temp file of ours whose writer (this test's process) is alive: not removed, not a job.
		fmt.Sprintf(".verbatim.tmp.%d.abc.srt", os.Getpid()): []byte("partial"),
	}
	for name, b := range never {
		if err := os.WriteFile(filepath.Join(root, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A folder whose .verbatim.toml asks for text files, and one whose file is broken: said once
	// in the log, with its line; its files get the defaults.
	if err := os.WriteFile(filepath.Join(mkdirs(t, filepath.Join(root, "conf")), ".verbatim.toml"), []byte("formats = [\"txt\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mkdirs(t, filepath.Join(root, "bad")), ".verbatim.toml"), []byte("formats = [\"txt\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tone(t, filepath.Join(root, "conf", "c.wav"), 1, 1100)
	tone(t, filepath.Join(root, "bad", "b.wav"), 1, 1200)
	p := startDaemon(t, state, serveArgs(t, state, root))

	var wg sync.WaitGroup
	var slowEnd, m4aEnd time.Time
	// A WAV copied in 11 chunks over 10 s: its header is complete from the first chunk, so only
	// the settle time keeps it from being taken early.
	wg.Go(func() {
		slowEnd = writeSlowly(t, filepath.Join(root, "slow.wav"), toneBytes(t, 20, 400), 11, 10*time.Second)
	})
	// An m4a with its index (moov) at the end, half copied, then a pause of 4 s (longer than the
	// settle time), then the rest: the container check keeps it waiting.
	wg.Go(func() {
		src := filepath.Join(t.TempDir(), "a.wav")
		tone(t, src, 8, 500)
		m4a := filepath.Join(t.TempDir(), "a.m4a")
		if out, err := exec.Command("ffmpeg", "-v", "error", "-i", src, "-c:a", "aac", m4a).CombinedOutput(); err != nil {
			t.Errorf("ffmpeg: %v\n%s", err, out)
			return
		}
		data, _ := os.ReadFile(m4a)
		dst := filepath.Join(root, "voice.m4a")
		f, _ := os.Create(dst)
		f.Write(data[:len(data)/2])
		time.Sleep(4 * time.Second)
		f.Write(data[len(data)/2:])
		f.Close()
		m4aEnd = time.Now()
	})
	// A download: written under .part for longer than the settle time, then renamed.
	wg.Go(func() {
		part := filepath.Join(root, "rec.wav.part")
		writeSlowly(t, part, toneBytes(t, 3, 600), 3, 2*time.Second)
		time.Sleep(2 * time.Second)
		if err := os.Rename(part, filepath.Join(root, "rec.wav")); err != nil {
			t.Error(err)
		}
	})
	// A new subfolder tree made while the daemon runs, and a folder moved in from outside.
	wg.Go(func() {
		tone(t, filepath.Join(root, "new", "sub", "deep", "n.wav"), 2, 700)
		tone(t, filepath.Join(outside, "album", "cd1", "m1.wav"), 2, 800)
		tone(t, filepath.Join(outside, "album", "m2.wav"), 2, 900)
		if err := os.Rename(filepath.Join(outside, "album"), filepath.Join(root, "album")); err != nil {
			t.Error(err)
		}
		for name, b := range never {
			if err := os.WriteFile(filepath.Join(root, "new", name), b, 0o644); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	media := []string{"early.wav", "slow.wav", "voice.m4a", "rec.wav", "new/sub/deep/n.wav", "album/cd1/m1.wav", "album/m2.wav",
		"conf/c.wav", "bad/b.wav"}
	jobs := waitSettled(t, p, state, len(media), 90*time.Second)

	// A copy of a transcribed file, under another name: sidecars from the stored result.
	early, _ := os.ReadFile(filepath.Join(root, "early.wav"))
	if err := os.WriteFile(filepath.Join(root, "copy of early.wav"), early, 0o644); err != nil {
		t.Fatal(err)
	}
	// Sidecars deleted: written again, from the stored result.
	os.Remove(filepath.Join(root, "rec.srt"))
	media = append(media, "copy of early.wav")
	time.Sleep(500 * time.Millisecond)
	waitFor(t, 30*time.Second, func() bool { _, err := os.Stat(filepath.Join(root, "rec.srt")); return err == nil })
	jobs = waitSettled(t, p, state, len(media), 60*time.Second)

	took, err := p.stop(t)
	if err != nil {
		t.Errorf("the daemon's exit after SIGTERM: %v", err)
	}
	t.Logf("stopped %v after SIGTERM", took.Round(time.Millisecond))
	if os.Getenv("DUMP") != "" {
		t.Logf("%s", readFile(t, p.log))
	}

	byPath := map[string]queue.Job{}
	for _, j := range jobs {
		rel, _ := filepath.Rel(root, j.Path)
		if _, dup := byPath[rel]; dup {
			t.Errorf("two jobs for %s", rel)
		}
		byPath[rel] = j
	}
	for _, m := range media {
		j, ok := byPath[m]
		if !ok {
			t.Errorf("%s: no job", m)
			continue
		}
		want := 1
		if m == "rec.wav" {
			want = 2 // and the second wrote the deleted sidecar again from the stored result
		}
		if j.State != queue.Done || j.Attempts != want {
			t.Errorf("%s: %s after %d attempts (%s), want done after %d", m, j.State, j.Attempts, j.Error, want)
		}
	}
	for rel := range byPath {
		if !slices.Contains(media, rel) {
			t.Errorf("a job for %s, which is not a media file to transcribe", rel)
		}
	}
	if j := byPath["slow.wav"]; j.Created.Before(slowEnd) {
		t.Errorf("slow.wav was queued at %v, before its copy ended at %v", j.Created, slowEnd)
	}
	if j := byPath["voice.m4a"]; j.Created.Before(m4aEnd) {
		t.Errorf("voice.m4a was queued at %v, before its copy ended at %v", j.Created, m4aEnd)
	}

	logs := allLogs(t, state)
	transcribed := countLogs(logs, "transcribing")
	for _, m := range media {
		want := 1
		if m == "copy of early.wav" {
			want = 0
		}
		if n := transcribed[filepath.Join(root, m)]; n != want {
			t.Errorf("%s transcribed %d times, want %d", m, n, want)
		}
	}
	if n := countLogs(logs, "done from the stored transcript of the same content and settings, without transcribing")[filepath.Join(root, "copy of early.wav")]; n != 1 {
		t.Errorf("the copy was not done from the stored transcript (%d)", n)
	}
	if n := countLogs(logs, "its sidecars are missing: queued again")[filepath.Join(root, "rec.wav")]; n != 1 {
		t.Errorf("rec.wav's deleted sidecars were not noticed (%d)", n)
	}
	// The folder holds the media, their sidecars and the files that never became jobs: nothing
	// else (no temp file, no second sidecar).
	want := slices.DeleteFunc(withSidecars(media...), func(f string) bool { return f == "conf/c.srt" })
	want = append(want, "conf/c.txt", "conf/.verbatim.toml", "bad/.verbatim.toml")
	for name := range never {
		want = append(want, name, filepath.Join("new", name))
	}
	slices.Sort(want)
	if got := files(t, root); !slices.Equal(got, want) {
		t.Errorf("the watched folder holds\n %q\nwant\n %q", got, want)
	}
	bad := 0
	for _, l := range logs {
		if l["level"] == "error" && strings.Contains(fmt.Sprint(l["error"]), filepath.Join(root, "bad", ".verbatim.toml")+":1:") {
			bad++
			continue
		}
		if l["level"] == "error" || l["level"] == "text" {
			t.Errorf("the log has: %v", l)
		}
	}
	if bad != 1 {
		t.Errorf("the broken .verbatim.toml was reported %d times, want once with its line", bad)
	}
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not so after %v", timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestServeManyFiles: 200 files dropped at once are each transcribed exactly once.
func TestServeManyFiles(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	root, state, staging := filepath.Join(base, "watched"), filepath.Join(base, "state"), filepath.Join(base, "staging")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	const n = 200
	var names []string
	for i := range n {
		name := fmt.Sprintf("drop/f%03d.wav", i)
		tone(t, filepath.Join(staging, name), 0.5, 200+float64(i)*7)
		names = append(names, name)
	}
	p := startDaemon(t, state, serveArgs(t, state, root))
	// Dropped at once: each file moved in (as a Finder drag within a volume does), in a burst.
	if err := os.MkdirAll(filepath.Join(root, "drop"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if err := os.Rename(filepath.Join(staging, name), filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	jobs := waitSettled(t, p, state, n, 8*time.Minute)
	if _, err := p.stop(t); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	if len(jobs) != n {
		t.Errorf("%d jobs for %d files", len(jobs), n)
	}
	transcribed := countLogs(allLogs(t, state), "transcribing")
	for _, j := range jobs {
		if j.State != queue.Done || transcribed[j.Path] != 1 {
			t.Errorf("%s: %s, transcribed %d times", j.Path, j.State, transcribed[j.Path])
		}
	}
	if got, want := files(t, root), withSidecars(names...); !slices.Equal(got, want) {
		t.Errorf("the folder holds %d files, want %d (each input, its .srt and .json)", len(got), len(want))
	}
}

// TestServeKillStress: the daemon is stopped with SIGTERM in the middle of a 20-minute file,
// then killed with SIGKILL 20 times at random moments while it works through it and short
// files, and started again each time. At the end every
// job is done once, every sidecar exists once, no temp file remains, the database passes
// PRAGMA integrity_check, and the long file resumed from its checkpoints (the log says where).
func TestServeKillStress(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	root, state := filepath.Join(base, "watched"), filepath.Join(base, "state")
	var media []string
	for i := range 8 {
		name := fmt.Sprintf("short%d.wav", i)
		tone(t, filepath.Join(root, name), 3+float64(i), 250+float64(i)*40)
		media = append(media, name)
	}
	// The long file: a tone with noise, 20 minutes, 40 windows.
	long := make([]float32, 1200*16000)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range long {
		long[i] = float32(0.2*math.Sin(2*math.Pi*220*float64(i)/16000) + 0.1*(rng.Float64()-0.5))
	}
	testkit.WriteWAV(t, filepath.Join(root, "long.wav"), long, 16000)
	media = append(media, "long.wav")
	// The kills are the test's, not the files' fault: enough attempts that no job is parked as
	// one that stops the process every time.
	args := append(serveArgs(t, state, root), "--max-attempts", "50")

	// SIGTERM while the long file is being transcribed: the daemon puts it back in the queue
	// with its checkpoint and exits.
	p := startDaemon(t, state, args)
	longPath := filepath.Join(root, "long.wav")
	waitFor(t, time.Minute, func() bool { return countLogs(logLines(t, p.log), "transcribing")[longPath] > 0 })
	// transcribe status shows it with its percent and time left, from the heartbeats.
	var status string
	waitFor(t, 20*time.Second, func() bool {
		status, _, _ = run(t, "status", "--state-dir", state)
		for _, l := range strings.Split(status, "\n") {
			if strings.HasPrefix(l, "now: "+longPath+"  ") && strings.Contains(l, "%, about ") && strings.HasSuffix(l, " left (attempt 1 of 50)") {
				return true
			}
		}
		return false
	})
	t.Logf("status:\n%s", status)
	took, err := p.stop(t)
	if err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	t.Logf("stopped %v after SIGTERM, in the long file", took.Round(time.Millisecond))
	if countLogs(logLines(t, p.log), "stopped: back in the queue, to resume from its checkpoint")[longPath] != 1 {
		t.Errorf("the long file was not put back on SIGTERM:\n%s", readFile(t, p.log))
	}

	seed := time.Now().UnixNano()
	t.Logf("kill schedule seed %d", seed)
	krng := rand.New(rand.NewPCG(uint64(seed), 0))
	during := 0 // kills that found a job in progress
	for range 20 {
		p := startDaemon(t, state, args)
		time.Sleep(time.Duration(300+krng.IntN(1700)) * time.Millisecond)
		p.kill()
		if jobsIn(t, state, queue.Running) > 0 {
			during++
		}
	}
	t.Logf("%d of the 20 kills came during a job", during)
	p = startDaemon(t, state, args)
	jobs := waitSettled(t, p, state, len(media), 5*time.Minute)
	if _, err := p.stop(t); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}

	if len(jobs) != len(media) {
		t.Errorf("%d jobs, want %d", len(jobs), len(media))
	}
	for _, j := range jobs {
		if j.State != queue.Done {
			t.Errorf("%s: %s (%s)", j.Path, j.State, j.Error)
		}
	}
	logs := allLogs(t, state)
	done, current := countLogs(logs, "done"), countLogs(logs, "done: the sidecars were current")
	for _, m := range media {
		p := filepath.Join(root, m)
		// Done once: transcribed to the end once; a kill between the sidecars' writing and the
		// queue's record finds them current at the next start, and says so, without writing.
		if done[p] > 1 || done[p]+current[p] < 1 {
			t.Errorf("%s: done %d times, found current %d times", m, done[p], current[p])
		}
	}
	if got, want := files(t, root), withSidecars(media...); !slices.Equal(got, want) {
		t.Errorf("the folder holds\n %q\nwant\n %q", got, want)
	}
	var resumed []string
	for _, l := range logs {
		if l["message"] == "resuming from the checkpoint" {
			resumed = append(resumed, fmt.Sprintf("%v at %v", filepath.Base(l["path"].(string)), l["at"]))
		}
	}
	t.Logf("resumed: %s", strings.Join(resumed, ", "))
	if !slices.ContainsFunc(resumed, func(s string) bool { return strings.HasPrefix(s, "long.wav at ") && !strings.HasSuffix(s, " 0:00:00") }) {
		t.Errorf("the long file never resumed from a checkpoint past its start")
	}
	integrity(t, filepath.Join(state, daemon.QueueFile))
}

// jobsIn counts the queue's jobs in state s.
func jobsIn(t *testing.T, state string, s queue.State) int {
	t.Helper()
	n := 0
	for _, j := range jobsOf(t, state) {
		if j.State == s {
			n++
		}
	}
	return n
}

// integrity runs PRAGMA integrity_check on the database at path.
func integrity(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&res); err != nil {
		t.Fatal(err)
	}
	if res != "ok" {
		t.Errorf("integrity_check: %s", res)
	}
}

// TestServeFailures: a corrupt file fails with its reason after the configured attempts while
// the good ones are done; an output folder that is read only, then full, makes jobs retry and
// leaves no partial sidecar, and they are done once it is writable and has room.
func TestServeFailures(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	root, state := filepath.Join(base, "watched"), filepath.Join(base, "state")
	good := toneBytes(t, 2, 440)
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	// Corrupt: a WAV header then garbage, and an m4a that is text.
	if err := os.WriteFile(filepath.Join(root, "broken.wav"), append(good[:44:44], strings.Repeat("\x00\xff", 10)...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "fake.m4a"), []byte(strings.Repeat("not audio\n", 50)), 0o644); err != nil {
		t.Fatal(err)
	}
	tone(t, filepath.Join(root, "fine.wav"), 2, 450)
	args := append(serveArgs(t, state, root), "--max-attempts", "2")
	p := startDaemon(t, state, args)
	jobs := waitSettled(t, p, state, 3, 2*time.Minute)
	byName := map[string]queue.Job{}
	for _, j := range jobs {
		byName[filepath.Base(j.Path)] = j
	}
	for _, name := range []string{"broken.wav", "fake.m4a"} {
		j := byName[name]
		if j.State != queue.Failed || j.Attempts != 2 || !strings.Contains(j.Error, name) {
			t.Errorf("%s: %s after %d attempts, reason %q; want failed after 2, naming the file", name, j.State, j.Attempts, j.Error)
		}
	}
	if j := byName["fine.wav"]; j.State != queue.Done {
		t.Errorf("fine.wav: %s (%s)", j.State, j.Error)
	}
	// transcribe status names the failures and their reasons.
	out, errOut, code := run(t, "status", "--state-dir", state)
	if code != 0 || !strings.Contains(out, "failed: "+filepath.Join(root, "broken.wav")) || !strings.Contains(out, "2 failed") {
		t.Errorf("status: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := p.stop(t); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	// Unchanged, the failures stay failed across a restart; changed, the file is a new job.
	p = startDaemon(t, state, args)
	if err := os.WriteFile(filepath.Join(root, "fake.m4a"), good, 0o644); err != nil {
		t.Fatal(err)
	}
	jobs = waitSettled(t, p, state, 4, 2*time.Minute)
	if os.Getenv("DUMP") != "" {
		t.Logf("%s", readFile(t, p.log))
	}
	if _, err := p.stop(t); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	states := map[string][]queue.State{}
	for _, j := range jobs {
		states[filepath.Base(j.Path)] = append(states[filepath.Base(j.Path)], j.State)
	}
	if got := states["broken.wav"]; !slices.Equal(got, []queue.State{queue.Failed}) {
		t.Errorf("broken.wav after a restart: %v", got)
	}
	if got := states["fake.m4a"]; !slices.Contains(got, queue.Done) {
		t.Errorf("fake.m4a once it is audio: %v", got)
	}
}

// TestServeUnwritableOutput: the output folder is a file system of its own (tmpfs), read only,
// then full: the job retries with backoff, no partial sidecar is left, and it is done once the
// folder takes writes again. Mounting needs root.
func TestServeUnwritableOutput(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounts a small tmpfs: needs root")
	}
	t.Parallel()
	base := t.TempDir()
	root, state, out := filepath.Join(base, "watched"), filepath.Join(base, "state"), filepath.Join(base, "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k,ro", "tmpfs", out).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v %s", err, b)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", out).Run() })
	tone(t, filepath.Join(root, "a.wav"), 2, 470)
	args := append(serveArgs(t, state, root), "--out", out, "--max-attempts", "10")
	p := startDaemon(t, state, args)
	failedWith := func(reason string) bool {
		for _, j := range jobsOf(t, state) {
			if j.State == queue.Queued && j.Attempts >= 1 && strings.Contains(j.Error, reason) {
				return true
			}
		}
		return false
	}
	// Read only: the attempt fails and waits for a retry.
	waitFor(t, 60*time.Second, func() bool { return failedWith("read-only file system") })
	if got := files(t, out); len(got) != 0 {
		t.Errorf("the read-only folder has %q", got)
	}
	// Writable but full: a file takes all but a few bytes.
	if b, err := exec.Command("mount", "-o", "remount,rw", out).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v %s", err, b)
	}
	filler := filepath.Join(out, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := f.Write(make([]byte, 512)); err != nil {
			break
		}
	}
	f.Close()
	waitFor(t, 60*time.Second, func() bool { return failedWith("no space left on device") })
	if got := files(t, out); !slices.Equal(got, []string{"filler"}) {
		t.Errorf("the full folder has %q: a partial sidecar was left", got)
	}
	// Room again: the retry (after its backoff) writes them.
	os.Remove(filler)
	jobs := waitSettled(t, p, state, 1, 2*time.Minute)
	if _, err := p.stop(t); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	if j := jobs[0]; j.State != queue.Done {
		t.Errorf("a.wav: %s after %d attempts (%s)", j.State, j.Attempts, j.Error)
	}
	if got := files(t, out); !slices.Equal(got, []string{"a.json", "a.srt"}) {
		t.Errorf("the output folder has %q", got)
	}
	// The status reported the retry with its reason while it waited: checked in the log.
	n := 0
	for _, l := range allLogs(t, state) {
		if l["message"] == "failed: will retry" {
			n++
		}
	}
	if n < 2 {
		t.Errorf("%d retries logged, want at least 2 (read only, full)", n)
	}
}

// TestServeHealthzFirst: /healthz answers from the daemon's first second, before its first scan
// of a large tree ends; a second daemon on the same state folder is refused.
func TestServeHealthzFirst(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	root, state := filepath.Join(base, "watched"), filepath.Join(base, "state")
	p := startDaemon(t, state, serveArgs(t, state, mkdirs(t, root)))
	resp, err := http.Get("http://" + p.addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var h struct{ Status, Version string }
	if err := json.Unmarshal(body, &h); err != nil || h.Status != "ok" || h.Version == "" {
		t.Errorf("healthz: %s (%v)", body, err)
	}
	out, errOut, code := run(t, serveArgs(t, state, root)...)
	if code == 0 || !strings.Contains(errOut, state) {
		t.Errorf("a second daemon on the same state folder: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := p.stop(t); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
}

func mkdirs(t *testing.T, d string) string {
	t.Helper()
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestServeLargeTree: a tree of 10,000 files in 1,000 folders (20 of them media, the rest
// documents and pictures) is scanned by a daemon allowed 256 open files, its folders watched,
// its media transcribed, and a file added deep inside it afterwards is found by its event. It
// logs the scan's time and the daemon's memory once idle with its model unloaded.
func TestServeLargeTree(t *testing.T) {
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("prlimit (util-linux) is not installed")
	}
	t.Parallel()
	base := t.TempDir()
	root, state := filepath.Join(base, "watched"), filepath.Join(base, "state")
	var media []string
	for i := range 10000 {
		dir := filepath.Join(root, fmt.Sprintf("d%02d", i/1000), fmt.Sprintf("e%03d", i/10%100))
		if i%10 == 0 {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if i%500 == 0 {
			name := filepath.Join(dir, fmt.Sprintf("talk%05d.wav", i))
			tone(t, name, 0.5, 300+float64(i)/10)
			rel, _ := filepath.Rel(root, name)
			media = append(media, rel)
			continue
		}
		ext := []string{".txt", ".pdf", ".jpg", ".docx"}[i%4]
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("doc%05d%s", i, ext)), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := append([]string{"--nofile=256:256", binary(t)}, serveArgs(t, state, root)...)
	args = append(args, "--rescan", "1h", "--idle-unload", "1s")
	p := startDaemonCmd(t, state, "prlimit", args)
	waitSettled(t, p, state, len(media), 3*time.Minute)
	late := filepath.Join(root, "d09", "e099", "late.wav")
	tone(t, late, 0.5, 1234)
	media = append(media, "d09/e099/late.wav")
	jobs := waitSettled(t, p, state, len(media), time.Minute)
	for _, j := range jobs {
		if j.State != queue.Done {
			t.Errorf("%s: %s (%s)", j.Path, j.State, j.Error)
		}
	}
	waitFor(t, 30*time.Second, func() bool {
		return countLogs(logLines(t, p.log), "model unloaded")[""] > 0
	})
	time.Sleep(time.Second) // the runtime's own settling after the model's memory went back
	rss := rssOf(t, p.cmd.Process.Pid)
	if _, err := p.stop(t); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	for _, l := range logLines(t, p.log) {
		switch l["message"] {
		case "scanned":
			t.Logf("scanned %v files (%v media) in %v folders in %v ms", l["files"], l["media"], l["folders"], l["took"])
		case "cannot read this folder: its files are not transcribed", "no file system events for this folder: it is rescanned every rescan interval":
			t.Errorf("%v", l)
		}
	}
	t.Logf("idle with the model unloaded: RSS %.1f MiB", float64(rss)/(1<<20))
}

// rssOf is the resident memory of process pid, in bytes (Linux /proc).
func rssOf(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestServeConfigFile: the daemon's configuration file is read (its backend settings included)
// and a bad one stops serve with one message naming the file, line and key.
func TestServeConfigFile(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	cases := []struct{ toml, want string }{
		{"watch = [\"w\"]\nbackend = \"cpu\"\nbackend_options = \"lt=off\"\n", `--backend-options "lt=off": the cpu backend has no options`},
		{"watch = [\"w\"]\n[defaults]\nlanguge = \"de\"\n", cfg + `:3:1: key "defaults.languge": unknown key`},
		{"watch = [\"missing\"]\n", "--watch " + filepath.Join(dir, "missing") + ": not a folder"},
	}
	mkdirs(t, filepath.Join(dir, "w"))
	for _, c := range cases {
		if err := os.WriteFile(cfg, []byte(c.toml), 0o644); err != nil {
			t.Fatal(err)
		}
		out, errOut, code := run(t, "serve", "--config", cfg, "--state-dir", filepath.Join(dir, "state"), "--addr", "127.0.0.1:0")
		if code == 0 || !strings.Contains(errOut, c.want) || strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
			t.Errorf("%q: exit %d, want one line containing %q:\n%s%s", c.toml, code, c.want, out, errOut)
		}
	}
}

// TestServeConfigReload: the daemon reads its configuration file again when it changes: a broken
// file is reported once with its line and the daemon goes on with the last good one; a good one
// takes effect (a second watched folder, its defaults) without losing a job.
func TestServeConfigReload(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	w1, w2, state := mkdirs(t, filepath.Join(base, "w1")), mkdirs(t, filepath.Join(base, "w2")), filepath.Join(base, "state")
	cfg := filepath.Join(base, "config.toml")
	write := func(s string) {
		if err := os.WriteFile(cfg, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("watch = [\"w1\"]\n")
	args := slices.DeleteFunc(serveArgs(t, state), func(a string) bool { return a == "--watch" })
	p := startDaemon(t, state, append(args, "--config", cfg))
	tone(t, filepath.Join(w1, "a.wav"), 1, 500)
	waitSettled(t, p, state, 1, time.Minute)

	write("watch = [\"w1\", \"w2\"\n") // broken
	waitFor(t, 30*time.Second, func() bool {
		return countLogs(logLines(t, p.log), "the configuration cannot be used: the daemon goes on with its last good configuration")[""] == 1
	})
	tone(t, filepath.Join(w1, "b.wav"), 1, 600)
	tone(t, filepath.Join(w2, "c.wav"), 1, 700) // not watched yet
	waitSettled(t, p, state, 2, time.Minute)

	// The flags given win over the file's defaults; output is not one of them.
	write("watch = [\"w1\", \"w2\"]\n[defaults]\noutput = \"out\"\n")
	jobs := waitSettled(t, p, state, 5, time.Minute) // a.wav and b.wav again for their new settings, and c.wav
	if _, err := p.stop(t); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	for _, j := range jobs {
		if j.State != queue.Done {
			t.Errorf("%s: %s (%s)", j.Path, j.State, j.Error)
		}
	}
	// out is taken from the configuration file's folder.
	if got, want := files(t, filepath.Join(base, "out")), withSidecars("a.wav", "b.wav", "c.wav"); !slices.Equal(got, slices.DeleteFunc(want, func(f string) bool { return strings.HasSuffix(f, ".wav") })) {
		t.Errorf("the new defaults' output folder holds %q", got)
	}
	if n := countLogs(logLines(t, p.log), "configuration read again")[""]; n != 1 {
		t.Errorf("configuration read again %d times, want once", n)
	}
}

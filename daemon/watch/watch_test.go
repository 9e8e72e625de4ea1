package watch

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// run starts a watcher over root with short settle and rescan times and returns its candidates'
// channel; it stops with the test.
func run(t *testing.T, o Options) <-chan Candidate {
	t.Helper()
	if o.Settle == 0 {
		o.Settle = 300 * time.Millisecond
	}
	o.Log = zerolog.Nop()
	out := make(chan Candidate, 1024)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	w := New(o, out)
	go func() {
		defer close(done)
		w.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return out
}

// collect gathers the candidates handed on as new (not Again, which rescans send) until none
// came for quiet.
func collect(ch <-chan Candidate, quiet time.Duration) []Candidate {
	var out []Candidate
	timer := time.NewTimer(quiet)
	defer timer.Stop()
	for {
		select {
		case c := <-ch:
			if !c.Again {
				out = append(out, c)
				timer.Reset(quiet)
			}
		case <-timer.C:
			return out
		}
	}
}

func writeFile(t *testing.T, p string, n int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, make([]byte, n), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSlowCopyOnce: a file written in chunks over 1.5 s (settle 0.3 s) is handed on once, after
// the last chunk, at its full size; a later change hands it on again.
func TestSlowCopyOnce(t *testing.T) {
	root := t.TempDir()
	out := run(t, Options{Roots: []string{root}})
	p := filepath.Join(root, "talk.wav")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	for range 15 {
		f.Write(make([]byte, 1000))
		f.Sync()
		time.Sleep(100 * time.Millisecond)
	}
	f.Close()
	end := time.Now()
	first := <-out
	t.Logf("handed on %v after the copy ended (settle 0.3 s)", time.Since(end))
	got := append([]Candidate{first}, collect(out, time.Second)...)
	if len(got) != 1 || got[0].Path != p || got[0].Size != 15000 || got[0].Root != root {
		t.Fatalf("candidates %+v, want one of the whole file", got)
	}
	if err := os.WriteFile(p, make([]byte, 20000), 0o644); err != nil {
		t.Fatal(err)
	}
	if got = collect(out, time.Second); len(got) != 1 || got[0].Size != 20000 {
		t.Fatalf("after a change: %+v", got)
	}
}

// TestPartialNamesAndOwnFiles: a download in progress (.part, .crdownload) is never handed on,
// its final name is, once; sidecars, temp files, hidden files and non-media files never are.
func TestPartialNamesAndOwnFiles(t *testing.T) {
	root := t.TempDir()
	out := run(t, Options{Roots: []string{root}})
	for _, n := range []string{"rec.m4a.part", "video.mp4.crdownload", "talk.srt", "talk.md", "talk.json",
		".verbatim.tmp.123.talk.srt", ".hidden.wav", "notes.txt", "~$lock.wav", "._talk.wav", "a.wav.download"} {
		writeFile(t, filepath.Join(root, n), 100)
	}
	if got := collect(out, time.Second); len(got) != 0 {
		t.Fatalf("candidates %+v, want none", got)
	}
	if err := os.Rename(filepath.Join(root, "rec.m4a.part"), filepath.Join(root, "rec.m4a")); err != nil {
		t.Fatal(err)
	}
	got := collect(out, time.Second)
	if len(got) != 1 || filepath.Base(got[0].Path) != "rec.m4a" {
		t.Fatalf("after the rename: %+v", got)
	}
}

// TestNewAndMovedFolders: files in a folder tree made at once (mkdir -p and a copy in one go)
// and in a folder moved in from outside are all handed on.
func TestNewAndMovedFolders(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(outside, "album", "disc1", "one.flac"), 100)
	writeFile(t, filepath.Join(outside, "album", "two.mp3"), 100)
	out := run(t, Options{Roots: []string{root}})
	time.Sleep(200 * time.Millisecond) // the first scan is done
	writeFile(t, filepath.Join(root, "a", "b", "c", "deep.wav"), 100)
	if err := os.Rename(filepath.Join(outside, "album"), filepath.Join(root, "album")); err != nil {
		t.Fatal(err)
	}
	got := collect(out, 1500*time.Millisecond)
	names := map[string]bool{}
	for _, c := range got {
		names[filepath.Base(c.Path)] = true
	}
	if len(got) != 3 || !names["deep.wav"] || !names["one.flac"] || !names["two.mp3"] {
		t.Fatalf("candidates %+v", got)
	}
}

// TestReadyAndSkip: a file the container check calls unready waits until it is ready; a file
// Skip rejects is never handed on; a folder's files found with events off, by rescans alone.
func TestReadyAndSkip(t *testing.T) {
	root := t.TempDir()
	var ready atomic.Bool
	out := run(t, Options{
		Roots: []string{root}, Rescan: 200 * time.Millisecond, NoEvents: true, Patience: time.Hour,
		Ready: func(p string) bool { return filepath.Base(p) != "growing.mp4" || ready.Load() },
		Skip:  func(_, p string) bool { return filepath.Base(p) == "skip.wav" },
	})
	writeFile(t, filepath.Join(root, "growing.mp4"), 100)
	writeFile(t, filepath.Join(root, "skip.wav"), 100)
	writeFile(t, filepath.Join(root, "sub", "ok.wav"), 100)
	got := collect(out, 1500*time.Millisecond)
	if len(got) != 1 || filepath.Base(got[0].Path) != "ok.wav" {
		t.Fatalf("before ready: %+v", got)
	}
	ready.Store(true)
	if got = collect(out, 1500*time.Millisecond); len(got) != 1 || filepath.Base(got[0].Path) != "growing.mp4" {
		t.Fatalf("after ready: %+v", got)
	}
}

// TestManyFiles: 2,000 files dropped at once are each handed on exactly once.
func TestManyFiles(t *testing.T) {
	root := t.TempDir()
	out := run(t, Options{Roots: []string{root}})
	for i := range 2000 {
		writeFile(t, filepath.Join(root, "d"+string(rune('a'+i%10)), "f"+itoa(i)+".wav"), 10)
	}
	got := collect(out, 2*time.Second)
	seen := map[string]int{}
	for _, c := range got {
		seen[c.Path]++
	}
	if len(seen) != 2000 || len(got) != 2000 {
		t.Fatalf("%d candidates for %d files", len(got), len(seen))
	}
}

func itoa(i int) string {
	return string([]byte{byte('0' + i/1000%10), byte('0' + i/100%10), byte('0' + i/10%10), byte('0' + i%10)})
}

func TestIgnoredAndMedia(t *testing.T) {
	for _, c := range []struct {
		name           string
		ignored, media bool
	}{
		{"talk.wav", false, true}, {"Talk.M4A", false, true}, {"clip.MOV", false, true},
		{"talk.srt", false, false}, {"talk.md", false, false}, {"notes.txt", false, false},
		{"x.wav.part", true, false}, {"x.mp4.crdownload", true, false}, {"x.wav.download", true, false},
		{".DS_Store", true, false}, {"._x.wav", true, true}, {".verbatim.tmp.1.x.srt", true, false},
		{"~$doc.wav", true, true}, {".x.wav.icloud", true, false}, {"x.tmp", true, false},
	} {
		if Ignored(c.name) != c.ignored || IsMedia(c.name) != c.media {
			t.Errorf("%s: ignored %v media %v, want %v %v", c.name, Ignored(c.name), IsMedia(c.name), c.ignored, c.media)
		}
	}
}

// TestRescanHandsOnAgain: a full scan hands on again, marked Again, a file it sees unchanged
// since it was handed on, without asking whether its container is ready again.
func TestRescanHandsOnAgain(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "talk.wav")
	writeFile(t, p, 1000)
	var asked atomic.Int32
	out := run(t, Options{Roots: []string{root}, Rescan: 700 * time.Millisecond,
		Ready: func(string) bool { asked.Add(1); return true }})
	first := <-out
	if first.Path != p || first.Again {
		t.Fatalf("first: %+v", first)
	}
	again := <-out
	if again.Path != p || !again.Again || again.Size != 1000 {
		t.Fatalf("after a rescan: %+v", again)
	}
	if n := asked.Load(); n != 1 {
		t.Errorf("Ready asked %d times, want once", n)
	}
	// Changed: handed on as new, and asked about again.
	writeFile(t, p, 2000)
	for c := range out {
		if !c.Again {
			if c.Size != 2000 {
				t.Fatalf("after a change: %+v", c)
			}
			break
		}
	}
	if n := asked.Load(); n != 2 {
		t.Errorf("Ready asked %d times, want twice", n)
	}
}

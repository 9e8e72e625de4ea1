// Package watch finds the media files in watched folders that are ready to transcribe. Scans
// are the truth: a full scan at start and at every rescan interval, and of any folder that
// appears (created or moved in). File system events (fsnotify) are hints that bring a change
// forward; when the kernel drops some (an overflow), a full scan follows. A file is handed on
// once it has settled (its size and time unchanged for a while) and its container is readable
// (an MP4's index written), again when it changes, and after every full scan that sees it
// unchanged (marked Again, without asking for its container again), so that whoever takes it
// can see whether its outputs went missing.
package watch

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/rs/zerolog"
)

// Candidate is a file that has settled, for the daemon to consider.
type Candidate struct {
	Path    string
	Root    string // the watched folder it is in
	Size    int64
	ModTime time.Time
	// Again: the file was handed on before, unchanged, and a full scan saw it again (whoever
	// takes it checks that its outputs are still there).
	Again bool
}

// ScanStats is what a full scan saw: every file and folder it walked, the media files among the
// files, and how long it took.
type ScanStats struct {
	Files, Media, Folders int
	Took                  time.Duration
}

// Options configure a Watcher.
type Options struct {
	// Roots are the folders to watch, with their subfolders.
	Roots []string
	// Settle is how long a file's size and modification time must stay the same before it is
	// handed on [default 5s].
	Settle time.Duration
	// Rescan is the time between full scans [default 10m].
	Rescan time.Duration
	// Ready, if not nil, reports whether a settled file's container can be read (a copy of an
	// MP4 whose index comes last is not ready until it is complete). A file that stays unready
	// and unchanged for Patience is handed on anyway, to fail with its reason.
	Ready func(path string) bool
	// Patience is how long an unready file waits [default 10 times Settle, at least a minute].
	Patience time.Duration
	// NoEvents turns file system events off: changes are found by the rescans alone (network
	// and FUSE file systems, where events do not come).
	NoEvents bool
	// Skip, if not nil, reports whether to leave a media file out (the folder's ignore patterns,
	// a disabled folder). Built-in rules come first (Ignored).
	Skip func(root, path string) bool
	// Log receives the watcher's warnings (a folder it cannot read, a degraded watch).
	Log zerolog.Logger
	// OnScan, if not nil, is called after every full scan with what it saw.
	OnScan func(ScanStats)
}

// Watcher watches Options.Roots and sends settled files to its channel.
type Watcher struct {
	o   Options
	out chan<- Candidate

	files  map[string]*file // by path: every media file seen
	denied map[string]bool  // folders whose permission error was logged
	fsw    *fsnotify.Watcher
}

// file is what the watcher knows of one media file.
type file struct {
	root      string
	size      int64
	mod       time.Time
	changed   time.Time // when size or mod last changed (or the file was first seen)
	sent      bool      // handed on at this size and mod
	again     bool      // sent, and seen again by a full scan: to be handed on again
	unready   time.Time // when Ready first said no at this size and mod; zero: not asked
	lastReady time.Time // when Ready was last asked
	seen      int       // the scan generation that last saw it
}

// New returns a Watcher that sends settled files to out.
func New(o Options, out chan<- Candidate) *Watcher {
	if o.Settle <= 0 {
		o.Settle = 5 * time.Second
	}
	if o.Rescan <= 0 {
		o.Rescan = 10 * time.Minute
	}
	if o.Patience <= 0 {
		o.Patience = max(10*o.Settle, time.Minute)
	}
	return &Watcher{o: o, out: out, files: map[string]*file{}, denied: map[string]bool{}}
}

// Run watches until ctx ends. It returns ctx's error, or an error when no root can be watched.
func (w *Watcher) Run(ctx context.Context) error {
	raiseFileLimit(w.o.Log)
	if !w.o.NoEvents {
		fsw, err := fsnotify.NewBufferedWatcher(4096)
		if err != nil {
			w.o.Log.Warn().Err(err).Msg("no file system events: folders are only rescanned")
		} else {
			w.fsw = fsw
			defer fsw.Close()
		}
	}
	var events chan fsnotify.Event
	var errs chan error
	if w.fsw != nil {
		events, errs = w.fsw.Events, w.fsw.Errors
	}
	gen := 0
	w.scanAll(gen)
	rescan := time.NewTicker(w.o.Rescan)
	defer rescan.Stop()
	tick := time.NewTicker(min(time.Second, w.o.Settle/4+time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-rescan.C:
			gen++
			w.scanAll(gen)
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			w.event(ev, gen)
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				w.o.Log.Warn().Msg("file system events were lost: scanning every folder")
				gen++
				w.scanAll(gen)
				continue
			}
			w.o.Log.Warn().Err(err).Msg("file system events")
		case <-tick.C:
			if err := w.settle(ctx); err != nil {
				return err
			}
		}
	}
}

// scanAll scans every root; files not seen by this scan are forgotten.
func (w *Watcher) scanAll(gen int) {
	start := time.Now()
	var st ScanStats
	for _, root := range w.o.Roots {
		w.scan(root, root, gen, &st)
	}
	for p, f := range w.files {
		switch {
		case f.seen != gen:
			delete(w.files, p)
		case f.sent:
			f.again = true
		}
	}
	if w.o.OnScan != nil {
		st.Took = time.Since(start)
		w.o.OnScan(st)
	}
}

// scan walks dir (inside root), watching its folders and noting its media files, and counts
// what it saw in st.
func (w *Watcher) scan(root, dir string, gen int, st *ScanStats) {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			w.unreadable(p, err)
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if p != root && Ignored(d.Name()) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			st.Folders++
			w.watchDir(p)
			return nil
		}
		st.Files++
		if !d.Type().IsRegular() || !IsMedia(d.Name()) {
			return nil
		}
		st.Media++
		info, err := d.Info()
		if err != nil {
			return nil
		}
		w.observe(root, p, info, gen)
		return nil
	})
}

// unreadable logs a folder that cannot be read, once per folder, with what to do about it.
func (w *Watcher) unreadable(p string, err error) {
	if w.denied[p] {
		return
	}
	w.denied[p] = true
	ev := w.o.Log.Warn().Str("path", p).Err(err)
	if errors.Is(err, fs.ErrPermission) {
		ev = ev.Str("fix", permissionFix)
	}
	ev.Msg("cannot read this folder: its files are not transcribed")
}

// watchDir asks for the events of folder p.
func (w *Watcher) watchDir(p string) {
	if w.fsw == nil || !watchable(p) {
		return
	}
	if err := w.fsw.Add(p); err != nil {
		if !w.denied[p] {
			w.denied[p] = true
			w.o.Log.Warn().Str("path", p).Err(err).Msg("no file system events for this folder: it is rescanned every rescan interval")
		}
	}
}

// observe records what a scan or an event saw of the media file p.
func (w *Watcher) observe(root, p string, info fs.FileInfo, gen int) {
	if w.o.Skip != nil && w.o.Skip(root, p) {
		delete(w.files, p)
		return
	}
	f := w.files[p]
	now := time.Now()
	if f == nil {
		f = &file{root: root, changed: now}
		w.files[p] = f
	}
	if f.size != info.Size() || !f.mod.Equal(info.ModTime()) {
		f.size, f.mod, f.changed, f.sent, f.again, f.unready = info.Size(), info.ModTime(), now, false, false, time.Time{}
	}
	f.seen = gen
}

// event brings a change forward: a new or moved-in folder is watched and scanned, a file is
// noted, a removed one forgotten.
func (w *Watcher) event(ev fsnotify.Event, gen int) {
	if ev.Has(fsnotify.Chmod) && !ev.Has(fsnotify.Write) && !ev.Has(fsnotify.Create) {
		return // attribute changes (Spotlight, xattrs) are not content changes
	}
	root := w.rootOf(ev.Name)
	if root == "" || Ignored(filepath.Base(ev.Name)) {
		return
	}
	info, err := os.Stat(ev.Name)
	if err != nil {
		delete(w.files, ev.Name) // removed or renamed away
		return
	}
	if info.IsDir() {
		if ev.Has(fsnotify.Create) || ev.Has(fsnotify.Rename) {
			w.scan(root, ev.Name, gen, &ScanStats{}) // a new or moved-in folder, with what is already in it
		}
		return
	}
	if info.Mode().IsRegular() && IsMedia(info.Name()) {
		w.observe(root, ev.Name, info, gen)
	}
}

// rootOf returns the watched root that holds p, or "".
func (w *Watcher) rootOf(p string) string {
	for _, r := range w.o.Roots {
		if p == r || strings.HasPrefix(p, r+string(filepath.Separator)) {
			return r
		}
	}
	return ""
}

// settle hands on the files that have settled since they last changed.
func (w *Watcher) settle(ctx context.Context) error {
	now := time.Now()
	for p, f := range w.files {
		if f.sent && f.again {
			// Unchanged since it was handed on and ready then: handed on again without asking.
			select {
			case w.out <- Candidate{Path: p, Root: f.root, Size: f.size, ModTime: f.mod, Again: true}:
				f.again = false
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		if f.sent || now.Sub(f.changed) < w.o.Settle {
			continue
		}
		info, err := os.Stat(p)
		if err != nil {
			delete(w.files, p)
			continue
		}
		if info.Size() != f.size || !info.ModTime().Equal(f.mod) {
			f.size, f.mod, f.changed, f.unready = info.Size(), info.ModTime(), now, time.Time{}
			continue
		}
		if placeholder(p, info) {
			continue // not on this machine yet (iCloud): it changes when it is downloaded
		}
		if w.o.Ready != nil {
			if !f.unready.IsZero() && now.Sub(f.lastReady) < w.o.Settle {
				continue
			}
			f.lastReady = now
			if !w.o.Ready(p) {
				if f.unready.IsZero() {
					f.unready = now
				}
				if now.Sub(f.unready) < w.o.Patience {
					continue
				}
			}
		}
		select {
		case w.out <- Candidate{Path: p, Root: f.root, Size: f.size, ModTime: f.mod}:
			f.sent = true
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// partialSuffixes are the names downloads and copies in progress carry.
var partialSuffixes = []string{".part", ".crdownload", ".download", ".tmp", ".partial", ".filepart", ".icloud"}

// Ignored reports whether a file or folder of this name is never looked at: hidden names
// (dot-files, our own temp files, macOS's ._ AppleDouble files and iCloud stubs among them),
// downloads in progress (.part, .crdownload, .download, .tmp) and Office lock files (~$...).
func Ignored(name string) bool {
	if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "~$") {
		return true
	}
	lower := strings.ToLower(name)
	for _, s := range partialSuffixes {
		if strings.HasSuffix(lower, s) {
			return true
		}
	}
	return false
}

// mediaExts are the extensions of the audio and video files the daemon transcribes.
var mediaExts = map[string]bool{
	".wav": true, ".wave": true, ".mp3": true, ".m4a": true, ".m4b": true, ".mp4": true, ".m4v": true,
	".mov": true, ".mkv": true, ".mka": true, ".webm": true, ".ogg": true, ".oga": true, ".opus": true,
	".flac": true, ".aac": true, ".wma": true, ".wmv": true, ".avi": true, ".amr": true, ".3gp": true,
	".3g2": true, ".aif": true, ".aiff": true, ".aifc": true, ".caf": true, ".mpga": true, ".mpeg": true,
	".mpg": true, ".ts": true, ".mts": true, ".m2ts": true, ".qta": true, ".ac3": true, ".spx": true,
	".au": true, ".wv": true, ".ape": true,
}

// IsMedia reports whether a file of this name is an audio or video file, by its extension (the
// sidecars the daemon writes, .srt .vtt .txt .md .json, are not).
func IsMedia(name string) bool {
	return mediaExts[strings.ToLower(filepath.Ext(name))]
}

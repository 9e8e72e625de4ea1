package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Tree gives the settings of the files under the watched folders: the daemon's defaults, then
// the .verbatim.toml of every folder from the watched one down to the file's, each over the
// one above. Files are read again when they change; a file that cannot be used is reported
// once (until it changes again) and its last good version stays in force, or none if it never
// had one. A Tree is safe for concurrent use.
type Tree struct {
	base   Folder
	report func(error)

	mu    sync.Mutex
	files map[string]*folderFile // by the .verbatim.toml's path
}

// folderFile is what the Tree knows of one folder's file.
type folderFile struct {
	mod  time.Time
	size int64
	good *Folder // the last version that could be used; nil: none
}

// NewTree returns a Tree over base (the defaults of every folder); report, if not nil, hears of
// every file that cannot be used.
func NewTree(base Folder, report func(error)) *Tree {
	return &Tree{base: base, report: report, files: map[string]*folderFile{}}
}

// Defaults returns the settings of every folder before any .verbatim.toml: the Tree's base.
func (t *Tree) Defaults() Folder { return t.base }

// Settings returns the settings of file, which is inside the watched folder root.
func (t *Tree) Settings(root, file string) Folder {
	s := t.base
	rel, err := filepath.Rel(root, filepath.Dir(file))
	if err != nil || strings.HasPrefix(rel, "..") {
		return s
	}
	dir := root
	parts := []string{""}
	if rel != "." {
		parts = append(parts, strings.Split(rel, string(filepath.Separator))...)
	}
	for _, p := range parts {
		dir = filepath.Join(dir, p)
		if f := t.folder(dir); f != nil {
			s = s.Over(f, dir)
		}
	}
	return s
}

// folder returns the usable configuration of dir's .verbatim.toml, or nil.
func (t *Tree) folder(dir string) *Folder {
	p := filepath.Join(dir, FolderFile)
	st, err := os.Stat(p)
	t.mu.Lock()
	defer t.mu.Unlock()
	known := t.files[p]
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			delete(t.files, p)
			return nil
		}
		if known != nil {
			return known.good
		}
		return nil
	}
	if known != nil && known.mod.Equal(st.ModTime()) && known.size == st.Size() {
		return known.good
	}
	if known == nil {
		known = &folderFile{}
		t.files[p] = known
	}
	known.mod, known.size = st.ModTime(), st.Size()
	data, err := os.ReadFile(p)
	if err == nil {
		var f *Folder
		if f, err = ParseFolder(p, data); err == nil {
			known.good = f
			return f
		}
	} else {
		err = &Error{File: p, Msg: "cannot read it", Err: err}
	}
	if t.report != nil {
		t.report(err)
	}
	return known.good
}

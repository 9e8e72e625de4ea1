// Package sidecar writes the files that go beside a transcribed input: SRT and WebVTT subtitles
// shaped for reading (Shape), plain text, a Markdown note and a JSON record of the run (Document).
// WriteAll renders them all in memory and writes each atomically (WriteFile); Current tells
// whether existing sidecars already match an input and settings, and CleanTemp removes what a
// crash left behind. The package does not import the engine: the pipeline converts its result
// into a Transcript.
package sidecar

import (
	"fmt"
	"os"
	"path/filepath"
)

// TempPrefix starts the name of every temporary file this package writes; the watcher ignores it.
const TempPrefix = ".verbatim.tmp."

// createTemp and rename are variables so that tests can inject a crash between write and rename.
var (
	createTemp = os.CreateTemp
	rename     = os.Rename
)

// WriteFile writes data to path atomically: a temp file in the same folder is written, synced,
// closed and renamed over path, then the folder is synced. A crash leaves either the old file or
// the new one, never a mix; on error the temp file is removed and path is untouched.
func WriteFile(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := createTemp(dir, TempPrefix+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write %s: sync: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable. Folders that cannot be opened for sync (some
// filesystems) are not an error: the rename itself has happened.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return nil
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !os.IsPermission(err) {
		return nil
	}
	return nil
}

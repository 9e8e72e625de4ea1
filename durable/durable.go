// Package durable writes files so that a crash at any point leaves either the old file or the
// new one, never a mix: the content goes to a temp file in the same folder, which is synced,
// closed and renamed over the target, and then the folder is synced.
package durable

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// TempPrefix starts the name of every temp file written here; the watcher and CleanTemp-style
// sweeps recognise leftovers by it. The writer's process id follows it (".verbatim.tmp.PID."),
// so that a sweep can tell a leftover of a process that died (Orphaned) from a write in
// progress.
const TempPrefix = ".verbatim.tmp."

// createTemp and rename are variables so that tests can inject failures and crashes.
var (
	createTemp = os.CreateTemp
	rename     = os.Rename
)

// SetRenameForTest replaces the final rename step (to inject a crash between the synced temp
// file and the rename) and returns the function that restores it. Only for tests.
func SetRenameForTest(f func(oldpath, newpath string) error) (restore func()) {
	prev := rename
	rename = f
	return func() { rename = prev }
}

// Write creates or replaces path with what fill writes, atomically. On any error the temp file
// is removed and path is untouched; errors name path.
func Write(path string, perm os.FileMode, fill func(w io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	f, err := createTemp(dir, TempPrefix+strconv.Itoa(os.Getpid())+"."+filepath.Base(path)+".*")
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
	if err = fill(f); err != nil {
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
	return SyncDir(dir)
}

// WriteFile is Write for content already in memory.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return Write(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// SyncDir makes renames in dir durable. Filesystems that cannot sync a folder (the call returns
// EINVAL) are not an error: the rename itself has happened.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// Orphaned reports whether name is a temp file of this package whose writer is no longer
// running (its process id is in the name): a leftover of a crash, safe to remove. A name
// without a process id (written by an older version) is not orphaned by this test.
func Orphaned(name string) bool {
	rest, ok := strings.CutPrefix(name, TempPrefix)
	if !ok {
		return false
	}
	id, _, ok := strings.Cut(rest, ".")
	pid, err := strconv.Atoi(id)
	if !ok || err != nil || pid <= 0 {
		return false
	}
	return pid != os.Getpid() && !alive(pid)
}

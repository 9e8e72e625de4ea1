//go:build !darwin

package watch

import (
	"io/fs"

	"github.com/rs/zerolog"
)

// permissionFix says what to do about a folder the daemon may not read.
const permissionFix = "let the user the service runs as read the folder (chmod/chown), then restart it"

// placeholder reports whether p's data is not on this machine (iCloud on macOS; never here).
func placeholder(string, fs.FileInfo) bool { return false }

// watchable reports whether folder p can be watched: inotify costs one watch per folder, not a
// descriptor per file.
func watchable(string) bool { return true }

// raiseFileLimit does nothing: Go raises the soft limit on open files to the hard one at start,
// and inotify needs one descriptor in all.
func raiseFileLimit(zerolog.Logger) {}

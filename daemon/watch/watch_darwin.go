package watch

import (
	"io/fs"
	"os"
	"syscall"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// permissionFix says what to do about a folder macOS's privacy controls (TCC) keep the daemon
// out of: a launchd agent does not inherit the terminal's grants.
const permissionFix = "give the transcribe binary access in System Settings > Privacy & Security > " +
	"Files and Folders (or Full Disk Access), then restart the service"

// sfDataless is st_flags' SF_DATALESS: the file's data is in iCloud, not on this machine, and a
// read would block while it downloads.
const sfDataless = 0x40000000

// placeholder reports whether p is an iCloud file whose data is not on this machine.
func placeholder(_ string, info fs.FileInfo) bool {
	st, ok := info.Sys().(*syscall.Stat_t)
	return ok && st.Flags&sfDataless != 0
}

// maxWatchedEntries is the most entries of a folder fsnotify watches on macOS: its kqueue
// backend opens every file of a watched folder, so a folder with more is only rescanned.
const maxWatchedEntries = 2000

// watchable reports whether folder p is small enough to watch with kqueue.
func watchable(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	names, _ := f.Readdirnames(maxWatchedEntries + 1)
	return len(names) <= maxWatchedEntries
}

// raiseFileLimit raises the soft limit on open files to what the kernel allows a process
// (kern.maxfilesperproc): Go raises it to the hard limit, which macOS may report as unlimited.
func raiseFileLimit(log zerolog.Logger) {
	max, err := unix.SysctlUint32("kern.maxfilesperproc")
	if err != nil {
		return
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	want := uint64(max)
	if lim.Max < want {
		want = lim.Max
	}
	if lim.Cur >= want {
		return
	}
	lim.Cur = want
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn().Err(err).Msg("cannot raise the open-file limit")
	}
}

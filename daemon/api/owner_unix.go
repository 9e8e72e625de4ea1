//go:build unix

package api

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// ownedByMe refuses a file another user owns.
func ownedByMe(fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if int(st.Uid) != os.Getuid() {
		return fmt.Errorf("owned by user %d, not by you (%d)", st.Uid, os.Getuid())
	}
	return nil
}

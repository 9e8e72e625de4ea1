//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package weights

import (
	"os"
	"syscall"
)

// mapFile maps size bytes of f read-only. The mapping outlives f; release it with the returned
// function.
func mapFile(f *os.File, size int) ([]byte, func() error, error) {
	b, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, err
	}
	return b, func() error { return syscall.Munmap(b) }, nil
}

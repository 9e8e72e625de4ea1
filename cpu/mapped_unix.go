//go:build linux || darwin

package cpu

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ReleaseMapped tells the system that the whole pages inside raw, a part of a read-only shared
// mapping of a file, will not be read through the mapping again: they leave the process's
// resident memory (the file's bytes stay in the page cache, and a later read of them through the
// mapping faults them back in, unchanged). A model loader calls it for the bytes of a tensor that
// UploadInPlace copied (misaligned values): the copy is what the backend reads, and the file's
// pages that the copying faulted in counted a second time in the resident set (base f16: 88 MB
// of its 148 MB). raw must not be memory of another kind (anonymous or private memory loses its
// contents).
func (be *Backend) ReleaseMapped(raw []byte) {
	page := uintptr(os.Getpagesize())
	p := uintptr(unsafe.Pointer(unsafe.SliceData(raw)))
	lo, hi := (p+page-1)&^(page-1), (p+uintptr(len(raw)))&^(page-1)
	if len(raw) == 0 || hi <= lo {
		return
	}
	pages := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(raw)), lo-p)), hi-lo)
	_ = unix.Madvise(pages, unix.MADV_DONTNEED) // advice: nothing to do if refused
}

// mapAnon maps size bytes of zeroed memory outside the Go heap (nil if the system refuses).
func mapAnon(size int) []byte {
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return nil
	}
	return mem
}

// unmapAnon releases memory from mapAnon.
func unmapAnon(mem []byte) { _ = unix.Munmap(mem) }

//go:build linux || darwin

package main

import (
	"runtime"
	"syscall"
)

// peakRSS returns the process's peak resident memory in bytes so far (getrusage's maxrss: KiB on
// Linux, bytes on macOS), as /usr/bin/time -v reports it; false where the system does not say.
func peakRSS() (int64, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	if runtime.GOOS == "darwin" {
		return int64(ru.Maxrss), true
	}
	return int64(ru.Maxrss) * 1024, true
}

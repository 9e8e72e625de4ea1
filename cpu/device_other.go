//go:build !linux

package cpu

import "runtime"

// cpuModel names the architecture where the processor model is not cheaply readable.
func cpuModel() string { return runtime.GOOS + "/" + runtime.GOARCH }

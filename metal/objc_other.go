//go:build !darwin

package metal

import (
	"fmt"
	"runtime"
)

// systemDevice is the real Metal device, which exists only on macOS (objc_darwin.go). Elsewhere
// the backend can still be exercised through the recording device (record.go).
func systemDevice() (device, error) {
	return nil, fmt.Errorf("metal: Metal is only available on macOS, not on %s/%s", runtime.GOOS, runtime.GOARCH)
}

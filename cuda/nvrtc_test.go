package cuda

import (
	"bytes"
	"testing"
)

// TestKernelsCompile compiles the embedded kernels for Ampere and Hopper with NVRTC alone (no
// device needed) and checks that the image is an ELF cubin.
func TestKernelsCompile(t *testing.T) {
	nv, err := loadNVRTC()
	if err != nil {
		t.Skipf("no CUDA device: NVRTC not installed: %v", err)
	}
	for _, sm := range []int{80, 90} {
		bin, err := nv.api.compile(kernelSource, []string{"--gpu-architecture=sm_" + string(rune('0'+sm/10)) + string(rune('0'+sm%10)), "--std=c++17", "-default-device"})
		if err != nil {
			t.Fatalf("sm_%d: %v", sm, err)
		}
		if !bytes.HasPrefix(bin, []byte("\x7fELF")) {
			t.Fatalf("sm_%d: image is not an ELF cubin (%d bytes)", sm, len(bin))
		}
		for _, name := range kernelNames {
			if !bytes.Contains(bin, []byte(name)) {
				t.Errorf("sm_%d: kernel %s missing from the image", sm, name)
			}
		}
	}
}

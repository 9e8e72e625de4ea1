package cuda

import (
	"os/exec"
	"testing"
)

// TestKernelsClang compiles kernels.cu with clang as CUDA (device side, sm_80 PTX) through
// tools/cuda/clangcheck.sh, so that a machine without a GPU or a CUDA toolkit (CI) catches what
// NVRTC would refuse in its C++: names, types, templates. The inline PTX is only assembled on a
// GPU machine (TestKernelsCompile). Skips without clang++ (scripts/deps.sh installs it).
func TestKernelsClang(t *testing.T) {
	if _, err := exec.LookPath("clang++-14"); err != nil {
		if _, err := exec.LookPath("clang++"); err != nil {
			t.Skip("no clang++ (apt-get install clang): kernels.cu is checked by TestKernelsCompile on a GPU machine")
		}
	}
	out, err := exec.Command("bash", "../tools/cuda/clangcheck.sh", "kernels.cu").CombinedOutput()
	if err != nil {
		t.Fatalf("clangcheck: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

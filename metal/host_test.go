package metal

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// hostSource is kernels.metal as C++ for a host compiler with testdata/mslhost/mslhost.h: the
// [[threadgroup(0)]] attribute renamed (mslhost.h erases the threadgroup address space, which
// would leave it empty).
func hostSource() string {
	return strings.ReplaceAll(kernelSource, "[[threadgroup(", "[[tgmem(")
}

// TestKernelsCompileHost compiles kernels.metal as C++ (g++, with mslhost.h standing in for
// metal_stdlib): syntax and types, with warnings as errors. Metal's compiler on a Mac is the
// real check; this one runs everywhere g++ is (make test installs it).
func TestKernelsCompileHost(t *testing.T) {
	gxx, err := exec.LookPath("g++")
	if err != nil {
		t.Skip("no g++ on this machine: kernels.metal not compiled on the host")
	}
	src := filepath.Join(t.TempDir(), "kernels.cc")
	if err := os.WriteFile(src, []byte(hostSource()), 0o644); err != nil {
		t.Fatal(err)
	}
	inc, err := filepath.Abs("testdata/mslhost")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(gxx, "-std=c++17", "-fsyntax-only", "-Wall", "-Werror", "-Wno-attributes",
		"-Wno-unused-variable", "-include", filepath.Join(inc, "mslhost.h"), "-I", inc, src).CombinedOutput()
	if err != nil {
		t.Fatalf("kernels.metal does not compile as C++: %v\n%s", err, out)
	}
}

//go:build darwin

package metal

import (
	"encoding/binary"
	"math"
	"os"
	"strings"
	"syscall"
	"testing"
	"unsafe"
)

// testKernels is a tiny library: one element-wise kernel that takes a buffer and two setBytes
// arguments, and one reduction through threadgroup memory (setThreadgroupMemory).
const testKernels = `
#include <metal_stdlib>
using namespace metal;

kernel void scale_add(device float *x      [[buffer(0)]],
                      constant float &k    [[buffer(1)]],
                      constant uint &n     [[buffer(2)]],
                      uint i [[thread_position_in_grid]]) {
    if (i < n) {
        x[i] = 2.0f * x[i] + k;
    }
}

kernel void group_sum(device const float *x [[buffer(0)]],
                      device float *out     [[buffer(1)]],
                      threadgroup float *tmp [[threadgroup(0)]],
                      uint t  [[thread_position_in_threadgroup]],
                      uint g  [[threadgroup_position_in_grid]],
                      uint nt [[threads_per_threadgroup]]) {
    tmp[t] = x[g * nt + t];
    threadgroup_barrier(mem_flags::mem_threadgroup);
    for (uint s = nt / 2; s > 0; s /= 2) {
        if (t < s) {
            tmp[t] += tmp[t + s];
        }
        threadgroup_barrier(mem_flags::mem_threadgroup);
    }
    if (t == 0) {
        out[g] = tmp[0];
    }
}
`

func f32(b []byte, i int) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])) }
func putF32(b []byte, i int, v float32) {
	binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
}

// openTestDevice opens the system device or skips: a Mac without a usable GPU (a virtual machine
// in CI, for instance) has no Metal device.
func openTestDevice(t *testing.T) device {
	t.Helper()
	d, err := systemDevice()
	if err != nil {
		t.Skipf("no Metal device here: %v", err)
	}
	t.Cleanup(d.close)
	return d
}

func TestSystemDeviceRunsKernels(t *testing.T) {
	d := openTestDevice(t)
	t.Logf("device %q, %d bytes of threadgroup memory", d.name(), d.maxThreadgroupMemory())
	if d.name() == "" {
		t.Error("device has no name")
	}
	if d.maxThreadgroupMemory() <= 0 {
		t.Errorf("maxThreadgroupMemory = %d", d.maxThreadgroupMemory())
	}

	lib, err := d.newLibrary(testKernels)
	if err != nil {
		t.Fatal(err)
	}
	defer lib.release()
	scaleAdd, err := lib.pipeline("scale_add")
	if err != nil {
		t.Fatal(err)
	}
	defer scaleAdd.release()
	groupSum, err := lib.pipeline("group_sum")
	if err != nil {
		t.Fatal(err)
	}
	defer groupSum.release()
	if scaleAdd.fn() != "scale_add" || scaleAdd.maxThreads() < 64 || groupSum.maxThreads() < 64 {
		t.Fatalf("pipelines: %q max %d, %q max %d", scaleAdd.fn(), scaleAdd.maxThreads(), groupSum.fn(), groupSum.maxThreads())
	}

	// scale_add on a new (zeroed) shared buffer: x[i] = 2*i + 0.5.
	const n = 1000
	x, err := d.newBuffer(4 * n)
	if err != nil {
		t.Fatal(err)
	}
	defer x.release()
	if x.size() != 4*n || len(x.contents()) != 4*n {
		t.Fatalf("buffer size %d, contents %d bytes, want %d", x.size(), len(x.contents()), 4*n)
	}
	for i, c := range x.contents() {
		if c != 0 {
			t.Fatalf("new buffer byte %d = %d, want zero", i, c)
		}
	}
	for i := range n {
		putF32(x.contents(), i, float32(i))
	}

	// group_sum over a wrapped (no-copy) buffer of one page: sums of 64 values each.
	page := os.Getpagesize()
	mem, err := syscall.Mmap(-1, 0, page, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(mem)
	const group = 64
	m := page / 4
	groups := m / group
	for i := range m {
		putF32(mem, i, float32(i%7))
	}
	w, err := d.wrapBuffer(unsafe.Pointer(&mem[0]), page)
	if err != nil {
		t.Fatal(err)
	}
	defer w.release()
	if len(w.contents()) != page || &w.contents()[0] != &mem[0] {
		t.Fatal("wrapped buffer does not map the caller's memory")
	}
	sums, err := d.newBuffer(4 * groups)
	if err != nil {
		t.Fatal(err)
	}
	defer sums.release()

	c, err := d.newCommands()
	if err != nil {
		t.Fatal(err)
	}
	defer c.release()
	c.use(scaleAdd)
	c.setBuffer(x, 0, 0)
	var k, cnt [4]byte
	binary.LittleEndian.PutUint32(k[:], math.Float32bits(0.5))
	binary.LittleEndian.PutUint32(cnt[:], n)
	c.setBytes(k[:], 1)
	c.setBytes(cnt[:], 2)
	c.dispatch([3]int{(n + group - 1) / group, 1, 1}, [3]int{group, 1, 1})
	c.use(groupSum)
	c.setBuffer(w, 0, 0)
	c.setBuffer(sums, 0, 1)
	c.setThreadgroupMemory(4*group, 0)
	c.dispatch([3]int{groups, 1, 1}, [3]int{group, 1, 1})
	c.commit()
	if err := c.wait(); err != nil {
		t.Fatal(err)
	}

	for i := range n {
		if got, want := f32(x.contents(), i), 2*float32(i)+0.5; got != want {
			t.Fatalf("scale_add x[%d] = %v, want %v", i, got, want)
		}
	}
	for g := range groups {
		var want float32
		for i := g * group; i < (g+1)*group; i++ {
			want += float32(i % 7)
		}
		if got := f32(sums.contents(), g); got != want {
			t.Fatalf("group_sum[%d] = %v, want %v", g, got, want)
		}
	}
}

func TestSystemDeviceErrors(t *testing.T) {
	d := openTestDevice(t)

	if _, err := d.newLibrary("kernel void broken( {"); err == nil {
		t.Error("compiling broken source gave no error")
	} else {
		t.Logf("compile error, as expected: %v", err)
	}

	lib, err := d.newLibrary(testKernels)
	if err != nil {
		t.Fatal(err)
	}
	defer lib.release()
	if _, err := lib.pipeline("no_such_kernel"); err == nil || !strings.Contains(err.Error(), "no_such_kernel") {
		t.Errorf("missing kernel: err = %v, want one naming no_such_kernel", err)
	}

	page := os.Getpagesize()
	mem, err := syscall.Mmap(-1, 0, 2*page, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(mem)
	if b, err := d.wrapBuffer(unsafe.Pointer(&mem[4]), page); err == nil {
		b.release()
		t.Error("wrapBuffer accepted a pointer that is not page-aligned")
	}
	if b, err := d.wrapBuffer(unsafe.Pointer(&mem[0]), page+4); err == nil {
		b.release()
		t.Error("wrapBuffer accepted a length that is not a multiple of the page size")
	}

	// A command buffer released without commit must end its encoder cleanly; wait without commit
	// is an error, not a hang.
	c, err := d.newCommands()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.wait(); err == nil {
		t.Error("wait before commit gave no error")
	}
	c.release()
}

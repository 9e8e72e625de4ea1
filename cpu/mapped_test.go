//go:build linux || darwin

package cpu

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/verbatimhq/verbatim/tensor"
)

// TestWeightsOffHeap: large weight copies (F16, quantized, dequantized to F32) live outside the
// Go heap with the values Upload gives small ones, and Free, or else the backend's Close, unmaps
// them.
func TestWeightsOffHeap(t *testing.T) {
	be := newBackend(t, 2)
	r := rand.New(rand.NewPCG(5, 6))
	for _, c := range []struct {
		dt    tensor.DType
		shape []int
	}{
		{tensor.F16, []int{1024, 1024}},
		{tensor.Q8_0, []int{1024, 1024}},
		{tensor.Q5_0, []int{4, 1024, 256}}, // not a matrix: dequantized to F32
		{tensor.F16, []int{64, 64}},        // small: in the heap
	} {
		vals := randomRow(r, tensor.Numel(c.shape))
		raw := tensor.Quantize(c.dt, vals)
		u := be.Upload(c.dt, raw, c.shape...)
		b := u.Buf.(*buffer)
		big := tensor.Numel(c.shape)*2 >= offHeapMinBytes
		if (b.off != nil) != big {
			t.Fatalf("%s%v: off heap %v, want %v", c.dt, c.shape, b.off != nil, big)
		}
		want := make([]float32, len(vals))
		if err := tensor.Dequantize(c.dt, raw, want); err != nil {
			t.Fatal(err)
		}
		if !equalBits(be.ToF32(u), want) {
			t.Fatalf("%s%v: values differ", c.dt, c.shape)
		}
		off := b.off
		be.Free(u)
		if off != nil && off.mem != nil {
			t.Fatalf("%s%v: Free left the memory mapped", c.dt, c.shape)
		}
	}
	// A weight never freed is unmapped when its backend closes.
	other, err := New(Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	u := other.Upload(tensor.F16, tensor.Quantize(tensor.F16, randomRow(r, 1<<16)), 256, 256)
	off := u.Buf.(*buffer).off
	other.Close()
	if off == nil || off.mem != nil {
		t.Fatal("Close left a weight's memory mapped")
	}
}

// TestReleaseMapped: the pages of a shared file mapping that ReleaseMapped drops read back the
// file's bytes.
func TestReleaseMapped(t *testing.T) {
	be := newBackend(t, 1)
	data := make([]byte, 5*os.Getpagesize()+123)
	for i := range data {
		data[i] = byte(i * 7)
	}
	path := filepath.Join(t.TempDir(), "m.bin")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, len(data), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	if !bytes.Equal(m, data) { // every page read in
		t.Fatal("the mapping reads other bytes")
	}
	be.ReleaseMapped(m[17 : len(m)-5])
	be.ReleaseMapped(m[:0])
	if !bytes.Equal(m, data) {
		t.Fatal("released pages read back other bytes")
	}
}

// TestAllocExplicit: AllocExplicit's tensors are zeroed, hold what ops write, and the large ones
// live outside the Go heap, counted by MappedBytes until Free, or else the backend's Close,
// unmaps them; the packed operands of a large matrix product are mapped too. In a -race build
// all of them are in the heap (raceDetector); make test runs this package without -race too.
func TestAllocExplicit(t *testing.T) {
	be, err := New(Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	r := rand.New(rand.NewPCG(7, 8))
	for _, c := range []struct {
		dt    tensor.DType
		shape []int
		big   bool
	}{
		{tensor.F32, []int{300, 512}, true},
		{tensor.F16, []int{2, 300, 512}, true},
		{tensor.I32, []int{1 << 15}, true},
		{tensor.F32, []int{16, 16}, false}, // small: in the heap
	} {
		c.big = c.big && !raceDetector
		before := be.MappedBytes()
		x := be.AllocExplicit(c.dt, c.shape...)
		n := x.Len()
		size := int64(n * 4)
		if c.dt == tensor.F16 {
			size = int64(n * 2)
		}
		if got := be.MappedBytes() - before; (got == size) != c.big || (!c.big && got != 0) {
			t.Fatalf("%s%v: %d bytes more mapped (%d bytes, off heap: %v)", c.dt, c.shape, got, size, c.big)
		}
		for i, v := range be.ToF32(x) {
			if v != 0 {
				t.Fatalf("%s%v: value %d is %v, not zeroed", c.dt, c.shape, i, v)
			}
		}
		if c.dt != tensor.I32 {
			src := be.FromF32(randomRow(r, n), c.shape...)
			be.Copy(x, src)
			want := be.ToF32(src)
			if c.dt == tensor.F16 {
				for i := range want {
					want[i] = tensor.F16ToF32(tensor.F32ToF16(want[i]))
				}
			}
			if !equalBits(be.ToF32(x), want) {
				t.Fatalf("%s%v: values differ from the copy", c.dt, c.shape)
			}
			be.Free(src)
		}
		be.Free(x)
		if got := be.MappedBytes(); got != before {
			t.Fatalf("%s%v: %d bytes mapped after Free, %d before", c.dt, c.shape, got, before)
		}
	}

	a := be.FromF32(randomRow(r, 1500*512), 1500, 512)
	w := be.FromF32(randomRow(r, 2048*512), 2048, 512)
	dst := be.AllocExplicit(tensor.F32, 1500, 2048)
	be.Linear(dst, a, w, nil)
	if mapped := be.sharedMem[0] != nil && be.sharedMem[1] != nil; mapped == raceDetector {
		t.Errorf("a 1500 x 512 x 2048 product's packed operands mapped: %v (a -race build: %v)", mapped, raceDetector)
	}

	// One never freed is unmapped when its backend closes.
	other, err := New(Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	u := other.AllocExplicit(tensor.F32, 1<<16)
	off := u.Buf.(*buffer).off
	other.Close()
	if (off == nil) != raceDetector || (off != nil && off.mem != nil) || other.MappedBytes() != 0 {
		t.Fatalf("Close left an explicit tensor mapped (%d bytes)", other.MappedBytes())
	}
}

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

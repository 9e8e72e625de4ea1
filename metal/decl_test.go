package metal

import "testing"

// TestParseKernels: every kernel of kernels.metal declares its buffers at consecutive indices
// with its parameter struct last, as backend.go binds them.
func TestParseKernels(t *testing.T) {
	ks, err := parseKernels(kernelSource)
	if err != nil {
		t.Fatal(err)
	}
	for name, k := range ks {
		t.Logf("%s: %d buffers, params %v, threadgroup memory %v", name, len(k.buffers), k.params, k.tgMem)
	}
	if len(ks) != 13 {
		t.Errorf("%d kernels, want 13", len(ks))
	}
}

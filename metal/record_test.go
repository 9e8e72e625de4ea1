package metal

import (
	"fmt"
	"strings"
	"testing"

	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/whisper"
	"github.com/verbatimhq/verbatim/whisper/weights"
)

// zeroModel is a model file of arch in dtype whose tensors are all zeros, produced on demand
// (the recording device keeps no data, so the values do not matter, only the shapes and types).
func zeroModel(t *testing.T, arch string, dt tensor.DType) *weights.File {
	t.Helper()
	cfg, err := weights.Arch(arch)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := weights.Synth(weights.SynthOptions{Config: cfg, DType: dt, Format: weights.GGML, Lazy: true})
	if err != nil {
		t.Fatal(err)
	}
	f := &weights.File{Path: "zeros:" + arch, Format: weights.GGML, Config: cfg, Arch: cfg.Name(), Tensors: map[string]*weights.Tensor{}}
	for _, w := range ts {
		n := w.DType.RowBytes(tensor.Numel(w.Shape))
		w.Load = func() ([]byte, error) { return make([]byte, n), nil }
		f.Tensors[w.Name] = w
		f.Names = append(f.Names, w.Name)
	}
	return f
}

// TestRecordModels: a whole encoder pass (two windows) and decoder steps (a 4-token prompt for
// five beams, a reorder, a step) of large-v3 and large-v3-turbo, f16 and q5_0, on the metal
// backend over the recording device: every dispatch binds what its kernel declares, buffers
// large enough, a grid that covers the work; no tensor is left behind after Close.
func TestRecordModels(t *testing.T) {
	if testing.Short() {
		t.Skip("builds large-v3's shapes (about 4 s)")
	}
	for _, arch := range []string{"large-v3", "large-v3-turbo"} {
		for _, dt := range []tensor.DType{tensor.F16, tensor.Q5_0} {
			t.Run(fmt.Sprint(arch, "/", dt), func(t *testing.T) {
				d := newRecDevice()
				be, err := newBackend(d)
				if err != nil {
					t.Fatal(err)
				}
				m, err := whisper.LoadFile(zeroModel(t, arch, dt), be)
				if err != nil {
					t.Fatal(err)
				}
				c := m.Config
				enc, err := m.Encode(make([]float32, 2*c.NMels*2*c.NAudioCtx), 2)
				if err != nil {
					t.Fatal(err)
				}
				s, err := m.NewSession(enc, []int{0, 0, 0, 1, 1})
				if err != nil {
					t.Fatal(err)
				}
				prompt := make([][]int32, 5)
				next := make([][]int32, 5)
				for i := range prompt {
					prompt[i] = []int32{50258, 50259, 50360, 50364}
					next[i] = []int32{int32(100 + i)}
				}
				if _, err := s.Step(prompt, false); err != nil {
					t.Fatal(err)
				}
				if err := s.Reorder([]int{1, 0, 0, 4, 3}); err != nil {
					t.Fatal(err)
				}
				if _, err := s.Step(next, false); err != nil {
					t.Fatal(err)
				}
				s.Close()
				enc.Close()
				m.Close()
				if err := be.Close(); err != nil {
					t.Fatal(err)
				}
				t.Log(d.report())
				if len(d.errs) > 0 {
					t.Fatalf("%d dispatch errors:\n%s", len(d.errs), strings.Join(d.errs, "\n"))
				}
				if be.Live() != 0 || len(d.live) != 0 {
					t.Errorf("%d tensors, %d buffers left after Close", be.Live(), len(d.live))
				}
				for _, k := range []string{"k_conv1d", "k_linear", "k_attention", "k_layernorm", "k_gather", "k_setrows"} {
					if d.byKernel[k] == 0 {
						t.Errorf("%s never dispatched", k)
					}
				}
			})
		}
	}
}

// TestRecordCatches: the recording device reports the host's mistakes: a buffer too small, a
// binding missing, parameters of the wrong size, a grid short of the work, threadgroup memory
// missing.
func TestRecordCatches(t *testing.T) {
	cases := []struct {
		name string
		run  func(be *Backend, d *recDevice)
		want string
	}{
		{"small dst", func(be *Backend, d *recDevice) {
			x, dst := be.Alloc(tensor.F32, 100), be.Alloc(tensor.F32, 10)
			be.dispatch("k_unary", []arg{be.arg(x), be.arg(dst)}, pUnary{N: 100}, [3]int{1, 1, 1}, [3]int{256, 1, 1}, 0)
		}, "dst needs 400 bytes"},
		{"missing binding", func(be *Backend, d *recDevice) {
			x := be.Alloc(tensor.F32, 100)
			be.dispatch("k_unary", []arg{be.arg(x)}, pUnary{N: 100}, [3]int{1, 1, 1}, [3]int{256, 1, 1}, 0)
		}, "not bound by setBytes"},
		{"params size", func(be *Backend, d *recDevice) {
			x := be.Alloc(tensor.F32, 100)
			be.dispatch("k_unary", []arg{be.arg(x), be.arg(x)}, pSoftmax{Rows: 1, Cols: 100}, [3]int{1, 1, 1}, [3]int{256, 1, 1}, 0)
		}, "8 bytes of parameters"},
		{"short grid", func(be *Backend, d *recDevice) {
			x := be.Alloc(tensor.F32, 1000)
			be.dispatch("k_unary", []arg{be.arg(x), be.arg(x)}, pUnary{N: 1000}, [3]int{1, 1, 1}, [3]int{256, 1, 1}, 0)
		}, "does not cover 1000"},
		{"threadgroup memory", func(be *Backend, d *recDevice) {
			q := be.Alloc(tensor.F32, 1, 4, 64)
			p := pAttention{Tq: 4, Tk: 4, H: 1, D: 64, KvLen: 4, Scale: 1}
			be.dispatch("k_attention", []arg{be.arg(q), be.arg(q), be.arg(q), be.arg(q)}, p, [3]int{4, 1, 1}, [3]int{128, 1, 1}, 0)
		}, "threadgroup memory, needs 16"},
		{"released buffer", func(be *Backend, d *recDevice) {
			x := be.Alloc(tensor.F32, 100)
			a := be.arg(x)
			be.Free(x)
			y := be.Alloc(tensor.F32, 100)
			be.dispatch("k_unary", []arg{a, be.arg(y)}, pUnary{N: 100}, [3]int{1, 1, 1}, [3]int{256, 1, 1}, 0)
		}, "was released"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := newRecDevice()
			be, err := newBackend(d)
			if err != nil {
				t.Fatal(err)
			}
			defer be.Close()
			c.run(be, d)
			if !strings.Contains(strings.Join(d.errs, "\n"), c.want) {
				t.Errorf("errors %q, want one with %q", d.errs, c.want)
			}
		})
	}
}

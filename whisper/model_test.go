package whisper

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/verbatimhq/verbatim/cpu"

	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/whisper/weights"
)

func loadMicro(t *testing.T) (*Model, *oracle) {
	t.Helper()
	o := readOracle(t)
	m, err := Load(oracleDir, newCPU(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, o
}

// otherMel is a second, different window: the oracle's mel reversed in time.
func otherMel(mel []float32, frames int) []float32 {
	out := make([]float32, len(mel))
	for r := 0; r < len(mel)/frames; r++ {
		for j := range frames {
			out[r*frames+j] = mel[r*frames+frames-1-j]
		}
	}
	return out
}

func encode(t *testing.T, m *Model, mel []float32, n int) *Encoded {
	t.Helper()
	e, err := m.Encode(mel, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

func session(t *testing.T, m *Model, e *Encoded, window ...int) *Session {
	t.Helper()
	s, err := m.NewSession(e, window)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func mustStep(t *testing.T, s *Session, toks [][]int32, all bool) []float32 {
	t.Helper()
	l, err := s.Step(toks, all)
	if err != nil {
		t.Fatal(err)
	}
	return slices.Clone(l) // the session reuses its logits buffer on the next step
}

// batchTol is the tolerance between batched and single runs of the same computation.
const batchTol = 1e-5

func TestBatchIndependence(t *testing.T) {
	m, o := loadMicro(t)
	c := m.Config
	nv := c.NVocab
	frames := 2 * c.NAudioCtx
	mel2 := otherMel(o.mel, frames)

	one := encode(t, m, o.mel, 1)
	two := encode(t, m, mel2, 1)
	both := encode(t, m, append(append([]float32(nil), o.mel...), mel2...), 2)
	b := m.Backend()
	out := b.ToF32(both.Out)
	half := len(out) / 2
	compareRows(t, "window 0 of a batch of 2", out[:half], b.ToF32(one.Out), c.NAudioState, batchTol, false)
	compareRows(t, "window 1 of a batch of 2", out[half:], b.ToF32(two.Out), c.NAudioState, batchTol, false)

	// Sequence 0 reads window 1, sequences 1 and 2 window 0: one single and one shared
	// cross-attention run.
	f := o.golden.Forced
	seqs := [][]int32{f[:6], f[6:12], f[10:16]}
	next := [][]int32{{f[12]}, {f[13]}, {f[3]}}
	windows := []*Encoded{two, one, one}
	s := session(t, m, both, 1, 0, 0)
	gotAll := mustStep(t, s, seqs, true)
	gotNext := mustStep(t, s, next, false)
	for i := range seqs {
		r := session(t, m, windows[i], 0)
		wantAll := mustStep(t, r, seqs[i:i+1], true)
		wantNext := mustStep(t, r, next[i:i+1], false)
		n := len(seqs[i]) * nv
		compareRows(t, fmt.Sprintf("batched logits of sequence %d", i), gotAll[i*n:(i+1)*n], wantAll, nv, batchTol, true)
		compareRows(t, fmt.Sprintf("batched next-token logits of sequence %d", i), gotNext[i*nv:(i+1)*nv], wantNext, nv, batchTol, true)
	}

	// Windows 0 and 1 in order: one batched run.
	s = session(t, m, both, 0, 1)
	gotAll = mustStep(t, s, seqs[:2], true)
	for i, e := range []*Encoded{one, two} {
		want := mustStep(t, session(t, m, e, 0), seqs[i:i+1], true)
		n := len(seqs[i]) * nv
		compareRows(t, fmt.Sprintf("logits of sequence %d in window order", i), gotAll[i*n:(i+1)*n], want, nv, batchTol, true)
	}
}

func TestReorder(t *testing.T) {
	m, o := loadMicro(t)
	nv := m.Config.NVocab
	mel2 := otherMel(o.mel, 2*m.Config.NAudioCtx)
	enc := encode(t, m, append(append([]float32(nil), o.mel...), mel2...), 2)
	f := o.golden.Forced
	p0, p1 := f[:5], f[5:10]
	x, y, z, w := f[10], f[11], f[12], f[13]

	// reference runs one sequence per session: logits after (window, tokens...)
	ref := func(window int, toks ...int32) []float32 {
		r := session(t, m, enc, window)
		return mustStep(t, r, [][]int32{toks}, false)
	}
	cat := func(a []int32, b ...int32) []int32 { return append(append([]int32(nil), a...), b...) }

	s := session(t, m, enc, 0, 1)
	mustStep(t, s, [][]int32{p0, p1}, false)
	if err := s.Reorder([]int{1, 0}); err != nil { // swap: seq 0 = (window 1, p1)
		t.Fatal(err)
	}
	got := mustStep(t, s, [][]int32{{x}, {y}}, false)
	compareRows(t, "swapped sequence 0", got[:nv], ref(1, cat(p1, x)...), nv, batchTol, true)
	compareRows(t, "swapped sequence 1", got[nv:], ref(0, cat(p0, y)...), nv, batchTol, true)

	if err := s.Reorder([]int{0, 0}); err != nil { // both continue (window 1, p1, x)
		t.Fatal(err)
	}
	got = mustStep(t, s, [][]int32{{z}, {w}}, false)
	compareRows(t, "duplicated sequence 0", got[:nv], ref(1, cat(p1, x, z)...), nv, batchTol, true)
	compareRows(t, "duplicated sequence 1", got[nv:], ref(1, cat(p1, x, w)...), nv, batchTol, true)
	if s.Len() != 7 {
		t.Errorf("Len %d, want 7", s.Len())
	}
}

func TestSessionErrors(t *testing.T) {
	m, o := loadMicro(t)
	enc := encode(t, m, o.mel, 1)
	ctx := m.Config.NTextCtx
	fill := func(n int) []int32 { return make([]int32, n) }

	cases := []struct {
		name string
		run  func(s *Session) error
		want string
		is   error
	}{
		{"wrong batch", func(s *Session) error { _, err := s.Step([][]int32{{1}, {2}}, false); return err }, "batch of 1", nil},
		{"no tokens", func(s *Session) error { _, err := s.Step([][]int32{{}}, false); return err }, "no tokens", nil},
		{"token out of range", func(s *Session) error {
			_, err := s.Step([][]int32{{int32(m.Config.NVocab)}}, false)
			return err
		}, "outside the vocabulary", nil},
		{"context full at once", func(s *Session) error { _, err := s.Step([][]int32{fill(ctx + 1)}, false); return err }, "", ErrContextFull},
		{"context full after filling", func(s *Session) error {
			if _, err := s.Step([][]int32{fill(ctx - 8)}, false); err != nil {
				return err
			}
			if _, err := s.Step([][]int32{fill(9)}, false); !errors.Is(err, ErrContextFull) {
				return errors.New("9 tokens past 440 accepted")
			}
			if _, err := s.Step([][]int32{fill(8)}, false); err != nil {
				return err
			}
			_, err := s.Step([][]int32{fill(1)}, false)
			return err
		}, "", ErrContextFull},
		{"truncate past len", func(s *Session) error { return s.Truncate(1) }, "session has 0 tokens", nil},
		{"reorder length", func(s *Session) error { return s.Reorder([]int{0, 0}) }, "2 sources", nil},
		{"reorder range", func(s *Session) error { return s.Reorder([]int{1}) }, "outside the batch", nil},
		{"closed", func(s *Session) error { s.Close(); _, err := s.Step([][]int32{{1}}, false); return err }, "", ErrClosed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := session(t, m, enc, 0)
			err := tc.run(s)
			switch {
			case err == nil:
				t.Fatal("no error")
			case tc.is != nil && !errors.Is(err, tc.is):
				t.Fatalf("error %v, want %v", err, tc.is)
			case !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error %q, want it to contain %q", err, tc.want)
			}
		})
	}

	if _, err := m.NewSession(enc, []int{1}); err == nil || !strings.Contains(err.Error(), "window 1 of 1") {
		t.Errorf("NewSession with a window out of range: %v", err)
	}
	if _, err := m.NewSession(enc, nil); err == nil {
		t.Error("NewSession with no sequences: no error")
	}
	if _, err := m.Encode(o.mel[:100], 1); err == nil || !strings.Contains(err.Error(), "100 mel values") {
		t.Errorf("Encode of a short mel: %v", err)
	}
}

func TestLoadMissing(t *testing.T) {
	_, err := Load("testdata/no-such-model.bin", newCPU(t))
	if err == nil || !strings.Contains(err.Error(), "no-such-model.bin") {
		t.Fatalf("Load of a missing file: %v, want an error naming it", err)
	}
}

func TestCloseIdempotent(t *testing.T) {
	m, o := loadMicro(t)
	enc := encode(t, m, o.mel, 1)
	s := session(t, m, enc, 0)
	s.Close()
	s.Close()
	enc.Close()
	enc.Close()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Encode(o.mel, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Encode after Close: %v", err)
	}
}

// opsOff is a backend whose ops do nothing, so that allocation counts measure the model code
// alone (the real backend's own allocations are its business).
type opsOff struct {
	tensor.Backend
	out []float32
}

func (o *opsOff) ToF32(t *tensor.Tensor) []float32                               { return o.out[:t.Len()] }
func (*opsOff) Linear(dst, x, w, bias *tensor.Tensor)                            {}
func (*opsOff) LayerNorm(dst, x, g, b *tensor.Tensor, eps float32)               {}
func (*opsOff) GELU(dst, x *tensor.Tensor)                                       {}
func (*opsOff) Add(dst, a, b *tensor.Tensor)                                     {}
func (*opsOff) Gather(dst, table *tensor.Tensor, ids []int32)                    {}
func (*opsOff) SetRows(dst *tensor.Tensor, at int, src *tensor.Tensor)           {}
func (*opsOff) Attention(d, q, k, v *tensor.Tensor, h, n int, s float32, c bool) {}

// TestStepAllocs checks that the model code of a steady one-token step allocates no Go memory:
// activations live in the reused workspace and KV caches.
func TestStepAllocs(t *testing.T) {
	m, o := loadMicro(t)
	enc := encode(t, m, o.mel, 1)
	s := session(t, m, enc, 0)
	toks := [][]int32{{o.golden.Prefix[0]}}
	mustStep(t, s, toks, false)
	step := func() {
		if _, err := s.Step(toks, false); err != nil {
			t.Fatal(err)
		}
		s.Truncate(1)
	}
	t.Logf("%.1f allocations per step with the %s backend", testing.AllocsPerRun(20, step), m.b.Name())
	m.b = &opsOff{Backend: m.b, out: make([]float32, m.Config.NVocab)}
	defer func() { m.b = m.b.(*opsOff).Backend }()
	if allocs := testing.AllocsPerRun(20, step); allocs > maxStepAllocs {
		t.Errorf("model code: %.1f allocations per one-token step, want <= %d", allocs, maxStepAllocs)
	}
}

const maxStepAllocs = 0

// TestWeightDTypes loads the same random micro model stored in other dtypes and formats (f16
// vectors converted on the host, ggml's f32 vectors, quantized matrices) and checks its logits
// against the f32 model's within the precision of the storage type.
func TestWeightDTypes(t *testing.T) {
	ref := synthModel(t, "micro", tensor.F32, weights.Safetensors)
	mel := randomMel(ref.Config, 1)
	toks := []int32{50258, 50259, 50360, 50364, 1000, 2000}
	run := func(m *Model) []float32 {
		e := encode(t, m, mel, 1)
		return mustStep(t, session(t, m, e, 0), [][]int32{toks}, true)
	}
	want := run(ref)
	cases := []struct {
		dt     tensor.DType
		format weights.Format
		rel    float64
	}{
		{tensor.F16, weights.Safetensors, 3e-3},
		{tensor.F16, weights.GGML, 3e-3},
		{tensor.BF16, weights.Safetensors, 2e-2},
		{tensor.Q8_0, weights.GGML, 4e-2},
	}
	for _, tc := range cases {
		t.Run(tc.dt.String()+"/"+tc.format.String(), func(t *testing.T) {
			got := run(synthModel(t, "micro", tc.dt, tc.format))
			err := diffRows(t, got, want, ref.Config.NVocab, tc.rel, false)
			if err != nil {
				t.Error(err)
			}
		})
	}
}

// asyncBackend reports its backend asynchronous, so a model on it has no arena and encodes a
// batch as a GPU does.
type asyncBackend struct{ tensor.Backend }

func (b asyncBackend) Capabilities() tensor.Capabilities {
	c := b.Backend.Capabilities()
	c.Async = true
	return c
}

// flushLog is an asyncBackend that is a tensor.Flusher: each Flush is noted in log.
type flushLog struct {
	asyncBackend
	log *[]string
}

func (b flushLog) Flush() { *b.log = append(*b.log, "flush") }

// TestEncodeChunks: encodeFrom asks for the mel windows a chunk at a time, in order, the last
// chunk short, and hands each chunk's ops to the device (Flush) before it asks for the next
// chunk's; its output (the encoder's and every layer's cross-attention K/V) is Encode's over all
// the windows at once, also where a chunk's encoder outputs are given (pre) instead of encoded.
func TestEncodeChunks(t *testing.T) {
	be, err := cpu.New(cpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var log []string
	m, err := Load(filepath.Join(fixturesDir, "oracle-micro"), flushLog{asyncBackend{be}, &log})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.ar != nil {
		t.Fatal("a model on an asynchronous backend has an arena")
	}
	c := m.Config
	per := c.NMels * 2 * c.NAudioCtx
	rng := rand.New(rand.NewPCG(3, 4))
	mel := make([]float32, 5*per)
	for i := range mel {
		mel[i] = rng.Float32()*2 - 1
	}
	whole, err := m.Encode(mel, 5)
	if err != nil {
		t.Fatal(err)
	}
	// Windows 1 to 3 given (encodeFrom's pre) as copies of the whole batch's: 0 and 4 are encoded
	// as one chunk, then the projections run over the batch.
	given := map[int]*tensor.Tensor{}
	for w := 1; w <= 3; w++ {
		o := m.b.Alloc(tensor.F32, 1, c.NAudioCtx, c.NAudioState)
		m.b.Copy(o, whole.Out.Slice(w, w+1))
		given[w] = o
	}
	want := [][]float32{m.b.ToF32(whole.Out)}
	for i := range whole.crossK {
		want = append(want, m.b.ToF32(whole.crossK[i]), m.b.ToF32(whole.crossV[i]))
	}
	whole.Close()
	for _, pre := range []func(int) *tensor.Tensor{nil, func(w int) *tensor.Tensor { return given[w] }} {
		log = nil
		chunked := m.encodeFrom(5, 2, true, func(ws []int) *tensor.Tensor {
			log = append(log, fmt.Sprintf("mel %v", ws))
			var out []float32
			for _, w := range ws {
				out = append(out, mel[w*per:(w+1)*per]...)
			}
			return m.melInput(out, len(ws))
		}, pre)
		wantLog := "mel [0 1], flush, mel [2 3], flush, mel [4], flush"
		if pre != nil {
			wantLog = "mel [0 4], flush, flush"
		}
		if got := strings.Join(log, ", "); got != wantLog {
			t.Errorf("pre %v: mel windows asked and flushes: %s, want %s", pre != nil, got, wantLog)
		}
		got := [][]float32{m.b.ToF32(chunked.Out)}
		for i := range chunked.crossK {
			got = append(got, m.b.ToF32(chunked.crossK[i]), m.b.ToF32(chunked.crossV[i]))
		}
		chunked.Close()
		for i := range want {
			worst := 0.0
			for j := range want[i] {
				worst = max(worst, math.Abs(float64(got[i][j]-want[i][j])))
			}
			if len(got[i]) != len(want[i]) || worst > 1e-5 {
				t.Errorf("pre %v: output %d: %d values, want %d; largest difference %g", pre != nil, i, len(got[i]), len(want[i]), worst)
			}
		}
	}
}

package whisper

import (
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/whisper/weights"
)

// synthModel loads a random-weight model of a named architecture from weights.Synth, without
// writing a file.
func synthModel(tb testing.TB, arch string, dt tensor.DType, format weights.Format) *Model {
	tb.Helper()
	cfg, err := weights.Arch(arch)
	if err != nil {
		tb.Fatal(err)
	}
	ts, err := synthTensors(arch, cfg, dt, format)
	if err != nil {
		tb.Fatal(err)
	}
	f := &weights.File{Path: "synth:" + arch, Format: format, Config: cfg, Arch: cfg.Name(), Tensors: map[string]*weights.Tensor{}}
	for _, t := range ts {
		f.Tensors[t.Name] = t
	}
	m, err := LoadFile(f, newCPU(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.Close() })
	return m
}

// synthCache holds weights.Synth's seed-1 tensors by architecture, dtype and format: a model's
// random weights are made once per test binary (seconds under the race detector) and shared by
// every synthModel of them. LoadFile copies the tensors' bytes to the backend and never writes
// them, so the models loaded from one set are independent.
var synthCache = struct {
	sync.Mutex
	m map[synthKey][]*weights.Tensor
}{m: map[synthKey][]*weights.Tensor{}}

type synthKey struct {
	arch   string
	dt     tensor.DType
	format weights.Format
}

func synthTensors(arch string, cfg weights.Config, dt tensor.DType, format weights.Format) ([]*weights.Tensor, error) {
	k := synthKey{arch, dt, format}
	synthCache.Lock()
	defer synthCache.Unlock()
	if ts, ok := synthCache.m[k]; ok {
		return ts, nil
	}
	ts, err := weights.Synth(weights.SynthOptions{Config: cfg, Seed: 1, DType: dt, Format: format})
	if err == nil {
		synthCache.m[k] = ts
	}
	return ts, err
}

// randomMel is n deterministic windows of log-mel-like values in [-1, 1].
func randomMel(c weights.Config, n int) []float32 {
	rng := rand.New(rand.NewPCG(7, 7))
	mel := make([]float32, n*c.NMels*2*c.NAudioCtx)
	for i := range mel {
		mel[i] = rng.Float32()*2 - 1
	}
	return mel
}

var benchArchs = []string{"tiny", "base"}

func BenchmarkEncoder(b *testing.B) {
	for _, arch := range benchArchs {
		b.Run(arch+"/f16/windows=1", func(b *testing.B) {
			m := synthModel(b, arch, tensor.F16, weights.GGML)
			mel := randomMel(m.Config, 1)
			b.SetBytes(int64(4 * len(mel)))
			for b.Loop() {
				e, err := m.Encode(mel, 1)
				if err != nil {
					b.Fatal(err)
				}
				e.Close()
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/window")
		})
	}
}

// BenchmarkDecodeToken times one-token steps (greedy: the argmax is fed back) of batch sequences
// against one encoded window, at positions 4..131 (the session is truncated back to its 4-token
// prefix every 128 steps), as in decoding one segment.
func BenchmarkDecodeToken(b *testing.B) {
	for _, arch := range benchArchs {
		for _, batch := range []int{1, 5} {
			b.Run(fmt.Sprintf("%s/f16/batch=%d", arch, batch), func(b *testing.B) {
				m := synthModel(b, arch, tensor.F16, weights.GGML)
				e, err := m.Encode(randomMel(m.Config, 1), 1)
				if err != nil {
					b.Fatal(err)
				}
				defer e.Close()
				s, err := m.NewSession(e, make([]int, batch))
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				toks := make([][]int32, batch)
				for i := range toks {
					toks[i] = []int32{50258, 50259, 50359, 50363}
				}
				logits, err := s.Step(toks, false)
				if err != nil {
					b.Fatal(err)
				}
				nv := m.Config.NVocab
				for b.Loop() {
					if s.Len() == 4+128 {
						if err := s.Truncate(4); err != nil {
							b.Fatal(err)
						}
					}
					for i := range toks {
						toks[i] = append(toks[i][:0], int32(benchArgmax(logits[i*nv:(i+1)*nv])))
					}
					if logits, err = s.Step(toks, false); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N), "ms/token")
			})
		}
	}
}

func TestBench(t *testing.T) {
	m := synthModel(t, "micro", tensor.F32, weights.Safetensors)
	res, err := Bench(t.Context(), m, BenchOptions{EncodeBatch: 2, DecodeBatch: 3, DecodeSteps: 4, Warmup: -1, Iterations: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Encode) != 2 || len(res.Decode) != 2 || res.EncoderMsPerWindow <= 0 || res.DecodeMsPerToken <= 0 {
		t.Fatalf("result %+v", res)
	}
	if res.Backend != "cpu" || res.Device == "" || res.EncodeBatch != 2 || res.DecodeBatch != 3 {
		t.Errorf("result %+v", res)
	}
	t.Logf("micro f32: encoder %.1f ms/window, decode %.2f ms/token (batch 3)", res.EncoderMsPerWindow, res.DecodeMsPerToken)
}

// TestBenchE2E: the greedy and the default decoding end to end on a random-weight model; the
// default one through the driver: every window of audio decoded at least once, segments out.
func TestBenchE2E(t *testing.T) {
	m := synthModel(t, "micro", tensor.F32, weights.Safetensors)
	g, err := BenchE2E(t.Context(), m, E2EOptions{Windows: 3, Tokens: 5, Batch: 2})
	if err != nil {
		t.Fatal(err)
	}
	if g.RTF <= 0 || g.TokensPerSecond <= 0 || g.Windows != 3 || g.Decoded != 0 {
		t.Errorf("greedy: %+v", g)
	}
	d, err := BenchE2E(t.Context(), m, E2EOptions{Windows: 3, Tokens: 5, Batch: 2, Default: true})
	if err != nil {
		t.Fatal(err)
	}
	if d.RTF <= 0 || d.Windows != 3 || d.Batch != 2 || d.Decoded < 3 || d.Segments == 0 {
		t.Errorf("default: %+v", d)
	}
	// The phases: the driver's top-level ones add up to at most the wall time, each part to at
	// most its whole (words within settle, forced passes within words, record and pick within
	// decode), and the run decoded, encoded and timed words.
	got := map[string]float64{}
	for _, p := range d.Phases {
		got[p.Name] = p.Seconds
	}
	top := 0.0
	for _, n := range []string{"gather", "log-mel", "encode", "detect+plan", "decode", "settle"} {
		top += got[n]
	}
	if len(got) != nPhases+2 || top > d.WallSeconds || got["encode"] <= 0 || got["decode"] <= 0 || got["forced passes"] <= 0 ||
		got["words"] > got["settle"] || got["forced passes"] > got["words"] || got["decode: record"]+got["decode: pick"] > got["decode"] {
		t.Errorf("phases %v of %.3f s", d.Phases, d.WallSeconds)
	}
	if m.clock != nil {
		t.Error("the model keeps the bench's clock")
	}
	t.Logf("micro: greedy %.0fx, default %.0fx (%d windows decoded, %d segments, %d words)", g.RTF, d.RTF, d.Decoded, d.Segments, d.Words)
}

// TestNoiseSource: the bench's audio is its table read in a loop from the input's offset, to
// exactly its length, then io.EOF, whatever the reads' sizes.
func TestNoiseSource(t *testing.T) {
	table := []float32{1, 2, 3, 4, 5, 6, 7}
	for _, size := range []int{1, 3, 7, 10, 64} {
		s := &noiseSource{left: 23, table: table, at: 5}
		var got []float32
		for range 100 {
			p := make([]float32, size)
			n, err := s.Read(p)
			got = append(got, p[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil || n == 0 {
				t.Fatalf("read %d: %d, %v", size, n, err)
			}
		}
		if len(got) != 23 {
			t.Fatalf("reads of %d: %d samples, want 23", size, len(got))
		}
		for i, v := range got {
			if want := table[(5+i)%len(table)]; v != want {
				t.Fatalf("reads of %d: sample %d = %v, want %v", size, i, v, want)
			}
		}
	}
}

package cuda

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/whisper"
	"github.com/verbatimhq/verbatim/whisper/weights"
)

// TestGraphs: decoder steps replayed from CUDA graphs give the logits of the same steps run op by
// op. Three sessions of the same batch size step through the same positions with different
// tokens: the first runs each step's ops (a hash seen once), the second captures a graph per
// step, the third launches them (so the
// token ids really reach a replayed graph through the pinned inputs, and the cross-attention
// reads the right windows). Synthetic tiny models in f32 (cuBLAS) and f16 (cuBLASLt epilogues,
// f16 shadows, split-K attention), at 3 and 12 sequences (the small-row kernels and the GEMMs).
// Steps are queued in pieces (CutGraph) and, in a third run, whole (graphcut=off).
func TestGraphs(t *testing.T) {
	if testing.Short() {
		t.Skip("writes tiny models")
	}
	open(t, Options{}).Close() // skips without a device
	for _, dt := range []tensor.DType{tensor.F32, tensor.F16} {
		cfg, err := weights.Arch("tiny")
		if err != nil {
			t.Fatal(err)
		}
		ts, err := weights.Synth(weights.SynthOptions{Config: cfg, Seed: 3, DType: dt, Format: weights.Safetensors, Lazy: true})
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "model.safetensors")
		if err := weights.WriteSafetensors(path, cfg, ts); err != nil {
			t.Fatal(err)
		}
		for _, batch := range []int{3, 12} {
			t.Run(fmt.Sprintf("%s/batch=%d", dt, batch), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(batch), 7))
				per := cfg.NMels * 2 * cfg.NAudioCtx
				mel := make([]float32, batch*per)
				for i := range mel {
					mel[i] = rng.Float32()*2 - 1
				}
				// Per session: the windows each sequence reads and its first tokens.
				type plan struct {
					window []int
					prefix [][]int32
				}
				// Sessions 0, 1 and 2: the same windows (1 captures what 0 ran, 2 replays 1's
				// graphs) with other tokens; session 3: the windows reversed (other
				// cross-attention reads: new hashes, seen once).
				plans := make([]plan, 4)
				for p := range plans {
					for i := range batch {
						w := i
						if p == 3 {
							w = batch - 1 - i
						}
						plans[p].window = append(plans[p].window, w)
						plans[p].prefix = append(plans[p].prefix, []int32{50258, int32(50259 + rng.IntN(90)), 50359, 50363})
					}
				}
				const steps = 24
				run := func(t *testing.T, opts Options) (out [][]float32, st GraphStats) {
					be := open(t, opts)
					m, err := whisper.Load(path, be)
					if err != nil {
						t.Fatal(err)
					}
					defer m.Close()
					e, err := m.Encode(mel, batch)
					if err != nil {
						t.Fatal(err)
					}
					defer e.Close()
					for _, p := range plans {
						s, err := m.NewSession(e, p.window)
						if err != nil {
							t.Fatal(err)
						}
						next := p.prefix
						for range steps {
							l, err := s.Step(next, false)
							if err != nil {
								t.Fatal(err)
							}
							out = append(out, slices.Clone(l))
							next = make([][]int32, batch)
							for i := range batch {
								next[i] = []int32{argmax(l[i*cfg.NVocab : (i+1)*cfg.NVocab])}
							}
						}
						s.Close()
					}
					return out, be.GraphStats()
				}
				lt := dt == tensor.F16
				want, _ := run(t, Options{NoLt: !lt, NoGraphs: true})
				got, st := run(t, Options{NoLt: !lt})
				t.Logf("graphs: %+v", st)
				if !st.enabled() {
					t.Skip("the driver has no graph API")
				}
				for i := range want {
					d, at := maxAbsDiff(got[i], want[i])
					if d > 1e-5 {
						t.Fatalf("session %d step %d: logits differ by %.3g at %d (graph %g, ops %g)",
							i/steps, i%steps, d, at, got[i][at], want[i][at])
					}
				}
				// Session 0 runs its steps' ops (those that allocate on first use end their
				// recording), session 1 captures them, session 2 replays them, session 3 runs its
				// own new steps' ops.
				if st.Once < 2*steps-4 || st.Captured < steps-4 || st.Launched < steps-4 || st.Failed > 0 {
					t.Errorf("want captures and replays, got %+v", st)
				}
				// Each step queued whole (graphcut=off): the same logits, and fewer graphs than
				// the pieces above (the tiny decoder's 4 layers are cut once a step or more).
				whole, stWhole := run(t, Options{NoLt: !lt, NoGraphCut: true})
				t.Logf("graphs, steps whole: %+v", stWhole)
				for i := range want {
					if d, at := maxAbsDiff(whole[i], want[i]); d > 1e-5 {
						t.Fatalf("steps whole: session %d step %d: logits differ by %.3g at %d", i/steps, i%steps, d, at)
					}
				}
				if stWhole.Captured < steps-4 || st.Captured < stWhole.Captured+steps-4 || st.Launched < stWhole.Launched+steps-4 {
					t.Errorf("want a step's pieces captured and launched apart: %+v in pieces, %+v whole", st, stWhole)
				}
			})
		}
	}
}

func (s GraphStats) enabled() bool { return s.Captured+s.Launched+s.Plain+s.Failed+s.Once > 0 }

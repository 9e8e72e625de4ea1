package cuda

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/verbatimhq/verbatim/pipeline"
	"github.com/verbatimhq/verbatim/sidecar"
	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/whisper"
	"github.com/verbatimhq/verbatim/whisper/weights"
)

// pickCase is n random rows of V logits with random bitmaps, ranges and the timestamp rule on
// and off (rows where it forbids the text and rows where it does not), the last row with
// everything forbidden.
func pickCase(rng *rand.Rand, V, n int) (x []float32, bitmaps [][]uint32, rows []tensor.PickRow) {
	return pickCaseTS(rng, V, n, int32(V*3/4))
}

// pickCaseTS is pickCase with the timestamps from tsBegin.
func pickCaseTS(rng *rand.Rand, V, n int, tsBegin int32) (x []float32, bitmaps [][]uint32, rows []tensor.PickRow) {
	x = make([]float32, n*V)
	for i := range x {
		x[i] = float32(rng.NormFloat64() * 4)
	}
	words := (V + 31) / 32
	bitmaps = make([][]uint32, 3)
	for k := range bitmaps {
		bitmaps[k] = make([]uint32, words)
		for range 1 + k*V/50 {
			id := rng.IntN(V)
			bitmaps[k][id/32] |= 1 << (id % 32)
		}
	}
	rows = make([]tensor.PickRow, n)
	for i := range rows {
		r := tensor.PickRow{Mask: rng.IntN(4) - 1, TSBegin: tsBegin, TSRule: i%2 == 0}
		for range rng.IntN(pickMaxRanges + 1) {
			a := rng.IntN(V)
			r.Ranges = append(r.Ranges, [2]int32{int32(a), int32(min(V, a+rng.IntN(V/8+1)))})
		}
		if i%4 == 0 { // timestamps likely to win the rule
			for j := int(tsBegin); j < V; j++ {
				x[i*V+j] += 6
			}
		}
		rows[i] = r
	}
	rows[n-1] = tensor.PickRow{Mask: -1, TSBegin: tsBegin, Ranges: [][2]int32{{0, int32(V)}}} // nothing allowed
	return x, bitmaps, rows
}

// samePick compares a pick made on the GPU with the host's: the same token and timestamp, the
// log-probability within 1e-4.
func samePick(t *testing.T, i int, r tensor.PickRow, got, want tensor.Pick) {
	t.Helper()
	if want.Token != got.Token || want.TS != got.TS {
		t.Fatalf("row %d (%+v): got token %d ts %d, want %d ts %d", i, r, got.Token, got.TS, want.Token, want.TS)
	}
	if want.Token >= 0 && math.Abs(want.LogProb-got.LogProb) > 1e-4 {
		t.Fatalf("row %d: log-probability %g, want %g", i, got.LogProb, want.LogProb)
	}
}

// TestPickInputsDisjoint: a pick's bitmaps, row descriptions and output are disjoint device
// regions. They were three scratch blocks, and two scratch blocks of one size class are the same
// block: with one row and no bitmap all three were one, the bitmap's upload overwrote the row's
// mask index with 0, and k_pick read a bitmap past the block (compute-sanitizer: reads 8 bytes
// past a 256-byte block; an illegal address in TestPickTranscribe where nothing was mapped).
func TestPickInputsDisjoint(t *testing.T) {
	g := open(t, Options{})
	const V = 51866
	words := (V + 31) / 32
	for _, n := range []int{1, 3, 160} {
		for _, nb := range []int{0, 1, 2} {
			logits := g.Alloc(tensor.F32, n, V)
			bitmaps := make([][]uint32, nb)
			for k := range bitmaps {
				bitmaps[k] = make([]uint32, words)
			}
			rows := make([]tensor.PickRow, n)
			for i := range rows {
				rows[i] = tensor.PickRow{Mask: i%(nb+1) - 1, TSBegin: 50365}
			}
			for _, outInts := range []int{3, pickTopStride} {
				_, _, in, ok := g.pickInputs("test", logits, bitmaps, rows, n, outInts)
				if !ok {
					t.Fatalf("%d rows, %d bitmaps: not picked on the GPU", n, nb)
				}
				parts := [][2]uint64{
					{in.bitmaps, in.bitmaps + uint64(4*max(1, nb*words))},
					{in.info, in.info + uint64(4*n*pickStride)},
					{in.out, in.out + uint64(4*n*outInts)},
				}
				for i := range parts {
					for j := range i {
						if parts[i][0] < parts[j][1] && parts[j][0] < parts[i][1] {
							t.Errorf("%d rows, %d bitmaps, %d ints out: regions %d %x and %d %x overlap", n, nb, outInts, i, parts[i], j, parts[j])
						}
					}
				}
			}
			if err := g.Sync(); err != nil {
				t.Fatal(err)
			}
			g.Free(logits)
		}
	}
}

// TestPickGreedy: k_pick against tensor.PickF32 on pickCase's rows: the same tokens and
// timestamps, log-probabilities within 1e-4. Vocabulary sizes of Whisper's and a small odd one.
func TestPickGreedy(t *testing.T) {
	g := open(t, Options{})
	rng := rand.New(rand.NewPCG(5, 9))
	for _, V := range []int{51866, 97} {
		t.Run(fmt.Sprint("V=", V), func(t *testing.T) {
			const n = 24
			x, bitmaps, rows := pickCase(rng, V, n)
			want := make([]tensor.Pick, n)
			for i, r := range rows {
				row := append([]float32(nil), x[i*V:(i+1)*V]...)
				want[i] = tensor.PickF32(row, bitmaps, r)
			}
			got := make([]tensor.Pick, n)
			g.PickGreedy(g.FromF32(x, n, V), bitmaps, rows, got)
			for i := range want {
				samePick(t, i, rows[i], got[i], want[i])
			}
		})
	}
}

// TestPickTopSplits: few rows take several blocks each (2 to 32, about two an SM), a quarter of
// the SMs' count of rows or more one block each.
func TestPickTopSplits(t *testing.T) {
	for _, c := range []struct{ rows, sms, want int }{
		{1, 132, 32}, {5, 132, 32}, {10, 132, 26}, {24, 132, 11}, {32, 132, 8}, {33, 132, 1}, {145, 132, 1},
		{0, 132, 1}, {1, 4, 1}, {3, 16, 10}, {59, 240, 8}, {60, 240, 1},
	} {
		if got := pickTopSplits(c.rows, c.sms); got != c.want {
			t.Errorf("pickTopSplits(%d rows, %d SMs) = %d, want %d", c.rows, c.sms, got, c.want)
		}
	}
}

// TestPickTop: PickTop against tensor.PickTopF32 on pickCase's rows, for k of 1, 6 (beam search
// 5) and MaxTopK, with 5 and 24 rows (the split form, k_pick_top_p1/p2/p3) and 80 (k_pick_top1
// where the timestamps fit it: whisper's 1,501 of 51,866, not a quarter of the vocabulary;
// k_pick_top there too with Options.PickTwoPass), rows with few allowed tokens among them: the same
// pick (as TestPickGreedy), the same k tokens in the same order, log-probabilities within 1e-4
// (-Inf for forbidden tokens; NaN in the row where nothing is allowed).
func TestPickTop(t *testing.T) {
	for _, opts := range []Options{{}, {PickTwoPass: true}} {
		g := open(t, opts)
		rng := rand.New(rand.NewPCG(6, 10))
		for _, V := range []int{51866, 97} {
			for _, tsb := range []int{V * 3 / 4, V - 1501} {
				if tsb < 0 {
					continue
				}
				for _, k := range []int{1, 6, tensor.MaxTopK} {
					// 5 and 24 rows: the split form (several blocks a row); 80: one block a
					// row (on a GPU of up to 320 SMs)
					for _, n := range []int{5, 24, 80} {
						name := fmt.Sprint(cmp.Or(opts.String(), "defaults"), "/V=", V, ",ts=", tsb, ",k=", k, ",rows=", n)
						t.Run(name, func(t *testing.T) { pickTopCase(t, g, rng, V, int32(tsb), k, n) })
					}
				}
			}
		}
	}
}

// pickTopCase is one case of TestPickTop.
func pickTopCase(t *testing.T, g *Backend, rng *rand.Rand, V int, tsb int32, k, n int) {
	x, bitmaps, rows := pickCaseTS(rng, V, n, tsb)
	rows[1] = tensor.PickRow{Mask: -1, TSBegin: tsb, Ranges: [][2]int32{{0, int32(V - 3)}}} // 3 allowed
	x[2*V+5] = x[2*V+9]                                                                     // a tie
	// row 3: three tokens tie for the largest logit (the lower index first)
	rows[3] = tensor.PickRow{Mask: -1, TSBegin: tsb}
	top := slices.Max(x[3*V : 4*V])
	for _, j := range []int{V / 2, 7, V / 3} {
		x[3*V+j] = top + 1
	}
	if n > 6 {
		// row 5: every logit equal (all of them tie)
		rows[5] = tensor.PickRow{Mask: -1, TSBegin: tsb}
		for j := range V {
			x[5*V+j] = 0.5
		}
	}
	if !g.opts.PickTwoPass && pickTopSplits(n, g.sms) == 1 && int(tsb) == V-1501 && !onePassFits(rows, V) {
		t.Fatal("k_pick_top1 does not take whisper's 1,501 timestamps")
	}
	want, wantTop := make([]tensor.Pick, n), make([]tensor.Cand, n*k)
	for i, r := range rows {
		row := append([]float32(nil), x[i*V:(i+1)*V]...)
		want[i] = tensor.PickTopF32(row, bitmaps, r, wantTop[i*k:(i+1)*k])
	}
	got, gotTop := make([]tensor.Pick, n), make([]tensor.Cand, n*k)
	g.PickTop(g.FromF32(x, n, V), bitmaps, rows, k, got, gotTop)
	for i := range want {
		samePick(t, i, rows[i], got[i], want[i])
		for j := range k {
			w, h := wantTop[i*k+j], gotTop[i*k+j]
			okLP := math.Abs(w.LogProb-h.LogProb) <= 1e-4 || (math.IsInf(w.LogProb, -1) && math.IsInf(h.LogProb, -1)) ||
				(math.IsNaN(w.LogProb) && math.IsNaN(h.LogProb))
			if w.Token != h.Token || !okLP {
				t.Fatalf("row %d (%+v) candidate %d: got %+v, want %+v", i, rows[i], j, h, w)
			}
		}
	}
}

// TestPickTranscribe: a whole greedy transcription through the pipeline (jfk.wav, synthetic tiny
// f32) with the picks made on the GPU gives the tokens and times of the one that reads the
// logits back.
func TestPickTranscribe(t *testing.T) { pickTranscribe(t, 1) }

// synthModel writes a random-weight model of arch in dt (seed 1) to a temporary folder and
// returns its path; it skips with -short (a model is written) or without a device.
func synthModel(t *testing.T, arch string, dt tensor.DType) string {
	t.Helper()
	if testing.Short() {
		t.Skip("writes a model")
	}
	open(t, Options{}).Close() // skips without a device
	cfg, err := weights.Arch(arch)
	if err != nil {
		t.Fatal(err)
	}
	path, err := whisper.WriteSynth(filepath.Join(t.TempDir(), arch+".bin"), whisper.SynthOptions{Config: cfg, DType: dt, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPickTranscribeBeam is TestPickTranscribe with beam search 5 (the default decoding; each
// row's best tokens ranked on the GPU by k_pick_top).
func TestPickTranscribeBeam(t *testing.T) { pickTranscribe(t, 5) }

func pickTranscribe(t *testing.T, beam int) {
	path := synthModel(t, "tiny", tensor.F32)
	run := func(opts Options) *sidecar.Document {
		m, err := whisper.Load(path, open(t, opts))
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		r, err := pipeline.NewRunner(m, path, nil, "test")
		if err != nil {
			t.Fatal(err)
		}
		o := pipeline.DefaultOptions()
		o.Decode.Language, o.Decode.BeamSize, o.Decode.BestOf, o.Decode.NoFallback = "en", beam, 1, true
		o.NoVAD, o.Force, o.OutDir = true, true, t.TempDir()
		o.Formats = []sidecar.Format{sidecar.FormatJSON}
		res := pipeline.Pool(t.Context(), []*pipeline.Runner{r}, []string{"../testdata/jfk.wav"}, o, nil)[0]
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		data, err := os.ReadFile(filepath.Join(o.OutDir, "jfk.json"))
		if err != nil {
			t.Fatal(err)
		}
		doc, err := sidecar.ReadDocument(data)
		if err != nil {
			t.Fatal(err)
		}
		return doc
	}
	want, got := run(Options{NoPick: true}), run(Options{})
	if len(got.Segments) != len(want.Segments) {
		t.Fatalf("%d segments with GPU picks, %d without", len(got.Segments), len(want.Segments))
	}
	for i := range want.Segments {
		w, g := want.Segments[i], got.Segments[i]
		if w.Text != g.Text || w.Start != g.Start || w.End != g.End {
			t.Fatalf("segment %d: %q [%g, %g] with GPU picks, %q [%g, %g] without", i, g.Text, g.Start, g.End, w.Text, w.Start, w.End)
		}
	}
	t.Logf("%d segments, identical", len(want.Segments))
}

// TestOnePassFits: k_pick_top1 takes rows whose timestamps fit its threads' registers (4 x 1,024:
// whisper's 1,501 of 51,866, rows without timestamps, a TSBegin below 0 or past V clamped) and
// leaves a row with more to k_pick_top.
func TestOnePassFits(t *testing.T) {
	const V = 51866
	row := func(tsb int32) tensor.PickRow { return tensor.PickRow{Mask: -1, TSBegin: tsb} }
	for _, c := range []struct {
		rows []tensor.PickRow
		want bool
	}{
		{[]tensor.PickRow{row(V - 1501), row(V)}, true},
		{[]tensor.PickRow{row(V + 10), row(V - 4096)}, true},
		{[]tensor.PickRow{row(V - 1501), row(V - 4097)}, false},
		{[]tensor.PickRow{row(-1)}, false},
		{nil, true},
	} {
		if got := onePassFits(c.rows, V); got != c.want {
			t.Errorf("onePassFits(%+v) = %v, want %v", c.rows, got, c.want)
		}
	}
}

package cuda

import (
	"fmt"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/verbatimhq/verbatim/audio"
	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/whisper"
)

// samples is an AudioSource over a slice.
type samples struct{ s []float32 }

func (s *samples) Read(p []float32) (int, error) {
	n := copy(p, s.s)
	s.s = s.s[n:]
	if len(s.s) == 0 {
		return n, io.EOF
	}
	return n, nil
}

// TestLanesCUDA: the driver's two lanes (ManyOptions.Lanes, the default on CUDA) share the
// device and give each input what one lane gives it. Each batch holds one window in both runs
// (batch 2 over two lanes, batch 1 over one), so the device runs the same ops on the same shapes
// and the results must be identical, while the lanes interleave their work on the one stream.
// The default decoding (beam search 5, word timestamps) of six inputs of jfk.wav from different
// offsets, on a random-weight tiny model.
func TestLanesCUDA(t *testing.T) {
	path := synthModel(t, "tiny", tensor.F16)
	pcm, err := audio.LoadWAV("../testdata/jfk.wav")
	if err != nil {
		t.Fatal(err)
	}
	var inputs [][]float32
	for i := range 6 {
		var s []float32
		for range 2 + i%3 { // 22 to 44 s: several windows each
			s = append(s, pcm.Samples[i*8000:]...)
		}
		inputs = append(inputs, s)
	}
	m, err := whisper.Load(path, open(t, Options{}))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	run := func(batch, lanes int) []*whisper.Result {
		out := make([]*whisper.Result, len(inputs))
		i := 0
		next := func() (whisper.Job, bool) {
			if i == len(inputs) {
				return whisper.Job{}, false
			}
			k := i
			i++
			o := whisper.DefaultOptions()
			o.Language, o.NoFallback, o.MaxWindowTokens = "en", true, 40
			return whisper.Job{Name: fmt.Sprint("input ", k), Options: o, Source: &samples{inputs[k]},
				Done: func(r *whisper.Result, err error) {
					if err != nil {
						t.Error(err)
					}
					out[k] = r
				}}, true
		}
		stop := m.TimePhases()
		if err := whisper.TranscribeQueue(t.Context(), m, next, whisper.ManyOptions{BatchSize: batch, Lanes: lanes}); err != nil {
			t.Fatal(err)
		}
		if tm := stop(); tm.Lanes != lanes {
			t.Fatalf("batch %d: %d lanes ran, want %d", batch, tm.Lanes, lanes)
		}
		return out
	}
	want, got := run(1, 1), run(2, 2)
	segs := 0
	for i := range want {
		if want[i] == nil || got[i] == nil {
			t.Fatalf("input %d: no result", i)
		}
		if d := cmp.Diff(want[i].Segments, got[i].Segments); d != "" {
			t.Errorf("input %d: two lanes against one (-one +two):\n%s", i, d)
		}
		segs += len(want[i].Segments)
	}
	if segs == 0 {
		t.Fatal("no segments")
	}
	t.Logf("%d inputs, %d segments, identical", len(want), segs)
}

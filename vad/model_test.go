package vad

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/verbatimhq/verbatim/audio"
	"github.com/verbatimhq/verbatim/cpu"
	"github.com/verbatimhq/verbatim/tensor"
)

// golden is whisper.cpp's output for the fixture model on jfk.wav (testdata/README.md).
type golden struct {
	NSamples int          `json:"n_samples"`
	Probs    []float32    `json:"probs"`
	Segments [][2]float64 `json:"segments"` // centiseconds
	Params   struct {
		Threshold      float32 `json:"threshold"`
		MinSpeechMS    int     `json:"min_speech_duration_ms"`
		MinSilenceMS   int     `json:"min_silence_duration_ms"`
		SpeechPadMS    int     `json:"speech_pad_ms"`
		SamplesOverlap float64 `json:"samples_overlap"`
	} `json:"params"`
}

func loadGolden(t testing.TB) *golden {
	t.Helper()
	b, err := os.ReadFile("testdata/jfk-silero-v6.2.0.json")
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return &g
}

func jfk(t testing.TB) []float32 {
	t.Helper()
	pcm, err := audio.LoadWAV("../testdata/jfk.wav")
	if err != nil {
		t.Fatal(err)
	}
	if pcm.Rate != SampleRate {
		t.Fatalf("jfk.wav at %d Hz", pcm.Rate)
	}
	return pcm.Samples
}

func newCPU(t testing.TB) tensor.Backend {
	t.Helper()
	b, err := cpu.New(cpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func openFixture(t testing.TB, b tensor.Backend) *Model {
	t.Helper()
	m, err := Open(fixture, b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// compareProbs fails with the first frame off by more than tol, and reports the maximum error.
func compareProbs(t *testing.T, got, want []float32, tol float64) (maxErr float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d probabilities, want %d", len(got), len(want))
	}
	first, worst := -1, 0
	for i := range want {
		e := math.Abs(float64(got[i] - want[i]))
		if e > maxErr || math.IsNaN(e) {
			maxErr, worst = e, i
		}
		if (e > tol || math.IsNaN(e)) && first < 0 {
			first = i
		}
	}
	if first >= 0 {
		t.Errorf("frame %d (%.3f s) is the first off: got %.6f, want %.6f (|diff| %.4f > %g); worst frame %d off by %.4f",
			first, float64(first*512)/SampleRate, got[first], want[first], math.Abs(float64(got[first]-want[first])), tol, worst, maxErr)
	}
	return maxErr
}

// TestParityWhisperCPP is the acceptance check of issue 4: every frame within 0.02 of
// whisper.cpp, segment edges within 0.05 s, with the golden's parameters.
func TestParityWhisperCPP(t *testing.T) {
	g := loadGolden(t)
	samples := jfk(t)
	if len(samples) != g.NSamples {
		t.Fatalf("jfk.wav has %d samples, golden %d", len(samples), g.NSamples)
	}
	m := openFixture(t, newCPU(t))
	probs, err := m.Probs(samples)
	if err != nil {
		t.Fatal(err)
	}
	maxErr := compareProbs(t, probs, g.Probs, 0.02)
	t.Logf("%d frames, max |prob - whisper.cpp| = %.5f", len(probs), maxErr)

	opts := Options{
		Threshold:          g.Params.Threshold,
		MinSpeechDuration:  msec(g.Params.MinSpeechMS),
		MinSilenceDuration: msec(g.Params.MinSilenceMS),
		SpeechPad:          msec(g.Params.SpeechPadMS),
		SamplesOverlap:     msec(int(g.Params.SamplesOverlap * 1000)),
	}
	if opts != DefaultOptions() {
		t.Errorf("golden parameters %+v differ from DefaultOptions %+v", opts, DefaultOptions())
	}
	segs, err := m.Segments(samples, opts)
	if err != nil {
		t.Fatal(err)
	}
	compareSegments(t, segs, g.Segments, 0.05)
}

func compareSegments(t *testing.T, got []Segment, wantCS [][2]float64, tol float64) {
	t.Helper()
	if len(got) != len(wantCS) {
		t.Fatalf("%d segments %v, want %d %v (centiseconds)", len(got), got, len(wantCS), wantCS)
	}
	for i, w := range wantCS {
		ws, we := w[0]/100, w[1]/100
		if math.Abs(got[i].Start-ws) > tol || math.Abs(got[i].End-we) > tol {
			t.Errorf("segment %d: [%.3f, %.3f] s, want [%.2f, %.2f] within %g s", i, got[i].Start, got[i].End, ws, we, tol)
		}
	}
}

// TestSegmentsFromGoldenProbs: whisper.cpp's own probabilities through the segment rules give
// its segments to the centisecond (it rounds samples to centiseconds).
func TestSegmentsFromGoldenProbs(t *testing.T) {
	g := loadGolden(t)
	segs, err := SegmentsFromProbs(g.Probs, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	compareSegments(t, segs, g.Segments, 0.005+1e-9)
}

// TestStreamChunks: pushing the audio in pieces of any size gives the probabilities of one
// Probs call, and the state carries over between calls.
func TestStreamChunks(t *testing.T) {
	samples := jfk(t)[:40000] // 78 frames and a partial one: more than one batch
	m := openFixture(t, newCPU(t))
	for _, fr := range []Framing{FramingWhisperCPP, FramingSilero} {
		m.Framing = fr
		want, err := m.Probs(samples)
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(1, 2))
		for _, sizes := range [][]int{{1}, {511, 2}, {512}, {4096, 7}, {100000}, nil} {
			t.Run(fmt.Sprintf("framing=%d/chunks=%v", fr, sizes), func(t *testing.T) {
				s := m.NewStream()
				defer s.Close()
				var got []float32
				rest := samples
				for i := 0; len(rest) > 0; i++ {
					n := 1 + r.IntN(3000)
					if sizes != nil {
						n = sizes[i%len(sizes)]
					}
					n = min(n, len(rest))
					p, err := s.Push(rest[:n])
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, p...)
					rest = rest[n:]
				}
				p, err := s.Flush()
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, p...)
				compareProbs(t, got, want, 1e-5)
				if s.Frames() != len(want) {
					t.Errorf("Frames() = %d, want %d", s.Frames(), len(want))
				}
			})
		}
	}
}

// TestStreamReset: after Reset a stream gives what a new one gives, and the state matters
// (without Reset the second pass differs).
func TestStreamReset(t *testing.T) {
	samples := jfk(t)[:512*20]
	m := openFixture(t, newCPU(t))
	s := m.NewStream()
	defer s.Close()
	first, err := s.Push(samples)
	if err != nil {
		t.Fatal(err)
	}
	carried, err := s.Push(samples)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(first, carried) {
		t.Error("the second pass without Reset equals the first: no state is carried")
	}
	s.Reset()
	again, err := s.Push(samples)
	if err != nil {
		t.Fatal(err)
	}
	compareProbs(t, again, first, 0)
}

// TestFrames checks the padded input of each framing on a ramp.
func TestFrames(t *testing.T) {
	m := &Model{Header: Header{Window: 512, Context: 64}}
	x := make([]float32, 512)
	for i := range x {
		x[i] = float32(i + 1)
	}
	for _, tc := range []struct {
		name    string
		framing Framing
		// indexes into x (or -1-k for the k-th context sample) of padded positions 0, 63, 64,
		// 575, 576, 639
		want []float32
	}{
		{"whisper.cpp", FramingWhisperCPP, []float32{x[64], x[1], x[0], x[511], x[510], x[447]}},
		// second frame: context is the last 64 samples of the first (x[448:512])
		{"silero", FramingSilero, []float32{x[448], x[511], x[0], x[511], x[510], x[447]}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Stream{m: m, framing: tc.framing, context: make([]float32, 64)}
			dst := make([]float32, 640)
			s.frame(dst, x)
			if tc.framing == FramingSilero {
				if dst[0] != 0 || dst[63] != 0 {
					t.Errorf("first frame's context: %v..%v, want zeros", dst[0], dst[63])
				}
				s.frame(dst, x)
			}
			var got []float32
			for _, i := range []int{0, 63, 64, 575, 576, 639} {
				got = append(got, dst[i])
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("padded[0,63,64,575,576,639] = %v, want %v", got, tc.want)
			}
		})
	}
}

// noF16 is a CPU backend that does not take F16 weights, to exercise widening on upload.
type noF16 struct{ tensor.Backend }

func (noF16) Capabilities() tensor.Capabilities {
	return tensor.Capabilities{WeightDTypes: []tensor.DType{tensor.F32}}
}

func (n noF16) Upload(dt tensor.DType, raw []byte, shape ...int) *tensor.Tensor {
	if dt != tensor.F32 {
		panic(tensor.Errorf("noF16: upload %s", dt))
	}
	return n.Backend.Upload(dt, raw, shape...)
}

func TestBackendWithoutF16(t *testing.T) {
	b := newCPU(t)
	samples := jfk(t)[:512*30]
	want, err := openFixture(t, b).Probs(samples)
	if err != nil {
		t.Fatal(err)
	}
	got, err := openFixture(t, noF16{b}).Probs(samples)
	if err != nil {
		t.Fatal(err)
	}
	compareProbs(t, got, want, 0)
}

func TestClosedModel(t *testing.T) {
	m, err := Default(newCPU(t))
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	m.Close() // idempotent
	if _, err := m.Probs(make([]float32, 1024)); err == nil {
		t.Error("Probs on a closed model: no error")
	}
}

func TestProbsEdges(t *testing.T) {
	m := openFixture(t, newCPU(t))
	for _, tc := range []struct {
		n, frames int
	}{{0, 0}, {1, 1}, {511, 1}, {512, 1}, {513, 2}, {512 * maxBatch, maxBatch}, {512*maxBatch + 1, maxBatch + 1}} {
		p, err := m.Probs(make([]float32, tc.n))
		if err != nil {
			t.Fatal(err)
		}
		if len(p) != tc.frames {
			t.Errorf("%d samples: %d probabilities, want %d", tc.n, len(p), tc.frames)
		}
		for i, v := range p {
			if !(v >= 0 && v < 0.5) {
				t.Errorf("%d samples of silence: frame %d has probability %v, want < 0.5", tc.n, i, v)
				break
			}
		}
	}
}

func msec(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// benchVAD times run over 60 s of noise on the CPU with the embedded model, as a multiple of
// real time.
func benchVAD(b *testing.B, run func(m *Model, samples []float32) error) {
	be, err := cpu.New(cpu.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	m, err := Default(be)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	r := rand.New(rand.NewPCG(3, 4))
	samples := make([]float32, 60*SampleRate)
	for i := range samples {
		samples[i] = float32(r.NormFloat64() * 0.1)
	}
	b.SetBytes(int64(4 * len(samples)))
	for b.Loop() {
		if err := run(m, samples); err != nil {
			b.Fatal(err)
		}
	}
	sec := float64(len(samples)) / SampleRate
	b.ReportMetric(sec*float64(b.N)/b.Elapsed().Seconds(), "x_realtime")
}

// BenchmarkProbs reports the speed of the VAD on the CPU as a multiple of real time.
func BenchmarkProbs(b *testing.B) {
	benchVAD(b, func(m *Model, samples []float32) error {
		_, err := m.Probs(samples)
		return err
	})
}

// BenchmarkStream is BenchmarkProbs as the pipeline and `transcribe vad` feed the model: a second
// of samples a Push (31.25 frames, so a frame is left pending across every other call).
func BenchmarkStream(b *testing.B) {
	benchVAD(b, func(m *Model, samples []float32) error {
		s := m.NewStream()
		defer s.Close()
		for i := 0; i < len(samples); i += SampleRate {
			if _, err := s.Push(samples[i:min(i+SampleRate, len(samples))]); err != nil {
				return err
			}
		}
		_, err := s.Flush()
		return err
	})
}

package pipeline

import (
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/verbatimhq/verbatim/audio"
	"github.com/verbatimhq/verbatim/internal/testkit"
	"github.com/verbatimhq/verbatim/media"
	"github.com/verbatimhq/verbatim/sidecar"
	"github.com/verbatimhq/verbatim/vad"
)

type span struct{ start, end float64 }

// assembleSpeech builds a 16 kHz recording from espeak-ng utterances separated by long gaps of
// silence, a music-like chord and noise, writes it as WAV, and returns where each utterance is.
func assembleSpeech(t *testing.T, dir string) (string, []span, []span) {
	t.Helper()
	if _, err := exec.LookPath("espeak-ng"); err != nil {
		t.Fatalf("%v (make test installs espeak-ng: scripts/deps.sh)", err)
	}
	texts := []string{
		"The meeting starts at nine tomorrow morning.",
		"Please bring the quarterly report and your laptop.",
		"We will finish before lunch if everyone is on time.",
		"Thank you all for coming today.",
	}
	const rate = 16000
	rng := rand.New(rand.NewPCG(1, 2))
	gap := func(kind int, sec float64) []float32 {
		n := int(sec * rate)
		x := make([]float32, n)
		for i := range x {
			ts := float64(i) / rate
			switch kind {
			case 1: // a sustained chord with a slow tremolo: music-like, not speech
				x[i] = float32(0.15 * (math.Sin(2*math.Pi*220*ts) + math.Sin(2*math.Pi*277.2*ts) + math.Sin(2*math.Pi*329.6*ts)) *
					(0.7 + 0.3*math.Sin(2*math.Pi*0.5*ts)))
			case 2: // broadband noise
				x[i] = float32(0.05 * rng.NormFloat64())
			}
		}
		return x
	}
	var all []float32
	var speech, gaps []span
	all = append(all, gap(0, 1.0)...)
	for i, text := range texts {
		wav := filepath.Join(dir, "u.wav")
		if out, err := exec.Command("espeak-ng", "-v", "en-us", "-s", "150", "-w", wav, text).CombinedOutput(); err != nil {
			t.Fatalf("espeak-ng: %v\n%s", err, out)
		}
		pcm, err := audio.LoadWAV(wav)
		if err != nil {
			t.Fatal(err)
		}
		pcm = audio.Resample(pcm, rate)
		// espeak pads with a little silence: the truth is where the signal is.
		first, last := -1, -1
		for j, v := range pcm.Samples {
			if math.Abs(float64(v)) > 0.01 {
				if first < 0 {
					first = j
				}
				last = j
			}
		}
		at := float64(len(all)) / rate
		speech = append(speech, span{at + float64(first)/rate, at + float64(last+1)/rate})
		all = append(all, pcm.Samples...)
		if i < len(texts)-1 {
			g0 := float64(len(all)) / rate
			all = append(all, gap(i%3, 3.0)...)
			gaps = append(gaps, span{g0, float64(len(all)) / rate})
		}
	}
	all = append(all, gap(0, 1.0)...)
	path := filepath.Join(dir, "meeting.wav")
	testkit.WriteWAV(t, path, all, rate)
	return path, speech, gaps
}

// TestLongGapsStayEmpty: synthetic speech with 3 s of silence, a chord and noise between the
// utterances. Voice activity detection (the real Silero weights) finds every utterance within
// 0.2 s of where it was placed and nothing in the gaps; the transcript (a random-weight model:
// its words are meaningless, its timing is what is checked) has no segment and no cue inside any
// gap, and every segment lies within 0.2 s of an utterance.
func TestLongGapsStayEmpty(t *testing.T) {
	dir := t.TempDir()
	path, utterances, gaps := assembleSpeech(t, dir)

	v := testkit.VAD(t)
	r := newRunner(t)
	r.vad = v

	regions, err := speech(t.Context(), r.vad, path, media.Options{}, vad.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("utterances %v", utterances)
	t.Logf("VAD regions %v", regions)
	if len(regions) != len(utterances) {
		t.Fatalf("VAD found %d regions, want %d (one per utterance)", len(regions), len(utterances))
	}
	for i, g := range regions {
		if math.Abs(g.Start-utterances[i].start) > 0.2 || math.Abs(g.End-utterances[i].end) > 0.2 {
			t.Errorf("region %d = [%.3f, %.3f], utterance [%.3f, %.3f]: edges off by more than 0.2 s",
				i, g.Start, g.End, utterances[i].start, utterances[i].end)
		}
	}

	opts := fastOptions()
	opts.Decode.MaxWindowTokens = 0 // the segments' times are checked: the model's own ends
	opts.Formats = []sidecar.Format{sidecar.FormatSRT, sidecar.FormatJSON}
	o, err := r.file(t.Context(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "meeting.json"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := sidecar.ReadDocument(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Segments) == 0 {
		t.Fatalf("no segments: %+v", o)
	}
	for _, s := range doc.Segments {
		for _, g := range gaps {
			if s.End > g.start+0.2 && s.Start < g.end-0.2 {
				t.Errorf("segment [%.3f, %.3f] %q lies inside the gap [%.3f, %.3f]", s.Start, s.End, s.Text, g.start, g.end)
			}
		}
		near := false
		for _, u := range utterances {
			if s.Start >= u.start-0.2 && s.End <= u.end+0.2 {
				near = true
			}
		}
		if !near {
			t.Errorf("segment [%.3f, %.3f] is not within 0.2 s of any utterance %v", s.Start, s.End, utterances)
		}
	}
	f, err := os.Open(filepath.Join(dir, "meeting.srt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cues, err := sidecar.ParseSRT(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cues {
		for _, g := range gaps {
			// A cue may stay up into a gap for reading time, but never through a whole long gap.
			if c.Start.Seconds() < g.end-0.2 && c.End.Seconds() > g.end-0.2 && c.Start.Seconds() > g.start+0.2 {
				t.Errorf("cue [%v, %v] starts inside the gap [%.3f, %.3f]", c.Start, c.End, g.start, g.end)
			}
			if c.Start.Seconds() <= g.start && c.End.Seconds() >= g.end {
				t.Errorf("cue [%v, %v] spans the whole gap [%.3f, %.3f]", c.Start, c.End, g.start, g.end)
			}
		}
	}
}

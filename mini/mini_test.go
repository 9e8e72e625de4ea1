package mini

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/verbatimhq/verbatim/audio"
	"github.com/verbatimhq/verbatim/cpu"
	"github.com/verbatimhq/verbatim/internal/testkit"
	"github.com/verbatimhq/verbatim/pipeline"
	"github.com/verbatimhq/verbatim/sidecar"
	"github.com/verbatimhq/verbatim/whisper"
)

func TestInstallWithoutModel(t *testing.T) {
	if Embedded() != nil {
		t.Skip("this build embeds the mini model: the test runs in a -tags nomini build")
	}
	dir := t.TempDir()
	_, err := Install(dir)
	if !errors.Is(err, ErrNotBuilt) || !strings.Contains(err.Error(), "not built yet") {
		t.Fatalf("Install without a model: %v, want ErrNotBuilt", err)
	}
	p := filepath.Join(dir, FileName) // a hand-built model in the models folder is used as is
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := Install(dir); err != nil || got != p {
		t.Fatalf("Install with %s present: %q, %v", p, got, err)
	}
}

// embedded returns the embedded model file. Without one the test fails, or skips in a nomini
// build, which leaves the file out on purpose.
func embedded(t *testing.T) []byte {
	t.Helper()
	data := Embedded()
	if data == nil {
		if !embedsModel {
			t.Skip("a -tags nomini build: the mini model is not embedded")
		}
		t.Fatal("the mini model is not embedded: mini/model/" + FileName + " is missing (tools/mini/README.md makes it)")
	}
	return data
}

func TestInstallEmbedded(t *testing.T) {
	data := embedded(t)
	dir := t.TempDir()
	p, err := Install(dir)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p, []byte("stale"), 0o644)
	if p2, err := Install(dir); err != nil || p2 != p || !same(p, int64(len(data)), sha256.Sum256(data)) {
		t.Fatalf("reinstall over a stale file: %q %v", p2, err)
	}
}

// TestEmbeddedSum holds model/ggml-mini.bin.sha256, which Install checks installed copies
// against, to the embedded model.
func TestEmbeddedSum(t *testing.T) {
	data := embedded(t)
	if got, want := hex.EncodeToString(embeddedSumOf(t)), fmt.Sprintf("%x", sha256.Sum256(data)); got != want {
		t.Fatalf("model/%s.sha256 holds %q, the embedded model's sha256 is %s: run "+
			"`sha256sum mini/model/%s | cut -d' ' -f1 > mini/model/%s.sha256`", FileName, sum, want, FileName, FileName)
	}
}

// embeddedSumOf is the hash in model/ggml-mini.bin.sha256 (not the fallback computed from the
// bytes, which would always agree).
func embeddedSumOf(t *testing.T) []byte {
	h, err := hex.DecodeString(strings.TrimSpace(sum))
	if err != nil || len(h) != sha256.Size {
		t.Fatalf("model/%s.sha256 holds %q, not a sha256 in hex", FileName, sum)
	}
	return h
}

// Voices never used in training (tools/mini/gen.py: HELDOUT_VARIANTS) on the base voices.
var (
	baseVoices      = []string{"en", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029", "en-us-nyc"}
	heldoutVariants = []string{"m7", "f5", "adam", "benjamin", "caleb", "belinda", "david", "victor", "quincy", "shelby"}
)

const (
	nSentences = 48  // held-out sentences, two a clip (VERBATIM_MINI_SENTENCES=N for more)
	maxSkew    = 0.3 // seconds, segment start/end against the assembly's truth
)

// sentences is how many held-out sentences a run uses: nSentences, or more with
// VERBATIM_MINI_SENTENCES (a steadier figure when comparing models: one lost sentence moves
// the WER over 48 sentences by up to 7 points).
func sentences(t *testing.T) int {
	v := os.Getenv("VERBATIM_MINI_SENTENCES")
	if v == "" {
		return nSentences
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 2 {
		t.Fatalf("VERBATIM_MINI_SENTENCES=%q: want a number of sentences >= 2", v)
	}
	return n &^ 1
}

// skipped is how many eligible held-out sentences a run passes over first
// (VERBATIM_MINI_SKIP=N, default 0): a model chosen by its figures on the first sentences is
// confirmed on others.
func skipped(t *testing.T) int {
	v := os.Getenv("VERBATIM_MINI_SKIP")
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("VERBATIM_MINI_SKIP=%q: want a number of sentences >= 0", v)
	}
	return n
}

// bar is what a run over the held-out clips must reach.
type bar struct {
	maxWER    float64 // word error rate over all sentences
	minWithin float64 // share of segments whose start and end are within maxSkew of the truth
}

// A run is the CLI's decoding of the clips, `transcribe --model mini --language en` and the
// flags named, through the pipeline (pipeline.DefaultOptions, the CLI's defaults, and the same
// changes as the flags), with the bar it is held to.
type run struct {
	name  string // the flags
	noVAD bool
	words bool // word timestamps (the CLI's default; --no-word-timestamps turns them off)
	want  bar
}

// runs are issue 6's bar and two regression floors:
//   - segments timed by their timestamp tokens, without VAD, as issue 6's bar was set: WER <= 10%
//     and every sentence's span matched by a segment within maxSkew;
//   - the same with word timestamps (segments re-timed to their words), held a little below the
//     shipped model's measured share (2026-11-27, sixth model: 44 of 48, and 772 of 884 on the
//     other held-out sentences), against regressions of the alignment-head timing;
//   - the CLI's defaults (VAD and word timestamps): measured 2026-12-04 on the code before the
//     one-driver change, WER 10.03% and 48 of 48 (VAD joins the two sentences of a clip, which
//     mini, trained on lines with gaps of 0.6 s or more, transcribes a little worse), held to
//     WER <= 11% and 46 of 48.
var runs = []run{
	{"--no-vad --no-word-timestamps", true, false, bar{maxWER: 0.10, minWithin: 1}},
	{"--no-vad (with word timestamps)", true, true, bar{maxWER: 0.10, minWithin: 0.85}},
	{"(the defaults: VAD, word timestamps)", false, true, bar{maxWER: 0.11, minWithin: 0.95}},
}

type truth struct {
	start, end float64
	text       string
}

// TestAcceptance is issue 6's acceptance test: held-out sentences spoken by held-out voices,
// transcribed by mini on the CPU through the CLI's path (the pipeline, as `transcribe --model
// mini --language en` with the flags of each run): WER <= 10%, segment times within 0.3 s, and
// no text from silence, noise or a tone.
func TestAcceptance(t *testing.T) {
	evaluate(t, runs)
}

// evaluate transcribes the held-out clips and the non-speech clips with mini on the CPU through
// the pipeline, one pass per run, and checks each against its bar.
func evaluate(t *testing.T, runs []run) {
	embedded(t)
	if testing.Short() {
		t.Skip("acceptance test: transcribes about 30 clips on the CPU several times")
	}
	if _, err := exec.LookPath("espeak-ng"); err != nil {
		t.Fatalf("%v (make test installs espeak-ng: scripts/deps.sh)", err)
	}
	path, err := Install(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := newRunner(t, path)

	sents := heldout(t, skipped(t), sentences(t))
	dir := t.TempDir()
	var inputs []string
	var truths [][]truth
	var voices []string
	refs := sentsRefs(sents) // one a clip
	for i := 0; i+1 < len(sents); i += 2 {
		voice := baseVoices[(i/2)%len(baseVoices)] + "+" + heldoutVariants[(i/2)%len(heldoutVariants)]
		samples, segs := assemble(t, voice, sents[i:i+2])
		p := filepath.Join(dir, fmt.Sprintf("clip%03d.wav", i/2))
		testkit.WriteWAV(t, p, samples, 16000)
		inputs, truths, voices = append(inputs, p), append(truths, segs), append(voices, voice)
	}
	var silent []string
	for _, c := range nonSpeech() {
		p := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".wav")
		testkit.WriteWAV(t, p, c.samples, 16000)
		silent = append(silent, p)
	}
	for k, ru := range runs {
		show := k == 0 // the log tools/mini/testlog.py reads: the first run's clips in full
		if k == 1 {
			t.Logf("with word timestamps, and the runs after it:")
		}
		docs := transcribeAll(t, r, ru, append(slices.Clone(inputs), silent...))
		var hyps []string
		within, total, worst := 0, 0, 0.0
		for i, d := range docs[:len(inputs)] {
			var got strings.Builder
			for _, s := range d.Segments {
				got.WriteString(s.Text + " ")
			}
			hyps = append(hyps, got.String())
			for _, want := range truths[i] {
				total++
				best := math.Inf(1)
				for _, s := range d.Segments {
					best = min(best, math.Max(math.Abs(s.Start-want.start), math.Abs(s.End-want.end)))
				}
				worst = math.Max(worst, best)
				if best <= maxSkew {
					within++
				} else if show {
					var segs strings.Builder
					for _, s := range d.Segments {
						fmt.Fprintf(&segs, " [%.2f-%.2f]%s", s.Start, s.End, s.Text)
					}
					t.Logf("%-26s off by %.2f s (truth %.2f-%.2f): %s\n%26s segments:%s", voices[i], best, want.start, want.end, want.text, "", segs.String())
				}
			}
			if show {
				t.Logf("%-26s REF %s | %s\n%26s HYP %s", voices[i], truths[i][0].text, truths[i][1].text, "", strings.TrimSpace(got.String()))
			}
		}
		w := werOf(refs, hyps)
		t.Logf("mini %s: WER %.2f%% over %d held-out sentences (%d words), held-out voices; segments within %.1f s: %d/%d (worst %.2f s)",
			ru.name, 100*w, len(sents), words(refs), maxSkew, within, total, worst)
		if w > ru.want.maxWER {
			t.Errorf("%s: WER %.2f%% > %.0f%%", ru.name, 100*w, 100*ru.want.maxWER)
		}
		if float64(within) < ru.want.minWithin*float64(total) {
			t.Errorf("%s: %d of %d segments are off by more than %.1f s (worst %.2f s); at most %.0f%% may be",
				ru.name, total-within, total, maxSkew, worst, 100*(1-ru.want.minWithin))
		}
		for i, d := range docs[len(inputs):] {
			name := nonSpeech()[i].name
			if txt := strings.TrimSpace(d.Text); txt != "" {
				t.Errorf("%s: %s: transcript %q, want none", ru.name, name, txt)
			} else if show {
				t.Logf("%s: no text", name)
			}
		}
	}
}

// newRunner loads the model at path on the CPU with the Silero VAD, as the CLI does.
func newRunner(t *testing.T, path string) *pipeline.Runner {
	t.Helper()
	b, err := cpu.New(cpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	m, err := whisper.Load(path, b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	r, err := pipeline.NewRunner(m, path, testkit.VAD(t), "test")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// transcribeAll runs the inputs through the pipeline with the run's flags and returns their
// JSON sidecars, in order.
func transcribeAll(t *testing.T, r *pipeline.Runner, ru run, inputs []string) []*sidecar.Document {
	t.Helper()
	return transcribeWith(t, r, runOptions(ru), inputs)
}

// runOptions are the pipeline's options of a run: the CLI's defaults, English, and the run's
// flags.
func runOptions(ru run) pipeline.Options {
	o := pipeline.DefaultOptions()
	o.Decode.Language = "en"
	o.NoVAD = ru.noVAD
	o.Decode.WordTimestamps = ru.words
	return o
}

// transcribeWith runs the inputs through the pipeline with options o (JSON sidecars, forced)
// and returns their JSON sidecars, in order.
func transcribeWith(t *testing.T, r *pipeline.Runner, o pipeline.Options, inputs []string) []*sidecar.Document {
	t.Helper()
	o.Formats, o.Force = []sidecar.Format{sidecar.FormatJSON}, true
	var docs []*sidecar.Document
	for _, res := range pipeline.Pool(t.Context(), []*pipeline.Runner{r}, inputs, o, nil) {
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		docs = append(docs, testkit.ReadDocument(t, strings.TrimSuffix(res.Input, ".wav")+".json"))
	}
	return docs
}

// heldout returns n everyday held-out sentences (wordnet and fortunes; never trained on), after
// the first skip of them.
func heldout(t *testing.T, skip, n int) []string {
	f, err := os.Open("../tools/mini/data/heldout.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() && len(out) < n {
		src, s, _ := strings.Cut(sc.Text(), "\t")
		if (src == "wordnet-base" || src == "fortunes") && len(strings.Fields(s)) >= 4 && len(strings.Fields(s)) <= 16 {
			if skip > 0 {
				skip--
				continue
			}
			out = append(out, s)
		}
	}
	if len(out) < n {
		t.Fatalf("only %d held-out sentences", len(out))
	}
	return out
}

// assemble speaks the sentences with one voice, 0.6 s of silence before, 1 s between and 0.5 s
// after, and returns 16 kHz samples with each sentence's true span.
func assemble(t *testing.T, voice string, sents []string) ([]float32, []truth) {
	const rate = 16000
	out := make([]float32, int(0.6*rate))
	var segs []truth
	for k, s := range sents {
		if k > 0 {
			out = append(out, make([]float32, rate)...)
		}
		x := trim(speak(t, voice, s))
		start := float64(len(out)) / rate
		out = append(out, x...)
		segs = append(segs, truth{start, float64(len(out)) / rate, s})
	}
	return append(out, make([]float32, rate/2)...), segs
}

func speak(t *testing.T, voice, text string) []float32 {
	wav := filepath.Join(t.TempDir(), "s.wav")
	cmd := exec.Command("espeak-ng", "-v", voice, "-w", wav, text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("espeak-ng -v %s: %v: %s", voice, err, out)
	}
	p, err := audio.LoadWAV(wav)
	if err != nil {
		t.Fatal(err)
	}
	return audio.Resample(p, 16000).Samples
}

// trim cuts leading and trailing silence (5 ms frames under 1% of the peak), as gen.py does.
func trim(x []float32) []float32 {
	var peak float32
	for _, v := range x {
		peak = max(peak, float32(math.Abs(float64(v))))
	}
	const hop = 80
	first, last := -1, -1
	for f := 0; (f+1)*hop <= len(x); f++ {
		var m float32
		for _, v := range x[f*hop : (f+1)*hop] {
			m = max(m, float32(math.Abs(float64(v))))
		}
		if m > 0.01*peak {
			if first < 0 {
				first = f
			}
			last = f
		}
	}
	if first < 0 {
		return nil
	}
	return x[first*hop : min(len(x), (last+1)*hop)]
}

type clip struct {
	name    string
	samples []float32
}

func nonSpeech() []clip {
	r := rand.New(rand.NewPCG(6, 6))
	n := 8 * 16000
	sil, noise, tone := make([]float32, n), make([]float32, n), make([]float32, n)
	for i := range n {
		noise[i] = float32(0.1 * r.NormFloat64())
		tone[i] = float32(0.3 * math.Sin(2*math.Pi*440*float64(i)/16000))
	}
	return []clip{{"silence", sil}, {"white noise", noise}, {"440 Hz tone", tone}}
}

var nonWord = regexp.MustCompile(`[^a-z' ]+`)

// normalize lowercases, turns hyphens into spaces and drops punctuation (the held-out text has
// no digits, so numbers need no mapping).
func normalize(s string) []string {
	s = nonWord.ReplaceAllString(strings.ReplaceAll(strings.ToLower(s), "-", " "), " ")
	var out []string
	for _, w := range strings.Fields(s) {
		if w = strings.Trim(w, "'"); w != "" {
			out = append(out, w)
		}
	}
	return out
}

// sentsRefs pairs the sentences as the clips speak them, two a clip: each clip's reference text.
func sentsRefs(sents []string) []string {
	var out []string
	for i := 0; i+1 < len(sents); i += 2 {
		out = append(out, sents[i]+" "+sents[i+1])
	}
	return out
}

func words(refs []string) int {
	n := 0
	for _, r := range refs {
		n += len(normalize(r))
	}
	return n
}

// werOf is the word error rate: word-level edit distance over reference words, summed.
func werOf(refs, hyps []string) float64 {
	errs, n := 0, 0
	for i := range refs {
		r, h := normalize(refs[i]), normalize(hyps[i])
		d := make([]int, len(h)+1)
		for j := range d {
			d[j] = j
		}
		for a := 1; a <= len(r); a++ {
			prev := d[0]
			d[0] = a
			for j := 1; j <= len(h); j++ {
				cost := 1
				if r[a-1] == h[j-1] {
					cost = 0
				}
				cur := min(d[j]+1, d[j-1]+1, prev+cost)
				prev, d[j] = d[j], cur
			}
		}
		errs += d[len(h)]
		n += len(r)
	}
	return float64(errs) / float64(max(1, n))
}

func TestWER(t *testing.T) {
	if w := werOf([]string{"The cat, sat on the mat."}, []string{"the cat sat on a mat"}); math.Abs(w-1.0/6) > 1e-9 {
		t.Fatalf("WER %v, want 1/6", w)
	}
}

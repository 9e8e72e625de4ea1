// Package pipeline runs one job end to end: decode the input's audio (media), find speech (vad),
// transcribe it with a loaded Whisper model, and write the sidecar files (sidecar).
package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/gob"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/verbatimhq/verbatim/media"
	"github.com/verbatimhq/verbatim/sidecar"
	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/vad"
	"github.com/verbatimhq/verbatim/whisper"
)

// ErrPermanent marks failures that retrying cannot fix (missing, corrupt or unsupported input).
var ErrPermanent = errors.New("permanent failure")

// Options configure a job.
type Options struct {
	Decode     whisper.Options
	Formats    []sidecar.Format // default srt, md
	OutDir     string           // "" = beside the input
	Force      bool             // redo even when the sidecars are current
	AudioTrack string           // media.Options.AudioTrack
	Shape      sidecar.ShapeOptions
	// MaxDuration caps the audio of one input (media.Options.MaxDuration); 0 = media's default.
	MaxDuration time.Duration
	// NoVAD transcribes the whole input instead of the speech that voice activity detection
	// finds (the VAD path keeps windows off silence and music, the main source of hallucinations).
	NoVAD bool
	VAD   vad.Options
	// FileProgress, if set, is called as the transcription of each input advances, from the
	// goroutine transcribing it.
	FileProgress func(input string, done, total time.Duration)
	// BatchSize is the most windows, from all the files in progress, that a Runner encodes and
	// decodes together (whisper.ManyOptions); 0 picks whisper's default for the backend (64 on
	// CUDA, 8 on Metal, 1 on the CPU). On CUDA it is reduced to what the free memory holds
	// (Runner.SetNotice is told).
	// It sizes batches only; the algorithm is Decode.Windows.
	BatchSize int
	// Summarize, if set, fills a transcript's summary, chapters and items before its sidecars
	// are written (package summarize; its fast, offline part: a language model's summary is a
	// stage of its own after the transcription). It is not part of the settings: the
	// transcription does not depend on it, and `transcribe summarize` redoes only the summary.
	Summarize func(t *sidecar.Transcript)
	// NoChapterFrames leaves the stills out of a video's note: by default, when the note has
	// chapters and the input has video, a frame at each chapter start is written into the folder
	// BASE.chapters beside the sidecars and shown under the chapter's heading. Like the summary,
	// not part of the settings.
	NoChapterFrames bool
}

// DefaultOptions are the options of `transcribe FILE` without flags: whisper.DefaultOptions,
// SRT and Markdown outputs beside the input, voice activity detection on with its defaults.
func DefaultOptions() Options {
	return Options{
		Decode:  whisper.DefaultOptions(),
		Formats: []sidecar.Format{sidecar.FormatSRT, sidecar.FormatMD},
		VAD:     vad.DefaultOptions(),
	}
}

// Outcome says what a job produced.
type Outcome struct {
	Input    string
	Outputs  []string
	Skipped  bool   // the sidecars were current; nothing was done
	Reason   string // why it was not skipped, or why it was
	Duration time.Duration
	Elapsed  time.Duration // wall time from opening the input to its transcript (shared with the files batched with it)
	Language string
	Segments int
	// Gaps are the stretches of speech the transcript does not cover (the engine's coverage
	// check), as the JSON sidecar lists them.
	Gaps []sidecar.Gap
	// Resumed is where the transcription started, in seconds of the input, when it resumed
	// from a checkpoint (Task.Resume); else 0.
	Resumed float64
	// Stored is the transcription, for writing the sidecars of another file with the same
	// content and settings without transcribing it again (Runner.Reuse); nil when skipped.
	Stored *Stored
	// Warnings are what went wrong without failing the file (a chapter still that could not be
	// had), each naming the file, for stderr and the log.
	Warnings []string
}

// NotTranscribed is how long the outcome's gaps last together.
func (o *Outcome) NotTranscribed() time.Duration {
	var d time.Duration
	for _, g := range o.Gaps {
		d += g.End - g.Start
	}
	return d
}

// Runner transcribes files with one loaded model. It is not safe for concurrent use (the model
// is not).
type Runner struct {
	m         *whisper.Model
	vad       *vad.Model // nil: no VAD
	modelName string
	modelSHA  string
	version   string
	notice    func(msg string)
	lanes     int
	moreVAD   []*vad.Model // more copies of the VAD, for first passes in parallel (AddVAD)
}

// AddVAD gives the runner more copies of its VAD (each on a backend of its own): Serve runs the
// first passes of the files it prepares ahead on as many goroutines as it has copies, in
// parallel with each other and with the transcription (a VAD pass over 10 minutes of audio was
// about 4 s of one core, as long as a GPU takes to transcribe an hour of it; about 0.7 s since
// the VAD's convolutions were grouped, cpu.Backend.Conv1D).
func (r *Runner) AddVAD(vs ...*vad.Model) { r.moreVAD = append(r.moreVAD, vs...) }

// SetNotice sets what is told when a run changes its batch, and why (a batch reduced to fit the
// device's free memory: whisper.ManyOptions.Notice); nil: nothing is.
func (r *Runner) SetNotice(f func(msg string)) { r.notice = f }

// SetLanes sets the batchers that share the runner's model (whisper.ManyOptions.Lanes; 0: the
// driver's default).
func (r *Runner) SetLanes(n int) { r.lanes = n }

// NewRunner prepares to run jobs with m, loaded from modelPath (hashed once here, for the
// provenance recorded in every JSON sidecar), and the voice activity detector v (nil: jobs run
// without VAD). version is the program version for provenance.
func NewRunner(m *whisper.Model, modelPath string, v *vad.Model, version string) (*Runner, error) {
	sum, err := hashPath(modelPath)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", modelPath, err)
	}
	return &Runner{m: m, vad: v, modelName: filepath.Base(modelPath), modelSHA: sum, version: version}, nil
}

// WithModel returns a Runner like r for m, another copy of r's model file (loaded on another
// device), and the voice activity detector v (nil: none), without hashing the file again. Each
// Runner is for one goroutine; Pool runs several.
func (r *Runner) WithModel(m *whisper.Model, v *vad.Model) *Runner {
	c := *r
	c.m, c.vad, c.moreVAD = m, v, nil
	return &c
}

// hashPath is the hex SHA-256 of a file, or of model.safetensors in a folder.
func hashPath(path string) (string, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, "model.safetensors")
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// OutputBase is the path of input's sidecars without the format extension: beside the input,
// or in outDir.
func OutputBase(input, outDir string) string {
	base := strings.TrimSuffix(filepath.Base(input), filepath.Ext(input))
	if outDir == "" {
		return filepath.Join(filepath.Dir(input), base)
	}
	return filepath.Join(outDir, base)
}

// runRecord is what a run records of its settings in the JSON sidecar's provenance, and what its
// fingerprint covers (with the model's hash and the subtitle shaping): every option that can
// change the outputs, taken from the option structs themselves (whisper.Options.MarshalJSON),
// not from a list kept by hand.
type runRecord struct {
	Decode      whisper.Options `json:"decode"`
	VAD         *vad.Options    `json:"vad"` // nil: off
	AudioTrack  string          `json:"audio_track"`
	MaxDuration time.Duration   `json:"max_duration_ns"`
	// BackendOptions are the backend's switches that change which kernels run or how they
	// round ("" when all are at their defaults); which backend ran is in Provenance.Backend.
	BackendOptions string `json:"backend_options"`
}

// settings is the record of o for a run on backend b, as the provenance's settings map.
func settings(o *Options, b tensor.Backend) (map[string]any, error) {
	backendOptions := ""
	if t, ok := b.(tensor.Tuned); ok {
		backendOptions = t.Settings()
	}
	return record(o, backendOptions)
}

// SettingsKey is the hex SHA-256 of everything besides a file's content that decides what a run
// with o writes: the model's hash, the run record (decoding, VAD, audio track, the backend's
// switches), the formats, the output folder and the subtitle shaping. Two runs with the same
// key on the same content write the same sidecars (a queue keys its jobs and stored results
// by the two).
func SettingsKey(o Options, modelSHA, backendOptions string) (string, error) {
	rec, err := record(&o, backendOptions)
	if err != nil {
		return "", err
	}
	data, err := json.Marshal(struct {
		Model   string           `json:"model"`
		Record  map[string]any   `json:"record"`
		Formats []sidecar.Format `json:"formats"`
		OutDir  string           `json:"out_dir"`
		Shape   sidecar.ShapeOptions
	}{modelSHA, rec, o.Formats, o.OutDir, o.Shape})
	if err != nil {
		return "", fmt.Errorf("settings key: %w", err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

// record is the record of o with the backend's switches, as the provenance's settings map.
func record(o *Options, backendOptions string) (map[string]any, error) {
	rec := runRecord{Decode: o.Decode, AudioTrack: o.AudioTrack, MaxDuration: o.MaxDuration, BackendOptions: backendOptions}
	if !o.NoVAD {
		v := o.VAD
		if v == (vad.Options{}) {
			v = vad.DefaultOptions()
		}
		rec.VAD = &v
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("record settings: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("record settings: %w", err)
	}
	return m, nil
}

// job is one input on its way: where its sidecars go and what they record.
type job struct {
	path     string
	opts     *Options
	base     string
	formats  []sidecar.Format
	prov     sidecar.Provenance
	out      *Outcome
	start    time.Time
	progress func(done, total time.Duration)

	info *media.Info // the input as probed when it was opened; nil until then

	// The VAD first pass when it ran ahead of the job's turn (Pool): vadDone, and its result.
	vadDone bool
	regions []whisper.Span
	vadErr  error
}

// outcome is the job's outcome, or err.
func (j *job) outcome(err error) (*Outcome, error) {
	if err != nil {
		return nil, err
	}
	return j.out, nil
}

// prepare identifies the input at path and checks its sidecars: the job reports Skipped when
// they are current and opts.Force is false.
func (r *Runner) prepare(path string, opts Options) (*job, error) {
	formats := opts.Formats
	if len(formats) == 0 {
		formats = []sidecar.Format{sidecar.FormatSRT, sidecar.FormatMD}
	}
	in, err := identify(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s: %w", ErrPermanent, path, media.ErrNotFound)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	set, err := settings(&opts, r.m.Backend())
	if err != nil {
		return nil, err
	}
	b := r.m.Backend()
	j := &job{
		path: path, opts: &opts, base: OutputBase(path, opts.OutDir), formats: formats,
		prov: sidecar.Provenance{
			Program:  "verbatim",
			Version:  r.version,
			Model:    sidecar.Model{Name: r.modelName, SHA256: r.modelSHA},
			Backend:  sidecar.Backend{Name: b.Name(), Device: b.Device()},
			Settings: set,
			Input:    in,
		},
		out: &Outcome{Input: path},
	}
	if !opts.Force {
		current, why := sidecar.Current(j.base, formats, &j.prov, opts.Shape)
		if current {
			j.out.Skipped, j.out.Reason = true, "sidecars are current (use --force to redo)"
			return j, nil
		}
		j.out.Reason = why
	}
	return j, nil
}

// open runs the VAD first pass (unless off) and opens the input's audio for transcription,
// completing d with the speech regions and the progress callback.
func (r *Runner) open(ctx context.Context, j *job, d *whisper.Options) (*media.Stream, error) {
	if j.start.IsZero() {
		j.start = time.Now()
	}
	mopts := j.mediaOptions()
	if r.vad != nil && !j.opts.NoVAD {
		if !j.vadDone {
			r.firstPass(ctx, j)
		}
		if j.vadErr != nil {
			return nil, j.vadErr
		}
		d.SpeechRegions = j.regions
		if d.SpeechRegions == nil {
			d.SpeechRegions = []whisper.Span{}
		}
	}
	st, err := openMedia(ctx, j.path, mopts)
	if err != nil {
		return nil, err
	}
	if p := j.progress; p != nil {
		// A stream's length is unknown to the engine: the container's duration stands in.
		hint := st.Info.Duration
		d.Progress = func(done, total time.Duration) {
			p(done, max(total, hint))
		}
	}
	return st, nil
}

func (j *job) mediaOptions() media.Options {
	return media.Options{AudioTrack: j.opts.AudioTrack, Language: j.opts.Decode.Language, MaxDuration: j.opts.MaxDuration}
}

// firstPass runs the VAD first pass for j (speech regions, streamed, so memory does not grow
// with the input) when the runner has a VAD and j wants it, and records its result in j.
func (r *Runner) firstPass(ctx context.Context, j *job) { r.firstPassWith(ctx, j, r.vad) }

// firstPassWith is firstPass with the VAD v (the runner's or a copy: AddVAD).
func (r *Runner) firstPassWith(ctx context.Context, j *job, v *vad.Model) {
	if v == nil || j.opts.NoVAD || j.vadDone {
		return
	}
	j.regions, j.vadErr = speech(ctx, v, j.path, j.mediaOptions(), j.opts.VAD)
	j.vadDone = true
}

// failed wraps a transcription error: permanent when the input is at fault, else named.
func (j *job) failed(err error) error {
	if media.IsPermanent(err) {
		return fmt.Errorf("%w: %w", ErrPermanent, err)
	}
	return fmt.Errorf("transcribe %s: %w", j.path, err)
}

// write writes the job's sidecars atomically from the transcription res of st.
func (r *Runner) write(j *job, st *media.Stream, res *whisper.Result) (*Outcome, error) {
	j.out.Elapsed = time.Since(j.start)
	j.info = st.Info
	return r.writeStored(j, &Stored{Result: res, Offset: st.StartOffset, Duration: st.Decoded()})
}

// Stored is a transcription kept for reuse (Outcome.Stored, Runner.Reuse): the engine's result
// and where the audio sat in its container. Its binary form (MarshalBinary) is what a queue
// keeps.
type Stored struct {
	Result   *whisper.Result
	Offset   time.Duration // the audio stream's start in its container
	Duration time.Duration // the audio decoded
}

// storedGob is Stored without its methods, for gob (which would call MarshalBinary again).
type storedGob Stored

// MarshalBinary encodes s.
func (s *Stored) MarshalBinary() ([]byte, error) {
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode((*storedGob)(s)); err != nil {
		return nil, fmt.Errorf("encode stored transcript: %w", err)
	}
	return b.Bytes(), nil
}

// UnmarshalBinary decodes what MarshalBinary encoded.
func (s *Stored) UnmarshalBinary(data []byte) error {
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode((*storedGob)(s)); err != nil {
		return fmt.Errorf("decode stored transcript: %w", err)
	}
	if s.Result == nil {
		return errors.New("decode stored transcript: no result")
	}
	return nil
}

// Reuse writes the sidecars of the file at path from s, a transcription of the same content
// with the same model and settings (the caller's claim: a queue keys them by content hash and
// settings), without transcribing it; the provenance names path's own identity. It reports
// Skipped when the sidecars are current and opts.Force is false.
func (r *Runner) Reuse(path string, opts Options, s *Stored) (*Outcome, error) {
	j, err := r.prepare(path, opts)
	if err != nil || j.out.Skipped {
		return j.outcome(err)
	}
	return r.writeStored(j, s)
}

// writeStored writes j's sidecars from s.
func (r *Runner) writeStored(j *job, s *Stored) (*Outcome, error) {
	res := s.Result
	out := j.out
	out.Duration = s.Duration
	out.Language = res.Language
	out.Segments = len(res.Segments)
	out.Stored = s

	t := Transcript(res, s.Offset)
	out.Gaps = t.Gaps
	t.Duration = s.Offset + out.Duration
	t.Provenance = j.prov
	if j.opts.Summarize != nil {
		j.opts.Summarize(&t)
	}
	wopts := sidecar.Options{Shape: j.opts.Shape, NoChapterFrames: j.opts.NoChapterFrames}
	if j.opts.OutDir != "" {
		if rel, err := filepath.Rel(j.opts.OutDir, j.path); err == nil {
			wopts.Markdown.MediaHref = filepath.ToSlash(rel)
		}
	}
	dir := filepath.Dir(j.base)
	if j.opts.OutDir != "" { // made when it is not there yet, as openai/whisper's --output_dir is
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("output folder: %w", err)
		}
	}
	_, _ = sidecar.CleanTemp(dir)
	frames := chapterFrames(j, &wopts)
	var err error
	out.Outputs, err = sidecar.WriteAll(j.base, &t, j.formats, wopts)
	if err != nil {
		return nil, err
	}
	if frames != nil {
		frames.Done()
	}
	return out, nil
}

// chapterFrames sets wopts.ChapterImages to write the stills of j's video at its chapter starts
// into BASE.chapters (media.NoteFrames), unless the options leave them out; nil when no note is
// written. Its Done then removes the stills the new note does not show (all with
// NoChapterFrames). Stills that cannot be had are the outcome's warnings.
func chapterFrames(j *job, wopts *sidecar.Options) *media.NoteFrames {
	if !slices.Contains(j.formats, sidecar.FormatMD) {
		return nil
	}
	nf := &media.NoteFrames{Path: j.path, Dir: j.base + ".chapters", Info: j.info, Opts: j.mediaOptions(),
		Warn: func(msg string) { j.out.Warnings = append(j.out.Warnings, msg) }}
	if !j.opts.NoChapterFrames {
		wopts.ChapterImages = nf.Images
	}
	return nf
}

// openMedia opens path's audio, marking errors retrying cannot fix as permanent.
func openMedia(ctx context.Context, path string, o media.Options) (*media.Stream, error) {
	st, err := media.Open(ctx, path, o)
	if err != nil {
		if media.IsPermanent(err) {
			return nil, fmt.Errorf("%w: %w", ErrPermanent, err)
		}
		return nil, err
	}
	return st, nil
}

// speech runs voice activity detection over path's audio and returns the speech regions, in
// seconds of the decoded audio.
func speech(ctx context.Context, v *vad.Model, path string, mo media.Options, vo vad.Options) ([]whisper.Span, error) {
	st, err := openMedia(ctx, path, mo)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	vs := v.NewStream()
	defer vs.Close()
	var probs []float32
	buf := make([]float32, media.Rate)
	for {
		n, rerr := st.Read(buf)
		if n > 0 {
			p, err := vs.Push(buf[:n])
			if err != nil {
				return nil, fmt.Errorf("vad %s: %w", path, err)
			}
			probs = append(probs, p...)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			if media.IsPermanent(rerr) {
				return nil, fmt.Errorf("%w: %w", ErrPermanent, rerr)
			}
			return nil, rerr
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	p, err := vs.Flush()
	if err != nil {
		return nil, fmt.Errorf("vad %s: %w", path, err)
	}
	probs = append(probs, p...)
	segs, err := vad.SegmentsFromProbs(probs, vo)
	if err != nil {
		return nil, fmt.Errorf("vad %s: %w", path, err)
	}
	spans := make([]whisper.Span, len(segs))
	for i, g := range segs {
		spans[i] = whisper.Span{Start: g.Start, End: g.End}
	}
	return spans, nil
}

// identify returns the identity of the file at path: size, modification time and SHA-256.
func identify(path string) (sidecar.Input, error) {
	f, err := os.Open(path)
	if err != nil {
		return sidecar.Input{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return sidecar.Input{}, err
	}
	if fi.IsDir() {
		return sidecar.Input{}, fmt.Errorf("%w: is a folder", ErrPermanent)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sidecar.Input{}, err
	}
	return sidecar.Input{
		Name:    filepath.Base(path),
		Size:    fi.Size(),
		ModTime: fi.ModTime(),
		SHA256:  hex.EncodeToString(h.Sum(nil)),
	}, nil
}

// Transcript converts the engine's result to the sidecar writer's input, shifting every time by
// offset (the audio stream's start within its container).
func Transcript(res *whisper.Result, offset time.Duration) sidecar.Transcript {
	dur := func(s float64) time.Duration {
		return offset + time.Duration(s*float64(time.Second)).Round(time.Millisecond)
	}
	t := sidecar.Transcript{Language: res.Language, LanguageProbs: res.LanguageProbs}
	for _, rm := range res.Removed {
		t.Removed = append(t.Removed, sidecar.Removal{Start: dur(rm.Start), End: dur(rm.End), Text: rm.Text, Reason: rm.Reason})
	}
	t.Retries = res.Retries
	for _, g := range res.Gaps {
		t.Gaps = append(t.Gaps, sidecar.Gap{Start: dur(g.Start), End: dur(g.End), Reason: g.Reason, Speech: g.Speech, Attempts: g.Attempts})
	}
	for _, s := range res.Segments {
		seg := sidecar.Segment{
			ID: s.ID, Start: dur(s.Start), End: dur(s.End), Text: s.Text, Language: s.Language,
			AvgLogProb: s.AvgLogProb, NoSpeechProb: s.NoSpeechProb,
			CompressionRatio: s.CompressionRatio, Temperature: s.Temperature,
		}
		for _, tk := range s.Tokens {
			st := sidecar.Token{ID: tk.ID, Text: tk.Text, P: tk.P}
			if tk.Start != 0 || tk.End != 0 {
				st.Start, st.End = dur(tk.Start), dur(tk.End)
			}
			seg.Tokens = append(seg.Tokens, st)
		}
		for _, w := range s.Words {
			seg.Words = append(seg.Words, sidecar.Word{Text: w.Text, Start: dur(w.Start), End: dur(w.End), P: w.P})
		}
		t.Segments = append(t.Segments, seg)
	}
	return t
}

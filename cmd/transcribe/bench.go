package main

import (
	"cmp"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/verbatimhq/verbatim/cuda"
	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/whisper"
	"github.com/verbatimhq/verbatim/whisper/weights"
)

type benchCmd struct {
	Model string `help:"Model to measure: a name (mini, an installed catalog model) or a ggml file's path, as run's --model (default: a random-weight model of --arch/--dtype, written to a temp folder)." placeholder:"NAME|PATH"`
	Arch  string `default:"tiny" help:"Architecture of the random-weight model."`
	DType string `name:"dtype" default:"f16" help:"Weight type of the random-weight model."`

	backendFlags `embed:""`

	EncodeBatch []int  `default:"1" help:"Windows per encoder call (several values allowed: 1,16,64)."`
	DecodeBatch []int  `default:"1" help:"Sequences per decoder step (several values allowed)."`
	Steps       int    `default:"64" help:"Decoder steps timed per iteration."`
	Iterations  int    `default:"3" help:"Timed iterations (the median is reported)."`
	Profile     bool   `help:"On a CUDA device: print the GPU time per op kind after each row (adds timing overhead)."`
	E2E         bool   `name:"e2e" help:"End to end instead, on --windows x 30 s of synthetic input; reports the real-time factor (see --decode)."`
	Windows     int    `default:"128" help:"With --e2e: 30 s windows in the synthetic input."`
	Tokens      int    `default:"100" help:"With --e2e: tokens per window (greedy: exactly, after a 4-token prompt; default: at most)."`
	CPUProfile  string `name:"cpu-profile" hidden:"" help:"Write a Go CPU profile of the run to this file (the host side: where a GPU run's time goes besides the device)." placeholder:"FILE"`
	Lanes       int    `help:"With --e2e --decode default: the driver's lanes, batchers that share the device so that one's host work runs while it computes another's batch (default 1; more measured slower on an H200: docs/performance.md)."`
	ForcedAlone bool   `help:"With --e2e --decode default: word timing's forced passes one window at a time, as before 2026-12-07, instead of batched (for comparison)."`
	EncodeChunk int    `hidden:"" help:"With --e2e --decode default: windows a GPU encodes at a time (default 8)." placeholder:"N"`
	Decode      string `enum:"default,greedy" default:"default" help:"With --e2e: default = the transcription driver with the default decoding (beam search 5, word timestamps, guard, coverage check, language detection; fallback's bookkeeping without its re-decodes) on --encode-batch noise inputs transcribed together, as the CLI does with that many files; greedy = bare batched greedy decoding of random log-mel windows, --encode-batch windows a session (default: ${default})."`
}

func (c *benchCmd) Run(e *env) error {
	if c.EncodeChunk < 0 {
		return fmt.Errorf("--encode-chunk %d: want 0 (the default, 8 windows) or more", c.EncodeChunk)
	}
	choice, err := c.choice()
	if err != nil {
		return err
	}
	choice.cuda.Profile = c.Profile
	if c.CPUProfile != "" {
		f, err := os.Create(c.CPUProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpu-profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	path := c.Model
	if path != "" {
		p, err := resolveModel(path)
		if err != nil {
			return err
		}
		path = p
	} else {
		cfg, err := weights.Arch(c.Arch)
		if err != nil {
			return err
		}
		dt, err := tensor.ParseDType(c.DType)
		if err != nil {
			return err
		}
		dir, err := os.MkdirTemp("", "verbatim-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		path = filepath.Join(dir, c.Arch+".bin")
		if _, err := whisper.WriteSynth(path, whisper.SynthOptions{Config: cfg, DType: dt, Seed: 1, Format: weights.GGML}); err != nil {
			return err
		}
	}
	b, err := openBackend(choice, e.log)
	if err != nil {
		return err
	}
	defer b.Close()
	m, err := whisper.Load(path, b)
	if err != nil {
		return err
	}
	defer m.Close()

	defer printMemory(path)
	fmt.Printf("device:  %s\n", b.Device())
	if r, ok := b.(tensor.MemoryReporter); ok {
		// what the driver's batch is fitted to (less the pools a run gives back first)
		if free, total, err := r.DeviceMemory(); err != nil {
			fmt.Printf("devmem:  not known: %v\n", err)
		} else {
			fmt.Printf("devmem:  %.1f GB free of %.1f GB with the model loaded\n", float64(free)/1e9, float64(total)/1e9)
		}
	}
	if t, ok := b.(tensor.Tuned); ok {
		fmt.Printf("options: %s\n", cmp.Or(t.Settings(), "defaults"))
	}
	fmt.Printf("host:    %s/%s, %d CPUs, %s, verbatim %s\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), revision())
	types, err := weightTypes(path, b)
	if err != nil {
		return err
	}
	fmt.Printf("model:   %s (%s)\n", filepath.Base(path), m.Arch)
	fmt.Printf("weights: %s\n", types)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	if c.E2E && c.Decode == "default" {
		// The figure users get: the driver, DefaultOptions (fallback's re-decodes off, window
		// tokens capped); windows decoded counts the coverage check's retries too.
		fmt.Fprintln(w, "decoding\tinputs\twindows\ttokens/window (cap)\twindows decoded\tsegments\twords\twall s\treal-time factor\tdecoded windows x 30 s / wall\t")
		for _, bs := range c.EncodeBatch {
			r, err := whisper.BenchE2E(e.ctx, m, whisper.E2EOptions{Windows: c.Windows, Tokens: c.Tokens, Batch: bs, Default: true, Lanes: c.Lanes, ForcedAlone: c.ForcedAlone, EncodeChunk: c.EncodeChunk})
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "default\t%d\t%d\t%d\t%d\t%d\t%d\t%.2f\t%.0fx\t%.0fx\t\n", r.Batch, r.Windows, r.Tokens, r.Decoded, r.Segments, r.Words, r.WallSeconds, r.RTF, r.DecodedRTF)
			w.Flush()
			printPhases(r)
			printGraphs(b)
			if p, ok := b.(interface{ Profile() string }); ok && c.Profile {
				fmt.Printf("GPU time by op (warm-up and timed run):\n%s", p.Profile())
			}
		}
		return nil
	}
	if c.E2E {
		// decode s = record s (host: the steps' ops) + pick s (waiting for the device, then the
		// greedy picks: made there, or the logits copied back and picked on the host).
		fmt.Fprintln(w, "batch\twindows\ttokens/window\twall s\tencode s\tdecode s\treal-time factor\ttokens/s\trecord s\tpick s\t")
		for _, bs := range c.EncodeBatch {
			r, err := whisper.BenchE2E(e.ctx, m, whisper.E2EOptions{Windows: c.Windows, Tokens: c.Tokens, Batch: bs})
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "%d\t%d\t%d\t%.2f\t%.2f\t%.2f\t%.0fx\t%.0f\t%.2f\t%.2f\t\n", r.Batch, r.Windows, r.Tokens, r.WallSeconds,
				r.EncodeSeconds, r.DecodeSeconds, r.RTF, r.TokensPerSecond, r.RecordSeconds, r.ReadSeconds)
			w.Flush()
			printGraphs(b)
			if p, ok := b.(interface{ Profile() string }); ok && c.Profile {
				fmt.Printf("GPU time by op (warm-up and timed run):\n%s", p.Profile())
			}
		}
		return nil
	}
	fmt.Fprintln(w, "encode batch\tdecode batch\tencoder ms/window\tdecode ms/token\tdecode tokens/s\t")
	n := max(len(c.EncodeBatch), len(c.DecodeBatch))
	for i := range n {
		eb := c.EncodeBatch[min(i, len(c.EncodeBatch)-1)]
		db := c.DecodeBatch[min(i, len(c.DecodeBatch)-1)]
		r, err := whisper.Bench(e.ctx, m, whisper.BenchOptions{EncodeBatch: eb, DecodeBatch: db, DecodeSteps: c.Steps, Iterations: c.Iterations})
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%d\t%d\t%.1f\t%.2f\t%.0f\t\n", eb, db, r.EncoderMsPerWindow, r.DecodeMsPerToken,
			float64(db)*1000/r.DecodeMsPerToken)
		w.Flush()
		if p, ok := b.(interface{ Profile() string }); ok && c.Profile {
			fmt.Printf("GPU time by op (all iterations, encoder and decoder):\n%s", p.Profile())
		}
	}
	return nil
}

// weightTypes describes the dtypes of a model file's tensors, most parameters first, and what
// backend b keeps each one's matrices as: "q5_0 70.7M params in 147 tensors (kept as q5_0),
// f32 1.9M in 95 (kept as f32)". The label comes from the file, not from --dtype, which only
// applies to the random-weight model.
func weightTypes(path string, b tensor.Backend) (string, error) {
	f, err := weights.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	type tally struct {
		dt      tensor.DType
		params  int64
		tensors int
	}
	var ts []*tally
	by := map[tensor.DType]*tally{}
	for _, name := range f.Names {
		t := f.Tensors[name]
		a := by[t.DType]
		if a == nil {
			a = &tally{dt: t.DType}
			by[t.DType] = a
			ts = append(ts, a)
		}
		a.params += int64(tensor.Numel(t.Shape))
		a.tensors++
	}
	slices.SortStableFunc(ts, func(x, y *tally) int { return cmp.Compare(y.params, x.params) })
	var parts []string
	for i, a := range ts {
		unit := " params in %d tensors"
		if i > 0 {
			unit = " in %d"
		}
		parts = append(parts, fmt.Sprintf("%s %.1fM"+unit+" (kept as %s)", a.dt, float64(a.params)/1e6, a.tensors, keptAs(b, a.dt)))
	}
	return strings.Join(parts, ", "), nil
}

// keptAs is the dtype backend b stores a weight matrix of dtype dt in, found by uploading one
// zero row (BF16 may still become F32 on the CPU where a model's values do not fit in F16).
func keptAs(b tensor.Backend, dt tensor.DType) (kept string) {
	if !b.Capabilities().Supports(dt) {
		return "unsupported"
	}
	defer func() {
		if recover() != nil {
			kept = "?"
		}
	}()
	n := dt.BlockSize()
	t := b.Upload(dt, make([]byte, dt.RowBytes(n)), 1, n)
	defer b.Free(t)
	return t.DType.String()
}

// revision is the VCS revision the binary was built from, if recorded.
func revision() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return version
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev == "" {
		return version
	}
	return fmt.Sprintf("%s (%s%s, %s)", version, rev[:min(12, len(rev))], dirty, time.Now().Format("2006-01-02"))
}

// printGraphs prints what the decoder steps' CUDA graphs did so far (cuda.GraphStats): a run
// whose steps rarely repeat (a batch that shrinks as windows end) captures graphs it never
// replays.
func printGraphs(b tensor.Backend) {
	if g, ok := b.(interface{ GraphStats() cuda.GraphStats }); ok {
		st := g.GraphStats()
		fmt.Printf("graphs:  %d launched from the cache, %d captured, %d run as plain ops the first time they were seen, %d run as plain ops otherwise, %d refused (pieces of steps, since start)\n", st.Launched, st.Captured, st.Once, st.Plain, st.Failed)
		if len(st.Timed) > 0 { // graphtimes=on
			var parts []string
			for _, k := range slices.Sorted(maps.Keys(st.Timed)) {
				n := st.Timed[k]
				parts = append(parts, fmt.Sprintf("%s: %d in %.3f s (%.3f ms each)", k, n, st.Ms[k]/1e3, st.Ms[k]/float64(n)))
			}
			fmt.Printf("graph GPU times (from the first op to the last of a step's decoder, since start): %s\n", strings.Join(parts, ", "))
		}
	}
}

// printPhases prints where a default-decoding run's wall time went, phase by phase.
func printPhases(r *whisper.E2EResult) {
	var b strings.Builder
	for i, p := range r.Phases {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %.2f", p.Name, p.Seconds)
	}
	lanes := ""
	if r.Lanes > 1 {
		lanes = fmt.Sprintf(", summed over %d lanes that overlap", r.Lanes)
	}
	fmt.Printf("phases (s of %.2f%s): %s\n", r.WallSeconds, lanes, b.String())
	for _, n := range r.Notices {
		fmt.Printf("notice:  %s\n", n)
	}
	if r.Encoded > 0 {
		fmt.Printf("encoder: %d windows encoded (language detection's included), %d encoder outputs kept from detection\n", r.Encoded, r.Reused)
	}
	if r.Sessions > 0 && r.Steps > 0 {
		fmt.Printf("decoder: %d sessions of %.1f windows on average, %d steps of %.1f sequences on average\n",
			r.Sessions, float64(r.SessionWindows)/float64(r.Sessions), r.Steps, float64(r.StepRows)/float64(r.Steps))
	}
	if r.ForcedPasses > 0 {
		fmt.Printf("word timing: %d forced passes in %d decoder passes\n", r.ForcedPasses, r.ForcedBatches)
	}
}

// printMemory prints the run's peak resident memory beside the model file's size (on the CPU
// the weights are most of it; issue 19's bar is 1.3x the file plus the KV caches).
func printMemory(model string) {
	peak, ok := peakRSS()
	if !ok {
		return
	}
	line := fmt.Sprintf("memory:  peak resident %.1f MB", float64(peak)/1e6)
	if fi, err := os.Stat(model); err == nil {
		line += fmt.Sprintf(" (the model file %.1f MB)", float64(fi.Size())/1e6)
	}
	fmt.Println(line)
}

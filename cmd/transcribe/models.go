package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/verbatimhq/verbatim/models"
	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/whisper"
	"github.com/verbatimhq/verbatim/whisper/weights"
)

type modelsCmd struct {
	List   listCmd   `cmd:"" help:"Show installed models (size, SHA-256, path) and the models that can be pulled."`
	Pull   pullCmd   `cmd:"" help:"Download a published model into the models folder (resumable, checksum-verified)."`
	Verify verifyCmd `cmd:"" help:"Re-hash installed models against the published checksums and check their tensors."`
	Synth  synthCmd  `cmd:"" help:"Write a random-weight model (for tests and benchmarks; no download needed)."`
}

// resolveModel turns the --model argument into a model file or folder: an existing path as
// given, else a model NAME in the models folder, else (empty argument) the default model.
// Errors say what to pull and how (see models.Resolve).
func resolveModel(name string) (string, error) {
	dir, derr := models.Dir()
	if derr == nil {
		return models.Resolve(name, dir)
	}
	if _, err := os.Stat(name); name != "" && err == nil {
		return name, nil // a path needs no models folder
	}
	return "", derr
}

type listCmd struct{}

func (c *listCmd) Run(e *env) error {
	dir, err := models.Dir()
	if err != nil {
		return err
	}
	have, err := models.Installed(dir)
	if err != nil {
		return fmt.Errorf("models folder %s: %w", dir, err)
	}
	fmt.Printf("Models folder: %s\n\n", dir)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	installed := map[string]string{} // catalog name -> state shown in the known list
	if len(have) == 0 {
		fmt.Fprintln(tw, "Installed: none (`transcribe models pull NAME` installs one)")
	} else {
		fmt.Fprintln(tw, "INSTALLED\tSIZE\tSHA256\tCHECKSUM\tPATH")
		for _, m := range have {
			sum, err := models.Hash(e.ctx, m.Path)
			if err != nil {
				return err
			}
			check := "not in the table"
			if m.Known {
				check, installed[m.Entry.Name] = "matches", "yes"
				if m.Size != m.Entry.Size || sum != m.Entry.SHA256 {
					check, installed[m.Entry.Name] = "MISMATCH", "yes, but its checksum does not match"
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.Name, models.HumanSize(m.Size), sum, check, m.Path)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Println()
	tw = tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KNOWN\tSIZE\tINSTALLED")
	for _, k := range models.Catalog {
		state := "no"
		if st, ok := installed[k.Name]; ok {
			state = st
		} else if fi, err := os.Stat(models.PartialPath(dir, k)); err == nil {
			state = fmt.Sprintf("partial (%s of %s; pull resumes it)", models.HumanSize(fi.Size()), models.HumanSize(k.Size))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", k.Name, models.HumanSize(k.Size), state)
	}
	return tw.Flush()
}

type pullCmd struct {
	Name    string `arg:"" help:"Model to download, as shown by 'transcribe models list' (large-v3, large-v3-turbo, small.en, ...)."`
	URL     string `name:"url" placeholder:"URL" help:"Download from this address instead (a mirror); the file is still checked against the published checksum."`
	BaseURL string `name:"base-url" hidden:"" env:"VERBATIM_MODELS_BASE_URL" help:"Folder address the model's file name is appended to (local mirrors, tests)."`
}

func (c *pullCmd) Run(e *env) error {
	ent, ok := models.Lookup(c.Name)
	if !ok {
		return fmt.Errorf("%w %q: `transcribe models list` shows the models that can be pulled", models.ErrUnknown, c.Name)
	}
	dir, err := models.Dir()
	if err != nil {
		return err
	}
	bar := newDownloadBar(e.tty, ent)
	res, err := models.Pull(e.ctx, dir, ent, models.PullOptions{
		URL: c.URL, BaseURL: c.BaseURL, UserAgent: "verbatim/" + version, Progress: bar.update,
	})
	bar.done()
	if err != nil {
		return err
	}
	switch {
	case res.AlreadyInstalled:
		fmt.Printf("%s is already installed: %s (`transcribe models verify %s` checks it)\n", ent.Name, res.Path, ent.Name)
	case res.Resumed > 0:
		fmt.Printf("installed %s (%s, resumed at %s, sha256 verified): %s\n", ent.Name, models.HumanSize(ent.Size),
			models.HumanSize(res.Resumed), res.Path)
	default:
		fmt.Printf("installed %s (%s, sha256 verified): %s\n", ent.Name, models.HumanSize(ent.Size), res.Path)
	}
	return nil
}

// downloadBar shows a byte progress bar on a terminal, and one line per start or restart
// otherwise (so logs show that something is happening).
type downloadBar struct {
	bar   *progressbar.ProgressBar
	ent   models.Entry
	tty   bool
	begun bool
}

func newDownloadBar(tty bool, ent models.Entry) *downloadBar {
	return &downloadBar{ent: ent, tty: tty}
}

func (d *downloadBar) update(done, total int64) {
	if !d.tty {
		if !d.begun || done == 0 {
			what := "downloading"
			if done > 0 {
				what = "resuming at " + models.HumanSize(done) + " of"
			}
			fmt.Fprintf(os.Stderr, "%s %s (%s)\n", what, d.ent.Name, models.HumanSize(total))
		}
		d.begun = true
		return
	}
	if d.bar == nil {
		d.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(os.Stderr),
			progressbar.OptionSetDescription(d.ent.Name),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowCount(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	_ = d.bar.Set64(done)
}

func (d *downloadBar) done() {
	if d.bar != nil {
		_ = d.bar.Exit()
		fmt.Fprintln(os.Stderr)
	}
}

type verifyCmd struct {
	Names []string `arg:"" optional:"" name:"name" help:"Models to check (default: every installed model)."`
}

func (c *verifyCmd) Run(e *env) error {
	dir, err := models.Dir()
	if err != nil {
		return err
	}
	var targets []models.Model
	if len(c.Names) == 0 {
		if targets, err = models.Installed(dir); err != nil {
			return fmt.Errorf("models folder %s: %w", dir, err)
		}
		if len(targets) == 0 {
			fmt.Printf("no models installed in %s\n", dir)
			return nil
		}
	}
	for _, n := range c.Names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "ggml-"), ".bin")
		m := models.Model{Name: base, Path: filepath.Join(dir, "ggml-"+base+".bin")}
		m.Entry, m.Known = models.Lookup(base)
		targets = append(targets, m)
	}
	bad := 0
	for _, m := range targets {
		msg, err := verifyOne(e, m)
		if e.ctx.Err() != nil {
			return fmt.Errorf("interrupted: %w", e.ctx.Err())
		}
		status := "OK"
		if err != nil {
			status, msg = "BAD", err.Error()
			bad++
		}
		fmt.Printf("%-3s  %s: %s\n", status, m.Name, msg)
	}
	if bad > 0 {
		return fmt.Errorf("%d of %d models failed verification", bad, len(targets))
	}
	return nil
}

// verifyOne checks one model: size and SHA-256 against the table when it is a known model, then
// that the engine can open it (header, every tensor's name, shape and type).
func verifyOne(e *env, m models.Model) (string, error) {
	if _, err := os.Stat(m.Path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if m.Known {
				return "", fmt.Errorf("not installed (`transcribe models pull %s`)", m.Name)
			}
			return "", fmt.Errorf("not installed, and not a known model")
		}
		return "", err
	}
	if m.Known {
		if err := models.Verify(e.ctx, m.Path, m.Entry); err != nil {
			return "", err
		}
	}
	f, err := weights.Open(m.Path)
	if err != nil {
		return "", err
	}
	f.Close()
	if !m.Known {
		return "tensors valid; not a published model, so no checksum to compare (" + m.Path + ")", nil
	}
	return "sha256 matches, tensors valid (" + m.Path + ")", nil
}

type synthCmd struct {
	Arch   string `required:"" help:"Architecture: micro, mini, tiny, tiny.en, base, base.en, small, small.en, medium, medium.en, large-v1, large-v2, large-v3, large-v3-turbo."`
	DType  string `name:"dtype" default:"f16" help:"Weight type: f32, f16 (both formats), q8_0, q5_0, q5_1, q4_0 (ggml only)."`
	Seed   uint64 `default:"1" help:"Random seed: the same seed gives the same weights in either format."`
	Format string `default:"ggml" enum:"ggml,safetensors" help:"ggml (whisper.cpp .bin) or safetensors (model.safetensors + config.json)."`
	Output string `short:"o" required:"" type:"path" help:"Output file (ggml), or .safetensors file or folder (safetensors)." placeholder:"PATH"`
}

func (c *synthCmd) Run(e *env) error {
	cfg, err := weights.Arch(c.Arch)
	if err != nil {
		return err
	}
	dt, err := tensor.ParseDType(c.DType)
	if err != nil {
		return err
	}
	format := weights.GGML
	if c.Format == "safetensors" {
		format = weights.Safetensors
	}
	start := time.Now()
	out, err := whisper.WriteSynth(c.Output, whisper.SynthOptions{Config: cfg, DType: dt, Seed: c.Seed, Format: format})
	if err != nil {
		return err
	}
	fmt.Printf("wrote %s: %s, %s, seed %d, %d parameters (%s)\n", out, c.Arch, dt, c.Seed,
		cfg.ParamCount(), time.Since(start).Round(time.Millisecond))
	return nil
}

package sidecar

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/verbatimhq/verbatim/durable"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Format is an output format; its value is the file extension.
type Format string

// The formats WriteAll writes.
const (
	FormatSRT  Format = "srt"
	FormatVTT  Format = "vtt"
	FormatTXT  Format = "txt"
	FormatJSON Format = "json"
	FormatMD   Format = "md"
)

// Formats lists every format, in the order WriteAll writes them.
var Formats = []Format{FormatSRT, FormatVTT, FormatTXT, FormatMD, FormatJSON}

var (
	// ErrFormat is wrapped by errors about unknown format names.
	ErrFormat = errors.New("unknown output format")
	// ErrSchema is wrapped by ReadDocument's error for a JSON sidecar of another schema version.
	ErrSchema = errors.New("unsupported sidecar schema")
)

// ParseFormats reads a comma-separated list such as "srt,md" (spaces and case ignored,
// duplicates dropped).
func ParseFormats(s string) ([]Format, error) {
	var out []Format
	for f := range strings.SplitSeq(s, ",") {
		f = strings.ToLower(strings.TrimSpace(f))
		if f == "" {
			continue
		}
		if !slices.Contains(Formats, Format(f)) {
			return nil, fmt.Errorf("%w %q (want %s)", ErrFormat, f, formatList())
		}
		if !slices.Contains(out, Format(f)) {
			out = append(out, Format(f))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: none given (want %s)", ErrFormat, formatList())
	}
	return out, nil
}

func formatList() string {
	s := make([]string, len(Formats))
	for i, f := range Formats {
		s[i] = string(f)
	}
	return strings.Join(s, ",")
}

// Options configure WriteAll.
type Options struct {
	Shape    ShapeOptions
	Markdown MarkdownOptions
	Perm     os.FileMode // of the written files; 0 = 0644
	// ChapterImages, if set, is called before anything is written when the transcript has
	// chapters, with their starts; it returns each chapter's image (Chapter.Image: relative to the
	// sidecars' folder, "" for none), which the note and the JSON then show.
	ChapterImages func(starts []time.Duration) []string
	// NoChapterFrames is recorded in the JSON (DocProvenance) when the note is to show no stills.
	NoChapterFrames bool
}

// fingerprintVersion changes when the meaning of the fingerprint's inputs changes.
const fingerprintVersion = 1

// Fingerprint identifies everything besides the input that decides the sidecars' content: the
// model's hash, the settings map and the shaping options (defaults filled in). It is a hex
// SHA-256 of their JSON; settings that JSON cannot encode are an error.
func Fingerprint(p *Provenance, shape ShapeOptions) (string, error) {
	settings := p.Settings
	if settings == nil {
		settings = map[string]any{}
	}
	data, err := json.Marshal(struct {
		V        int            `json:"v"`
		Model    string         `json:"model"`
		Settings map[string]any `json:"settings"`
		Shape    ShapeOptions   `json:"shape"`
	}{fingerprintVersion, p.Model.SHA256, settings, shape.withDefaults()})
	if err != nil {
		return "", fmt.Errorf("fingerprint settings: %w", err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

// now is the clock of WriteAll and CleanTemp, for tests.
var now = time.Now

// WriteAll writes the sidecars of t in formats to base+"."+format (base is the output folder
// and the input's name without extension) and returns their paths. The JSON sidecar is always
// written, whether asked for or not: it records the run (provenance, settings fingerprint, the
// formats written) and is what Current reads. Provenance.Created is set to now when zero.
//
// Everything is rendered in memory first, so a render error writes nothing. Then each file is
// written atomically (WriteFile), the JSON last: a crash part-way leaves some sidecars new and
// some old, and the JSON still describes the previous run, so Current says the outputs are not
// current and the next run redoes them. A crash can leave a temp file (TempPrefix) behind; the
// next run or the watcher removes those with CleanTemp.
func WriteAll(base string, t *Transcript, formats []Format, opts Options) ([]string, error) {
	outs := make([]Format, 0, len(formats)+1)
	for _, f := range formats {
		if !slices.Contains(Formats, f) {
			return nil, fmt.Errorf("write %s: %w %q", base, ErrFormat, f)
		}
		if f != FormatJSON && !slices.Contains(outs, f) {
			outs = append(outs, f)
		}
	}
	outs = append(outs, FormatJSON)
	tc := *t
	if opts.ChapterImages != nil && len(tc.Chapters) > 0 {
		starts := make([]time.Duration, len(tc.Chapters))
		for i, c := range tc.Chapters {
			starts[i] = c.Start
		}
		imgs := opts.ChapterImages(starts)
		tc.Chapters = slices.Clone(tc.Chapters)
		for i := range tc.Chapters {
			tc.Chapters[i].Image = ""
			if i < len(imgs) {
				tc.Chapters[i].Image = imgs[i]
			}
		}
	}
	if tc.Provenance.Created.IsZero() {
		tc.Provenance.Created = now().Round(time.Second)
	}
	fp, err := Fingerprint(&tc.Provenance, opts.Shape)
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", base, err)
	}
	data := make([][]byte, len(outs))
	for i, f := range outs {
		if f == FormatJSON {
			doc := NewDocument(&tc, fp, outs)
			doc.Provenance.Media = opts.Markdown.MediaHref
			doc.Provenance.NoChapterFrames = opts.NoChapterFrames
			if doc.Provenance.Media == "" {
				doc.Provenance.Media = tc.Provenance.Input.Name
			}
			data[i], err = doc.Marshal()
		} else {
			data[i], err = Render(&tc, f, opts)
		}
		if err != nil {
			return nil, fmt.Errorf("render %s.%s: %w", base, f, err)
		}
	}
	perm := opts.Perm
	if perm == 0 {
		perm = 0o644
	}
	paths := make([]string, 0, len(outs))
	for i, f := range outs {
		p := base + "." + string(f)
		if err := WriteFile(p, data[i], perm); err != nil {
			return paths, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// Render renders t in format f (srt, vtt, txt or md; the JSON sidecar is WriteAll's, with the
// run's record) in memory, as WriteAll writes it.
func Render(t *Transcript, f Format, opts Options) ([]byte, error) {
	switch f {
	case FormatSRT:
		return SRT(Shape(t, opts.Shape))
	case FormatVTT:
		return VTT(Shape(t, opts.Shape))
	case FormatTXT:
		return TXT(t), nil
	case FormatMD:
		return Markdown(t, opts.Markdown), nil
	}
	return nil, fmt.Errorf("%w %q", ErrFormat, f)
}

// Current reports whether the sidecars at base are current for a run with provenance p and
// shaping options shape: the JSON sidecar exists, was made from the same input (Input.Same) with
// the same fingerprint, lists every requested format among its outputs, and those files exist.
// When they are not current, the reason says why (for logs). It only reads.
func Current(base string, formats []Format, p *Provenance, shape ShapeOptions) (bool, string) {
	jsonPath := base + "." + string(FormatJSON)
	data, err := os.ReadFile(jsonPath)
	if errors.Is(err, fs.ErrNotExist) {
		return false, "no JSON sidecar " + jsonPath
	}
	if err != nil {
		return false, err.Error()
	}
	doc, err := ReadDocument(data)
	if err != nil {
		return false, fmt.Sprintf("read %s: %v", jsonPath, err)
	}
	if !doc.Provenance.Input.Same(p.Input) {
		return false, "the input changed since " + jsonPath + " was written"
	}
	fp, err := Fingerprint(p, shape)
	if err != nil {
		return false, err.Error()
	}
	if doc.Provenance.Fingerprint != fp {
		return false, "the model or settings changed since " + jsonPath + " was written"
	}
	for _, f := range formats {
		if !slices.Contains(doc.Provenance.Outputs, f) {
			return false, fmt.Sprintf("%s was not written by the run %s records", f, jsonPath)
		}
		fi, err := os.Stat(base + "." + string(f))
		if err != nil || !fi.Mode().IsRegular() {
			return false, fmt.Sprintf("%s.%s is missing", base, f)
		}
	}
	return true, ""
}

// StaleTemp is how old a temp file must be before CleanTemp removes it: older than any write in
// progress.
const StaleTemp = time.Minute

// CleanTemp removes temp files (TempPrefix) from dir left by a crash between writing and
// renaming a sidecar, and returns their names: those whose writer process is gone
// (durable.Orphaned) and those older than StaleTemp. Only regular files directly in dir are
// touched. It is safe to run while other writes are in progress.
func CleanTemp(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("clean %s: %w", dir, err)
	}
	var removed []string
	var errs []error
	cutoff := now().Add(-StaleTemp)
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), TempPrefix) || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil || (!fi.ModTime().Before(cutoff) && !durable.Orphaned(e.Name())) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("clean %s: %w", p, err))
			continue
		}
		removed = append(removed, e.Name())
	}
	return removed, errors.Join(errs...)
}

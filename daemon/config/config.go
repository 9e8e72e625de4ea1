// Package config reads the daemon's configuration: one TOML file for the daemon (the folders
// to watch, its listener, its pacing, and the transcription defaults for every folder), and a
// .verbatim.toml in any watched folder that sets the transcription of that folder and, unless
// they set it again, its subfolders. A bad file is an *Error naming the file, the line and the
// key; the daemon keeps the last good version of it.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/verbatimhq/verbatim/power"
	"github.com/verbatimhq/verbatim/summarize"
	"github.com/verbatimhq/verbatim/summarize/llm"
)

// FolderFile is the name of a folder's configuration file.
const FolderFile = ".verbatim.toml"

// Error is a configuration file that could not be used: which file, where, which key, and why.
type Error struct {
	File      string
	Line, Col int    // 0 when unknown
	Key       string // dotted; "" when the problem is not one key's
	Msg       string
	Err       error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Col > 0 {
			fmt.Fprintf(&b, ":%d", e.Col)
		}
	}
	if e.Key != "" {
		fmt.Fprintf(&b, ": key %q", e.Key)
	}
	b.WriteString(": " + e.Msg)
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Duration is a time.Duration written as Go writes it ("10s", "5m").
type Duration time.Duration

// UnmarshalText reads a duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("not a duration (write it as 10s, 5m or 1h): %q", b)
	}
	if v < 0 {
		return fmt.Errorf("negative duration %q", b)
	}
	*d = Duration(v)
	return nil
}

// Folder is how the files of a folder are transcribed. Every field is optional: an unset one
// (nil) is inherited from the folder above, and at the top from the daemon's defaults.
type Folder struct {
	// Enabled false: the folder's files (and its subfolders', unless they enable them again)
	// are not transcribed.
	Enabled *bool `toml:"enabled" json:"enabled,omitempty"`
	// Model is a model name or path, as --model takes.
	Model *string `toml:"model" json:"model,omitempty"`
	// Language is a language code or "auto"; Languages restricts detection.
	Language  *string  `toml:"language" json:"language,omitempty"`
	Languages []string `toml:"languages" json:"languages,omitempty"`
	Task      *string  `toml:"task" json:"task,omitempty"`
	// Formats are the outputs: srt, vtt, txt, md, json.
	Formats []string `toml:"formats" json:"formats,omitempty"`
	// Output is the folder the outputs go to ("" beside each file); relative to the folder of
	// the file that sets it.
	Output *string `toml:"output" json:"output,omitempty"`
	// Ignore lists patterns of files not to transcribe, relative to the folder of the file that
	// sets them (path.Match syntax; a pattern without a slash matches a name at any depth).
	// Unlike the other keys, the patterns of a folder add to those of the folders above.
	Ignore   []string `toml:"ignore" json:"ignore,omitempty"`
	VAD      *bool    `toml:"vad" json:"vad,omitempty"`
	BeamSize *int     `toml:"beam_size" json:"beam_size,omitempty"`
	BestOf   *int     `toml:"best_of" json:"best_of,omitempty"`
	// Temperature is the first sampling temperature; NoFallback turns the retries at higher
	// ones off.
	Temperature  *float64 `toml:"temperature" json:"temperature,omitempty"`
	NoFallback   *bool    `toml:"no_fallback" json:"no_fallback,omitempty"`
	NoTimestamps *bool    `toml:"no_timestamps" json:"no_timestamps,omitempty"`
	Prompt       *string  `toml:"prompt" json:"prompt,omitempty"`
	Hotwords     *string  `toml:"hotwords" json:"hotwords,omitempty"`
	Compat       *string  `toml:"compat" json:"compat,omitempty"`
	Windows      *string  `toml:"windows" json:"windows,omitempty"`
	// AudioTrack picks the audio stream: an index or a language code.
	AudioTrack *string `toml:"audio_track" json:"audio_track,omitempty"`
	// WordTimestamps false saves the word-timing pass.
	WordTimestamps *bool `toml:"word_timestamps" json:"word_timestamps,omitempty"`
	// The summary stage (package summarize): Summary is auto, off, extractive or llm; LLM the
	// language model server's URL ("" = look on loopback); LLMModel the model ("" = one it
	// lists); Template auto, meeting, lecture, interview or memo. A server that is not on this
	// machine is refused unless the daemon's own configuration file says allow_remote = true (a
	// folder's file cannot: whoever can write into a watched folder must not be able to send
	// its transcripts away).
	Summary  *string `toml:"summary" json:"summary,omitempty"`
	LLM      *string `toml:"llm" json:"llm,omitempty"`
	LLMModel *string `toml:"llm_model" json:"llm_model,omitempty"`
	Template *string `toml:"template" json:"template,omitempty"`
	// ChapterFrames false leaves the stills of a video out of its note (one under each chapter's
	// heading, in BASE.chapters beside the sidecars).
	ChapterFrames *bool `toml:"chapter_frames" json:"chapter_frames,omitempty"`
}

// File is the daemon's configuration file.
type File struct {
	// Watch lists the folders to watch.
	Watch []string `toml:"watch"`
	// Addr is the HTTP listener's address (loopback).
	Addr *string `toml:"addr"`
	// StateDir holds the queue, the API token and the logs.
	StateDir *string `toml:"state_dir"`
	// Settle is how long a file's size and time must stay the same before it is taken.
	Settle *Duration `toml:"settle"`
	// Rescan is the time between full scans of the watched folders.
	Rescan *Duration `toml:"rescan"`
	// IdleUnload is how long the model stays loaded without work.
	IdleUnload *Duration `toml:"idle_unload"`
	// MaxAttempts is how many times a job is tried before it fails for good.
	MaxAttempts *int `toml:"max_attempts"`
	// Backend, BackendOptions, Threads and Batch are the CLI's flags of the same names.
	Backend        *string `toml:"backend"`
	BackendOptions *string `toml:"backend_options"`
	Threads        *int    `toml:"threads"`
	Batch          *int    `toml:"batch"`
	// The HTTP API. Allow lists folders besides the watched ones whose files a job may name by
	// path (and write its outputs into). Socket is a Unix socket to listen on too (mode 0600).
	// MaxUpload and MaxDuration limit an upload's size ("4GB") and audio; MaxUploads how many
	// are received at once. AllowOrigins are the browser origins allowed to call the API (none
	// by default); CallbackHosts the hosts besides loopback a callback URL may name.
	Allow         []string  `toml:"allow"`
	Socket        *string   `toml:"socket"`
	MaxUpload     *Size     `toml:"max_upload"`
	MaxDuration   *Duration `toml:"max_duration"`
	MaxUploads    *int      `toml:"max_uploads"`
	AllowOrigins  []string  `toml:"allow_origins"`
	CallbackHosts []string  `toml:"callback_hosts"`
	// AllowRemote lets a summary's language model server be on another machine (the
	// transcripts then leave this one); LLMContext is the context, in tokens, to plan the
	// summary's chunks for (0: ask the server). Only this file can set them.
	AllowRemote *bool `toml:"allow_remote"`
	LLMContext  *int  `toml:"llm_context"`
	// UnloadForSummary unloads the Whisper model before a language model makes a round's
	// summaries, for machines where both do not fit in memory at once.
	UnloadForSummary *bool `toml:"unload_for_summary"`
	// Defaults are the transcription settings of every watched folder.
	Defaults Folder `toml:"defaults"`
	// Power is when the queue pauses for the machine's power and heat.
	Power Power `toml:"power"`
}

// Power is the [power] table: when the daemon's queue pauses (no job starts; one running goes
// on to its end) and whether it keeps the system awake while jobs run. Unset keys take the
// defaults (daemon.DefaultPowerPolicy): pause on battery, in Low Power Mode and under serious
// thermal pressure.
type Power struct {
	// PauseOnBattery pauses on battery; BatteryMinPercent, when it is false, pauses on battery
	// below that charge (0: never).
	PauseOnBattery    *bool `toml:"pause_on_battery"`
	BatteryMinPercent *int  `toml:"battery_min_percent"`
	// PauseOnLowPower pauses while Low Power Mode is on (macOS).
	PauseOnLowPower *bool `toml:"pause_on_low_power"`
	// PauseOnThermal pauses at this thermal state or worse: fair, serious, critical, or off
	// (macOS).
	PauseOnThermal *string `toml:"pause_on_thermal"`
	// Poll is how often the power state is read.
	Poll *Duration `toml:"poll"`
	// PreventSleep keeps the system from idle sleep while a job runs (macOS).
	PreventSleep *bool `toml:"prevent_sleep"`
}

// check validates the table's values.
func (p *Power) check(name string) error {
	bad := func(key, msg string) error { return &Error{File: name, Key: "power." + key, Msg: msg} }
	if p.BatteryMinPercent != nil && (*p.BatteryMinPercent < 0 || *p.BatteryMinPercent > 100) {
		return bad("battery_min_percent", "must be between 0 (never) and 100")
	}
	if p.PauseOnThermal != nil && *p.PauseOnThermal != "off" {
		if _, err := power.ParseThermal(*p.PauseOnThermal); err != nil || *p.PauseOnThermal == "nominal" {
			return bad("pause_on_thermal", fmt.Sprintf("%q: want fair, serious, critical or off", *p.PauseOnThermal))
		}
	}
	if p.Poll != nil && time.Duration(*p.Poll) < time.Second {
		return bad("poll", "must be at least 1s")
	}
	return nil
}

// Size is a number of bytes written with a unit: "512MB", "4GB", "1.5GiB", "1000" (bytes).
type Size int64

// UnmarshalText reads a size.
func (z *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*z = Size(v)
	return nil
}

// ParseSize reads a size: a number, optionally with a unit (B, KB, MB, GB, TB: powers of 1000;
// KiB, MiB, GiB, TiB: of 1024), in any case.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || num == "" || v < 0 {
		return 0, fmt.Errorf("%q is not a size (like 512MB or 4GB)", s)
	}
	mult := map[string]float64{"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
		"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}
	m, ok := mult[unit]
	if !ok {
		return 0, fmt.Errorf("%q: unknown unit %q (want B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)", s, unit)
	}
	if v*m > math.MaxInt64/2 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return int64(v * m), nil
}

// decode reads TOML data into v, strictly: an unknown key is an error.
func decode(name string, data []byte, v any) error {
	d := toml.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	err := d.Decode(v)
	if err == nil {
		return nil
	}
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) && len(strict.Errors) > 0 {
		e := strict.Errors[0]
		line, col := e.Position()
		return &Error{File: name, Line: line, Col: col, Key: strings.Join(e.Key(), "."), Msg: "unknown key", Err: err}
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, col := de.Position()
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		return &Error{File: name, Line: line, Col: col, Key: strings.Join(de.Key(), "."), Msg: msg, Err: err}
	}
	return &Error{File: name, Msg: strings.TrimPrefix(err.Error(), "toml: "), Err: err}
}

// ParseFile reads the daemon's configuration from data (the file name is for errors) and checks
// it.
func ParseFile(name string, data []byte) (*File, error) {
	var f File
	if err := decode(name, data, &f); err != nil {
		return nil, err
	}
	if err := f.Defaults.check(name, "defaults."); err != nil {
		return nil, err
	}
	if err := f.Power.check(name); err != nil {
		return nil, err
	}
	for i, w := range f.Watch {
		if w == "" {
			return nil, &Error{File: name, Key: "watch", Msg: fmt.Sprintf("entry %d is empty", i+1)}
		}
	}
	if f.MaxAttempts != nil && *f.MaxAttempts < 1 {
		return nil, &Error{File: name, Key: "max_attempts", Msg: "must be at least 1"}
	}
	if f.Backend != nil && !slices.Contains([]string{"auto", "cpu", "cuda", "metal"}, *f.Backend) {
		return nil, &Error{File: name, Key: "backend", Msg: fmt.Sprintf("%q: want auto, cpu, cuda or metal", *f.Backend)}
	}
	if f.Threads != nil && *f.Threads < 0 {
		return nil, &Error{File: name, Key: "threads", Msg: "must be 0 (all cores) or more"}
	}
	if f.MaxUploads != nil && *f.MaxUploads < 1 {
		return nil, &Error{File: name, Key: "max_uploads", Msg: "must be at least 1"}
	}
	for i, a := range f.Allow {
		if a == "" {
			return nil, &Error{File: name, Key: "allow", Msg: fmt.Sprintf("entry %d is empty", i+1)}
		}
	}
	if f.LLMContext != nil && *f.LLMContext != 0 && *f.LLMContext < 1024 {
		return nil, &Error{File: name, Key: "llm_context", Msg: "must be 0 (ask the server) or at least 1024 tokens"}
	}
	if f.Batch != nil && *f.Batch < 0 {
		return nil, &Error{File: name, Key: "batch", Msg: "must be 0 (the backend's default) or more"}
	}
	return &f, nil
}

// LoadFile reads the daemon's configuration file at p.
func LoadFile(p string) (*File, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, &Error{File: p, Msg: "cannot read it", Err: err}
	}
	return ParseFile(p, data)
}

// ParseFolder reads a folder's configuration (a .verbatim.toml) from data and checks it.
func ParseFolder(name string, data []byte) (*Folder, error) {
	var f Folder
	if err := decode(name, data, &f); err != nil {
		return nil, err
	}
	if err := f.check(name, ""); err != nil {
		return nil, err
	}
	return &f, nil
}

// Check validates the values that have a fixed set, as a folder's file is checked; the error
// (an *Error) names the key, and name as its file.
func (f *Folder) Check(name string) error { return f.check(name, "") }

// check validates the values that have a fixed set (the transcription itself checks the rest
// when it runs).
func (f *Folder) check(name, prefix string) error {
	bad := func(key, msg string) error { return &Error{File: name, Key: prefix + key, Msg: msg} }
	if f.Task != nil && *f.Task != "transcribe" && *f.Task != "translate" {
		return bad("task", fmt.Sprintf("%q: want transcribe or translate", *f.Task))
	}
	for _, fm := range f.Formats {
		switch fm {
		case "srt", "vtt", "txt", "md", "json":
		default:
			return bad("formats", fmt.Sprintf("%q: want srt, vtt, txt, md or json", fm))
		}
	}
	if f.Compat != nil && *f.Compat != "openai" && *f.Compat != "whisper.cpp" {
		return bad("compat", fmt.Sprintf("%q: want openai or whisper.cpp", *f.Compat))
	}
	if f.Windows != nil && *f.Windows != "sequential" && *f.Windows != "independent" {
		return bad("windows", fmt.Sprintf("%q: want sequential or independent", *f.Windows))
	}
	if f.Summary != nil && !slices.Contains(summarize.Modes, *f.Summary) {
		return bad("summary", fmt.Sprintf("%q: want %s", *f.Summary, strings.Join(summarize.Modes, ", ")))
	}
	if f.Template != nil && !slices.Contains(summarize.TemplateNames(), *f.Template) {
		return bad("template", fmt.Sprintf("%q: want %s", *f.Template, strings.Join(summarize.TemplateNames(), ", ")))
	}
	if f.LLM != nil && *f.LLM != "" {
		if err := llm.CheckEndpoint(*f.LLM, true); err != nil { // the guard itself applies when it is used
			return bad("llm", err.Error())
		}
	}
	if f.BeamSize != nil && *f.BeamSize < 1 {
		return bad("beam_size", "must be at least 1")
	}
	if f.BestOf != nil && *f.BestOf < 1 {
		return bad("best_of", "must be at least 1")
	}
	if f.Temperature != nil && !(*f.Temperature >= 0 && *f.Temperature <= 1) {
		return bad("temperature", "must be between 0 and 1")
	}
	for _, p := range f.Ignore {
		if _, err := path.Match(p, ""); err != nil {
			return bad("ignore", fmt.Sprintf("pattern %q: %v", p, err))
		}
	}
	return nil
}

// Over returns f with the fields set in g replacing its own; g's Ignore patterns add to f's
// (anchored at dir, the folder of g's file), and a relative Output of g is taken from dir ("" to
// take them as they are).
func (f Folder) Over(g *Folder, dir string) Folder {
	set(&f.Enabled, g.Enabled)
	set(&f.Model, g.Model)
	set(&f.Language, g.Language)
	set(&f.Task, g.Task)
	set(&f.Prompt, g.Prompt)
	set(&f.Hotwords, g.Hotwords)
	set(&f.Compat, g.Compat)
	set(&f.Windows, g.Windows)
	set(&f.AudioTrack, g.AudioTrack)
	set(&f.Summary, g.Summary)
	set(&f.LLM, g.LLM)
	set(&f.LLMModel, g.LLMModel)
	set(&f.Template, g.Template)
	set(&f.ChapterFrames, g.ChapterFrames)
	if g.Output != nil {
		o := *g.Output
		if o != "" && !filepath.IsAbs(o) && dir != "" {
			o = filepath.Join(dir, o)
		}
		f.Output = &o
	}
	if g.Languages != nil {
		f.Languages = g.Languages
	}
	if g.Formats != nil {
		f.Formats = g.Formats
	}
	set(&f.VAD, g.VAD)
	set(&f.BeamSize, g.BeamSize)
	set(&f.BestOf, g.BestOf)
	set(&f.Temperature, g.Temperature)
	set(&f.NoFallback, g.NoFallback)
	set(&f.NoTimestamps, g.NoTimestamps)
	set(&f.WordTimestamps, g.WordTimestamps)
	for _, p := range g.Ignore {
		f.Ignore = append(f.Ignore, ignoreRule(dir, p))
	}
	return f
}

// set makes *dst src when src is set.
func set[T any](dst **T, src *T) {
	if src != nil {
		*dst = src
	}
}

// ignoreRule anchors pattern p of the folder dir: "dir\x00p".
func ignoreRule(dir, p string) string { return dir + "\x00" + p }

// Ignored reports whether file matches one of the ignore rules of its settings (Resolved's).
func (f *Folder) Ignored(file string) bool {
	for _, r := range f.Ignore {
		dir, p, ok := strings.Cut(r, "\x00")
		if !ok {
			dir, p = "", r
		}
		rel, err := filepath.Rel(dir, file)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		rel = filepath.ToSlash(rel)
		if !strings.Contains(p, "/") {
			for _, part := range strings.Split(rel, "/") {
				if ok, _ := path.Match(p, part); ok {
					return true
				}
			}
			continue
		}
		if ok, _ := path.Match(strings.TrimPrefix(p, "/"), rel); ok {
			return true
		}
		// A pattern that names a folder covers what is inside it.
		for d := path.Dir(rel); d != "."; d = path.Dir(d) {
			if ok, _ := path.Match(strings.TrimPrefix(p, "/"), d); ok {
				return true
			}
		}
	}
	return false
}

// IsEnabled reports whether the settings transcribe files (Enabled unset or true).
func (f *Folder) IsEnabled() bool { return f.Enabled == nil || *f.Enabled }

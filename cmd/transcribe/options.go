package main

import (
	"fmt"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/verbatimhq/verbatim/daemon/config"
	"github.com/verbatimhq/verbatim/pipeline"
	"github.com/verbatimhq/verbatim/sidecar"
	"github.com/verbatimhq/verbatim/whisper"
)

// transcription are the flags that say how files are transcribed, shared by the run command
// and the daemon (serve, where they are the defaults of every watched folder). They map to a
// folder's settings (config.Folder), and folder settings to the pipeline's options
// (pipelineOptions): one way from flags, configuration files and the defaults to the options.
type transcription struct {
	Model      string `help:"A model NAME from 'transcribe models list' (default: large-v3, else large-v3-turbo), or a PATH to a ggml .bin or a safetensors folder." placeholder:"NAME|PATH"`
	Formats    string `default:"srt,md" help:"Output formats, comma-separated: srt, vtt, txt, md, json (a .json run record is always written)."`
	AudioTrack string `help:"Audio track: a 0-based index among the audio streams, or a language code (default: the first, or the one matching --language)." placeholder:"N|LANG"`
	Out        string `help:"Write outputs into this folder (made if missing) instead of beside each input." type:"path" placeholder:"DIR"`

	Language     string  `default:"auto" help:"Spoken language code, or auto to detect."`
	Task         string  `default:"transcribe" enum:"transcribe,translate" help:"transcribe or translate (to English)."`
	BeamSize     int     `default:"5" help:"Beam size for temperature 0 (1 = greedy)."`
	BestOf       int     `default:"5" help:"Candidates when sampling at temperature > 0."`
	Temperature  float64 `default:"0" help:"Initial sampling temperature."`
	NoFallback   bool    `help:"Do not retry at higher temperatures when decoding fails the quality checks."`
	NoTimestamps bool    `help:"Decode without timestamp tokens (one segment per window)."`
	Prompt       string  `help:"Initial prompt: vocabulary or style for the first window."`
	Hotwords     string  `help:"Words to favour in every window (names, jargon), given to the model as a prompt prefix."`
	Languages    string  `help:"Restrict language detection to these codes, comma-separated (e.g. de,en)."`
	Words        bool    `name:"word-timestamps" default:"true" negatable:"" help:"Time every word (from the model's cross-attention) and re-time segments to their words; --no-word-timestamps saves one decoder pass a window."`
	Frames       bool    `name:"chapter-frames" default:"true" negatable:"" help:"For a video, show a still of it under each chapter's heading in the note (files in NAME.chapters beside the outputs; needs ffmpeg)."`
	VAD          *bool   `name:"vad" negatable:"" help:"Transcribe only the speech that voice activity detection finds (--no-vad: everything). Default: on, off with --compat whisper.cpp."`
	Windows      string  `default:"sequential" enum:"sequential,independent" help:"sequential: each window starts where the previous one's text ended and is conditioned on it (the reference's algorithm); independent: windows cut up front and decoded whole, independently, many at a time (faster on a GPU for one long file)."`
	Compat       string  `default:"openai" enum:"openai,whisper.cpp" help:"Whose decoding rules to follow where openai/whisper and whisper.cpp differ; whisper.cpp also takes its defaults (no non-speech suppression, no VAD), for comparing with it."`

	summaryFlags `embed:""`
}

// summaryFlags choose the note's summary: the run command's and the daemon's (as folder
// settings) and `transcribe summarize`'s.
type summaryFlags struct {
	Summary  string `default:"auto" enum:"auto,off,extractive,llm" env:"VERBATIM_SUMMARY" group:"Summary" help:"The note's summary, chapters and action items: auto (a local language model when one answers, else picked from the transcript), off, extractive (picked from the transcript, no model) or llm (a model, else an error)."`
	LLM      string `name:"llm" group:"Summary" help:"The language model server for summaries: Ollama, llama.cpp's server, LM Studio or mlx_lm.server, as a base URL (http://127.0.0.1:11434) or unix:///path/to.sock. Default: the first that answers on this machine." placeholder:"URL"`
	LLMModel string `name:"llm-model" group:"Summary" help:"The model to summarize with (default: one the server lists)." placeholder:"NAME"`
	Template string `default:"auto" enum:"auto,meeting,lecture,interview,memo" group:"Summary" help:"What the recording is, for the summary: meeting, lecture, interview, memo, or auto (a memo under 10 minutes, else a meeting)."`
}

// folder returns the flags as folder settings, those for which given reports true (nil: all).
// --vad is only ever a setting when it was given.
func (t *transcription) folder(given func(flag string) bool) config.Folder {
	on := func(flag string) bool { return given == nil || given(flag) }
	var f config.Folder
	str := func(flag, v string) *string {
		if on(flag) {
			return &v
		}
		return nil
	}
	f.Model = str("model", t.Model)
	if t.Model == "" {
		f.Model = nil
	}
	if on("formats") {
		f.Formats = splitList(t.Formats)
	}
	f.AudioTrack = str("audio-track", t.AudioTrack)
	f.Output = str("out", t.Out)
	f.Language = str("language", t.Language)
	f.Task = str("task", t.Task)
	if on("beam-size") {
		f.BeamSize = &t.BeamSize
	}
	if on("best-of") {
		f.BestOf = &t.BestOf
	}
	if on("temperature") {
		f.Temperature = &t.Temperature
	}
	if on("no-fallback") {
		f.NoFallback = &t.NoFallback
	}
	if on("no-timestamps") {
		f.NoTimestamps = &t.NoTimestamps
	}
	f.Prompt = str("prompt", t.Prompt)
	f.Hotwords = str("hotwords", t.Hotwords)
	if on("languages") {
		f.Languages = splitList(t.Languages)
	}
	if on("word-timestamps") {
		f.WordTimestamps = &t.Words
	}
	if on("chapter-frames") {
		f.ChapterFrames = &t.Frames
	}
	f.VAD = t.VAD
	f.Windows = str("windows", t.Windows)
	f.Compat = str("compat", t.Compat)
	f.Summary = str("summary", t.Summary)
	f.LLM = str("llm", t.LLM)
	if t.LLM == "" {
		f.LLM = nil
	}
	f.LLMModel = str("llm-model", t.LLMModel)
	if t.LLMModel == "" {
		f.LLMModel = nil
	}
	f.Template = str("template", t.Template)
	return f
}

// givenFlags reports the flags given on the command line (not those at their defaults).
func givenFlags(k *kong.Context) func(string) bool {
	set := map[string]bool{}
	for _, p := range k.Path {
		if p.Flag != nil {
			set[p.Flag.Name] = true
		}
	}
	return func(name string) bool { return set[name] }
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// pipelineOptions turns folder settings into the pipeline's options: pipeline.DefaultOptions
// (whisper.cpp's defaults instead where they differ with compat whisper.cpp), changed by every
// setting that is set.
func pipelineOptions(f config.Folder) (pipeline.Options, error) {
	opts := pipeline.DefaultOptions()
	d := &opts.Decode
	if f.Compat != nil {
		compat, err := whisper.ParseCompat(*f.Compat)
		if err != nil {
			return opts, fmt.Errorf("compat: %w", err)
		}
		if compat == whisper.CompatWhisperCpp {
			d.WhisperCppDefaults()
			opts.NoVAD = true
		}
	}
	if f.Windows != nil {
		w, err := whisper.ParseWindowMode(*f.Windows)
		if err != nil {
			return opts, fmt.Errorf("windows: %w", err)
		}
		d.Windows = w
	}
	if f.VAD != nil {
		opts.NoVAD = !*f.VAD
	}
	if f.Formats != nil {
		formats, err := sidecar.ParseFormats(strings.Join(f.Formats, ","))
		if err != nil {
			return opts, fmt.Errorf("formats: %w", err)
		}
		opts.Formats = formats
	}
	if f.Output != nil {
		opts.OutDir = *f.Output
	}
	if f.AudioTrack != nil {
		opts.AudioTrack = *f.AudioTrack
	}
	if f.Language != nil && *f.Language != "auto" {
		d.Language = *f.Language
	}
	if f.Task != nil {
		d.Task = *f.Task
	}
	if f.BeamSize != nil {
		d.BeamSize = *f.BeamSize
	}
	if f.BestOf != nil {
		d.BestOf = *f.BestOf
	}
	if f.NoTimestamps != nil {
		d.NoTimestamps = *f.NoTimestamps
	}
	if f.WordTimestamps != nil {
		d.WordTimestamps = *f.WordTimestamps
	}
	if f.ChapterFrames != nil {
		opts.NoChapterFrames = !*f.ChapterFrames
	}
	if f.Prompt != nil {
		d.Prompt = *f.Prompt
	}
	if f.Hotwords != nil {
		d.Hotwords = *f.Hotwords
	}
	if f.Languages != nil {
		d.Languages = f.Languages
	}
	temp := 0.0
	if f.Temperature != nil {
		temp = *f.Temperature
	}
	noFallback := f.NoFallback != nil && *f.NoFallback
	if temp > 0 || noFallback {
		d.Temperatures = []float64{temp}
		if !noFallback {
			for t := temp + 0.2; t <= 1.0+1e-9; t += 0.2 {
				d.Temperatures = append(d.Temperatures, t)
			}
		}
	}
	d.NoFallback = noFallback
	return opts, nil
}

// modelOf is the model a folder's settings name ("" for the default).
func modelOf(f config.Folder) string {
	if f.Model == nil {
		return ""
	}
	return *f.Model
}

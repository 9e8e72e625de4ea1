// Command transcribe is Verbatim's one binary: it transcribes files, manages models and measures
// the engine. This file only wires: flags, the root logger, signals.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/verbatimhq/verbatim/cuda"
	"github.com/verbatimhq/verbatim/daemon"
)

// errSilent makes the command exit 1 after it has already printed its errors.
var errSilent = errors.New("failed (reported above)")

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

type cli struct {
	Verbose bool `short:"v" help:"Log debug detail to stderr."`

	Run       runCmd       `cmd:"" default:"withargs" help:"Transcribe audio files (the default command)."`
	Summarize summarizeCmd `cmd:"" help:"Make the summary, chapters and action items of transcripts again, from their JSON sidecars."`
	Serve     serveCmd     `cmd:"" help:"Run the daemon in the foreground: watch folders and transcribe what settles in them."`
	Status    statusCmd    `cmd:"" help:"Show the daemon's queue: counts, the job in progress, the last failures."`
	Service   serviceCmd   `cmd:"" help:"Install, start, stop or remove the daemon as your user's service (launchd on macOS, systemd on Linux)."`
	Token     tokenCmd     `cmd:"" help:"Print the daemon's API token, or rotate it."`
	Models    modelsCmd    `cmd:"" help:"Manage models: list, pull, verify, synth."`
	Bench     benchCmd     `cmd:"" help:"Measure the engine's speed on this machine."`
	Vad       vadCmd       `cmd:"" help:"Print the speech segments of an audio file as JSON (Silero VAD)."`
}

// env is what every command gets from main.
type env struct {
	ctx context.Context
	log zerolog.Logger
	tty bool
}

// parserOptions configure the command line's parser (the tests parse with them too).
// cuda_options is the list of GPU switches that --backend-options' help shows.
func parserOptions() []kong.Option {
	return []kong.Option{
		kong.Name("transcribe"),
		kong.Description("Verbatim: private, offline transcription with Whisper."),
		kong.Vars{"version": version, "cuda_options": cuda.OptionKeys(), "state_dir": shown(daemon.DefaultStateDir),
			"config_file": shown(daemon.DefaultConfigFile)},
	}
}

// shown is the path f returns, for help texts ("?" when it has none).
func shown(f func() (string, error)) string {
	p, err := f()
	if err != nil {
		return "?"
	}
	return p
}

// started is when the program started (-v reports the time to the first window from it).
var started = time.Now()

func main() {
	var c cli
	k := kong.Parse(&c, append(parserOptions(), kong.UsageOnError())...)
	tty := isatty.IsTerminal(os.Stderr.Fd())
	level := zerolog.InfoLevel
	if c.Verbose {
		level = zerolog.DebugLevel
	}
	zerolog.TimeFieldFormat = "2006-01-02T15:04:05.000Z07:00" // milliseconds: what came first, in a daemon's log
	var log zerolog.Logger
	if tty {
		log = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: "15:04:05"}).Level(level).With().Timestamp().Logger()
	} else {
		log = zerolog.New(os.Stderr).Level(level).With().Timestamp().Logger()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := k.Run(&env{ctx: ctx, log: log, tty: tty})
	stop()
	if err != nil {
		if !errors.Is(err, errSilent) {
			fmt.Fprintf(os.Stderr, "transcribe: %v\n", err)
		}
		os.Exit(1)
	}
}

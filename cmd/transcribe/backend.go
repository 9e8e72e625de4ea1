package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/rs/zerolog"

	"github.com/verbatimhq/verbatim/cpu"
	"github.com/verbatimhq/verbatim/cuda"
	"github.com/verbatimhq/verbatim/metal"
	"github.com/verbatimhq/verbatim/tensor"
)

// backendFlags are the flags of every command that opens a compute backend. --backend-options is
// the one place the GPU switches are set (cuda.ParseOptions lists them); the backend reports
// them back (tensor.Tuned) for the run's record.
type backendFlags struct {
	Backend        string `default:"auto" enum:"auto,cpu,cuda,metal" help:"Compute backend: auto, cpu, cuda, metal."`
	Threads        int    `help:"CPU threads (default: all cores)."`
	BackendOptions string `name:"backend-options" env:"VERBATIM_BACKEND_OPTIONS" placeholder:"SPEC" help:"GPU switches that change which kernels run or how they round, as key=value pairs separated by commas (default: none; a run records them in its JSON sidecars). For cuda, default value first: ${cuda_options}. The cpu backend has none."`
}

// backendChoice is a backend and its options, checked before anything opens.
type backendChoice struct {
	name    string
	threads int
	cuda    cuda.Options // for cuda, and for auto when a CUDA device opens
}

// choice checks the backend flags: an options spec that the chosen backend cannot take is an
// error before any device is touched (with auto, the spec must be valid for cuda).
func (f *backendFlags) choice() (backendChoice, error) {
	c := backendChoice{name: f.Backend, threads: f.Threads}
	spec := strings.TrimSpace(f.BackendOptions)
	switch f.Backend {
	case "cuda", "auto":
		o, err := cuda.ParseOptions(spec)
		if err != nil {
			return backendChoice{}, fmt.Errorf("--backend-options: %w", err)
		}
		c.cuda = o
	case "cpu":
		if spec != "" {
			return backendChoice{}, fmt.Errorf("--backend-options %q: the cpu backend has no options", spec)
		}
	}
	return c, nil
}

// openBackend picks the compute backend (pickBackend) and sets the collector's pace for it
// (gcFor).
func openBackend(c backendChoice, log zerolog.Logger) (tensor.Backend, error) {
	b, err := pickBackend(c, log)
	if err == nil {
		gcFor(b)
	}
	return b, err
}

// pickBackend picks the compute backend. auto tries the accelerators first (cuda), then the CPU,
// and reports every failure if none opens.
func pickBackend(c backendChoice, log zerolog.Logger) (tensor.Backend, error) {
	switch c.name {
	case "cpu":
		return cpu.New(cpu.Options{Threads: c.threads})
	case "cuda":
		return openCUDA(c.cuda)
	case "auto":
		var errs []error
		g, err := openCUDA(c.cuda)
		if err == nil {
			return g, nil
		}
		errs = append(errs, fmt.Errorf("cuda: %w", err))
		return openFallback(c, log, errs)
	case "metal":
		b, err := metal.Open()
		if err != nil {
			return nil, err
		}
		log.Warn().Msg("the metal backend has not run on Apple hardware yet: its results are unchecked (compare with --backend cpu)")
		return b, nil
	}
	return nil, fmt.Errorf("unknown backend %q (want auto, cpu, cuda or metal)", c.name)
}

// openFallback opens the CPU backend for auto when no accelerator opened (errs says why), or
// returns errs with the CPU's own error. The accelerator's options do not apply to the CPU: a
// warning says so when some were set.
func openFallback(c backendChoice, log zerolog.Logger, errs []error) (tensor.Backend, error) {
	b, err := cpu.New(cpu.Options{Threads: c.threads})
	if err != nil {
		return nil, errors.Join(append(errs, fmt.Errorf("cpu: %w", err))...)
	}
	if s := c.cuda.String(); s != "" {
		log.Warn().Str("backend_options", s).Msg("no CUDA device opened: running on the cpu, which has no backend options")
	}
	return b, nil
}

// cudaDevices and openCUDA are the CUDA driver's device count and device opener; tests replace
// them.
var (
	cudaDevices = cuda.Devices
	openCUDA    = func(o cuda.Options) (tensor.Backend, error) {
		g, err := cuda.Open(o)
		if err != nil {
			return nil, err
		}
		return g, nil
	}
)

// openBackends opens one backend per device for the transcription workers: every CUDA device
// when the backend is cuda or auto and the driver reports several, else one (openBackend). A
// device that does not open is left out with a warning; when none opens, auto falls back to the
// CPU and cuda fails with every device's error. The caller closes the backends.
func openBackends(c backendChoice, log zerolog.Logger) ([]tensor.Backend, error) {
	if c.name != "cuda" && c.name != "auto" {
		b, err := openBackend(c, log)
		if err != nil {
			return nil, err
		}
		return []tensor.Backend{b}, nil
	}
	n, err := cudaDevices()
	if err != nil || n <= 1 {
		b, err := openBackend(c, log)
		if err != nil {
			return nil, err
		}
		return []tensor.Backend{b}, nil
	}
	var out []tensor.Backend
	var errs []error
	for i := range n {
		o := c.cuda
		o.Device = i
		b, err := openCUDA(o)
		if err != nil {
			log.Warn().Int("device", i).Err(err).Msg("cuda device left out")
			errs = append(errs, fmt.Errorf("cuda device %d: %w", i, err))
			continue
		}
		out = append(out, b)
	}
	if len(out) > 0 {
		gcFor(out[0])
		return out, nil
	}
	if c.name == "auto" {
		b, err := openFallback(c, log, errs)
		if err != nil {
			return nil, err
		}
		return []tensor.Backend{b}, nil
	}
	return nil, errors.Join(errs...)
}

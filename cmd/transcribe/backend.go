package main

import (
	"errors"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/verbatimhq/verbatim/cpu"
	"github.com/verbatimhq/verbatim/cuda"
	"github.com/verbatimhq/verbatim/tensor"
)

// openBackend picks the compute backend. auto tries the accelerators first (cuda), then the CPU,
// and reports every failure if none opens.
func openBackend(name string, threads int) (tensor.Backend, error) {
	switch name {
	case "cpu":
		return cpu.New(cpu.Options{Threads: threads})
	case "cuda":
		g, err := cuda.Open(cuda.Options{})
		if err != nil {
			return nil, err
		}
		return g, nil
	case "auto":
		var errs []error
		g, err := cuda.Open(cuda.Options{})
		if err == nil {
			return g, nil
		}
		errs = append(errs, fmt.Errorf("cuda: %w", err))
		b, err := cpu.New(cpu.Options{Threads: threads})
		if err == nil {
			return b, nil
		}
		errs = append(errs, fmt.Errorf("cpu: %w", err))
		return nil, errors.Join(errs...)
	case "metal":
		return nil, fmt.Errorf("backend %q is not in this build yet", name)
	}
	return nil, fmt.Errorf("unknown backend %q (want auto, cpu, cuda or metal)", name)
}

// cudaDevices and openCUDA are the CUDA driver's device count and device opener; tests replace
// them.
var (
	cudaDevices = cuda.Devices
	openCUDA    = func(device int) (tensor.Backend, error) { return cuda.Open(cuda.Options{Device: device}) }
)

// openBackends opens one backend per device for the transcription workers: every CUDA device
// when the backend is cuda or auto and the driver reports several, else one (openBackend). A
// device that does not open is left out with a warning; when none opens, auto falls back to the
// CPU and cuda fails with every device's error. The caller closes the backends.
func openBackends(name string, threads int, log zerolog.Logger) ([]tensor.Backend, error) {
	if name != "cuda" && name != "auto" {
		b, err := openBackend(name, threads)
		if err != nil {
			return nil, err
		}
		return []tensor.Backend{b}, nil
	}
	n, err := cudaDevices()
	if err != nil || n <= 1 {
		b, err := openBackend(name, threads)
		if err != nil {
			return nil, err
		}
		return []tensor.Backend{b}, nil
	}
	var out []tensor.Backend
	var errs []error
	for i := range n {
		b, err := openCUDA(i)
		if err != nil {
			log.Warn().Int("device", i).Err(err).Msg("cuda device left out")
			errs = append(errs, fmt.Errorf("cuda device %d: %w", i, err))
			continue
		}
		out = append(out, b)
	}
	if len(out) > 0 {
		return out, nil
	}
	if name == "auto" {
		b, err := cpu.New(cpu.Options{Threads: threads})
		if err == nil {
			return []tensor.Backend{b}, nil
		}
		errs = append(errs, fmt.Errorf("cpu: %w", err))
	}
	return nil, errors.Join(errs...)
}

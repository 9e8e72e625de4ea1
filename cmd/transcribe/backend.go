package main

import (
	"errors"
	"fmt"

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

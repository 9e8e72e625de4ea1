//go:build verbatim_faults

package whisper

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// A build with the tag verbatim_faults (the CLI's coverage tests build one; releases never do)
// reads VERBATIM_FAULT_EOT: spans of the input in seconds, "a-b" or "a-b:n", comma separated. A
// window that starts in one of them is decoded as if the model ended its text at once: on every
// attempt, or, with ":n", while its coverage retry is below n (n = 1: the first decoding only).
func init() {
	spec := os.Getenv("VERBATIM_FAULT_EOT")
	if spec == "" {
		return
	}
	type fault struct {
		a, b  float64
		below int
	}
	var faults []fault
	for _, f := range strings.Split(spec, ",") {
		span, n, hasN := strings.Cut(strings.TrimSpace(f), ":")
		as, bs, ok := strings.Cut(span, "-")
		a, errA := strconv.ParseFloat(as, 64)
		b, errB := strconv.ParseFloat(bs, 64)
		below := 1 << 30
		var errN error
		if hasN {
			below, errN = strconv.Atoi(n)
		}
		if !ok || errA != nil || errB != nil || errN != nil {
			fmt.Fprintf(os.Stderr, "VERBATIM_FAULT_EOT: %q is not a-b or a-b:n\n", f)
			os.Exit(2)
		}
		faults = append(faults, fault{a, b, below})
	}
	faultWindow = func(start, _ float64, retry int) bool {
		for _, f := range faults {
			if start >= f.a && start < f.b && retry < f.below {
				return true
			}
		}
		return false
	}
}

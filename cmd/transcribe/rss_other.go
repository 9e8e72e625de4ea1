//go:build !(linux || darwin)

package main

// peakRSS reports nothing where getrusage is not there.
func peakRSS() (int64, bool) { return 0, false }

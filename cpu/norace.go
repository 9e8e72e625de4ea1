//go:build !race

package cpu

// raceDetector: not a -race build (see race.go).
const raceDetector = false

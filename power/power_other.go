//go:build !linux && !darwin

package power

// System reads this machine's power state: on this platform nothing is read (every state is
// unknown, and nothing pauses).
func System() Reader { return ReaderFunc(func() (State, error) { return Unknown(), nil }) }

// SystemInhibitor keeps this machine awake while work is in progress, and reports whether the
// platform has one: none here (false).
func SystemInhibitor() (Inhibitor, bool) { return NoInhibitor{}, false }

// Package power reads what the machine's power and heat allow: whether it runs on battery (and
// the battery's charge), whether the user asked for Low Power Mode, and how hot it runs; and it
// keeps the system awake while work is in progress. The daemon pauses its queue on what it
// reads (see daemon.PowerPolicy).
//
// Each platform reads what it can and says what it could not (State.Known): on Linux the power
// supplies in /sys/class/power_supply (Sysfs); on macOS IOKit's power sources and NSProcessInfo,
// through purego (no cgo); elsewhere nothing. Whatever cannot be read is reported unknown, and
// an unknown state never pauses anything.
package power

import (
	"fmt"
	"strings"
)

// Thermal is how hot the machine runs, on the scale of macOS's NSProcessInfoThermalState. The
// zero value is unknown.
type Thermal int

const (
	ThermalUnknown Thermal = iota
	// ThermalNominal: no pressure.
	ThermalNominal
	// ThermalFair: slightly elevated (fans audible); performance is not reduced.
	ThermalFair
	// ThermalSerious: high; the system reduces performance to cool down.
	ThermalSerious
	// ThermalCritical: the machine needs to cool down at once.
	ThermalCritical
)

var thermalNames = []string{"unknown", "nominal", "fair", "serious", "critical"}

func (t Thermal) String() string {
	if t < 0 || int(t) >= len(thermalNames) {
		return fmt.Sprintf("Thermal(%d)", int(t))
	}
	return thermalNames[t]
}

// ParseThermal reads a thermal state's name: nominal, fair, serious or critical (in any case).
func ParseThermal(s string) (Thermal, error) {
	for i, n := range thermalNames[1:] {
		if strings.EqualFold(strings.TrimSpace(s), n) {
			return Thermal(i + 1), nil
		}
	}
	return ThermalUnknown, fmt.Errorf("%q is not a thermal state (want nominal, fair, serious or critical)", s)
}

// State is what was read of the machine's power at one moment.
type State struct {
	// OnBattery: the machine runs on its battery, with no external power. Meaningful when
	// Known.Source.
	OnBattery bool
	// BatteryPercent is the system battery's charge, 0 to 100, or -1 when there is none or it
	// could not be read.
	BatteryPercent int
	// LowPower: the user asked for Low Power Mode. Meaningful when Known.LowPower.
	LowPower bool
	// Thermal is the machine's thermal state (ThermalUnknown when it could not be read).
	Thermal Thermal
	// Known says which of the above could be read.
	Known Known
}

// Known says which parts of a State could be read.
type Known struct {
	// Source: whether the machine runs on battery or on external power (a machine without a
	// battery runs on external power).
	Source bool
	// LowPower: whether Low Power Mode is on.
	LowPower bool
	// Thermal: the thermal state.
	Thermal bool
}

// Unknown is the state of a machine nothing could be read of.
func Unknown() State { return State{BatteryPercent: -1} }

// String describes the state for logs: "on battery (54%)", "on AC, Low Power Mode, thermal
// serious", with "unknown" for what could not be read.
func (s State) String() string {
	var parts []string
	switch {
	case !s.Known.Source:
		parts = append(parts, "power source unknown")
	case s.OnBattery:
		parts = append(parts, "on battery")
	default:
		parts = append(parts, "on external power")
	}
	if s.BatteryPercent >= 0 {
		parts[0] += fmt.Sprintf(" (battery %d%%)", s.BatteryPercent)
	}
	switch {
	case !s.Known.LowPower:
	case s.LowPower:
		parts = append(parts, "Low Power Mode")
	default:
		parts = append(parts, "Low Power Mode off")
	}
	if s.Known.Thermal {
		parts = append(parts, "thermal "+s.Thermal.String())
	}
	return strings.Join(parts, ", ")
}

// Reader reads the machine's power state.
type Reader interface {
	// Read returns the state now. What cannot be read is reported unknown in the state; the
	// error, for the log, says why when nothing at all could be read.
	Read() (State, error)
}

// ReaderFunc is a function as a Reader.
type ReaderFunc func() (State, error)

// Read calls f.
func (f ReaderFunc) Read() (State, error) { return f() }

// Inhibitor keeps the system from sleeping while work is in progress.
type Inhibitor interface {
	// Acquire asks the system not to sleep (idle sleep; the user can still put it to sleep)
	// until release is called, with reason shown to the user where the system lists such
	// requests. release may be called more than once.
	Acquire(reason string) (release func(), err error)
}

// NoInhibitor is an Inhibitor that does nothing, for platforms without one.
type NoInhibitor struct{}

// Acquire does nothing.
func (NoInhibitor) Acquire(string) (func(), error) { return func() {}, nil }

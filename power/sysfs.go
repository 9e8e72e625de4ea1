package power

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
)

// SysfsDir is where Linux lists the power supplies.
const SysfsDir = "/sys/class/power_supply"

// Sysfs reads the power source from a Linux power_supply class folder: one folder per supply
// (usually a symbolic link), each with its attributes as small text files (type, online,
// status, capacity, scope). It reads the source and the battery's charge; Low Power Mode and
// the thermal state are not read (reported unknown).
//
// The rules, conservative: an external supply (type Mains, USB, Wireless and the like) whose
// online is 1 means external power, whatever the batteries say (a battery may discharge a
// little under load on AC). Otherwise a system battery whose status is Discharging means on
// battery; one that is Charging, Full or Not charging means external power. Without any
// battery the machine runs on external power (a desktop). Supplies whose scope is Device are
// the batteries of peripherals (a mouse, a headset) and are ignored, and so are UPSes. A supply
// whose attributes cannot be read counts for nothing; when that leaves the answer open, the
// source is unknown.
type Sysfs struct {
	// FS is the power_supply folder.
	FS fs.FS
}

// NewSysfs reads the power_supply folder dir (SysfsDir on a real system; a fake tree in
// tests).
func NewSysfs(dir string) Sysfs { return Sysfs{FS: os.DirFS(dir)} }

// maxAttr is the most bytes of an attribute file read: the attributes read are short words and
// numbers.
const maxAttr = 256

// Read implements Reader.
func (s Sysfs) Read() (State, error) {
	st := Unknown()
	entries, err := fs.ReadDir(s.FS, ".")
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil // no power_supply class (a container, a kernel without it): unknown
	}
	if err != nil {
		return st, err
	}
	var (
		external, discharging, notDischarging, unclear bool
		batteries, capacitySum, capacities             int
	)
	for _, e := range entries {
		name := e.Name()
		typ, ok := s.word(name, "type")
		if !ok {
			continue // not a supply, or unreadable: counts for nothing
		}
		if scope, _ := s.word(name, "scope"); scope == "Device" {
			continue // a peripheral's battery
		}
		switch typ {
		case "Battery":
			batteries++
			status, ok := s.word(name, "status")
			switch {
			case !ok:
				unclear = true
			case status == "Discharging":
				discharging = true
			case status == "Charging" || status == "Full" || status == "Not charging":
				notDischarging = true
			default: // Unknown, or a value this code does not know
				unclear = true
			}
			if c, ok := s.number(name, "capacity"); ok && c >= 0 && c <= 100 {
				capacitySum += c
				capacities++
			}
		case "UPS":
			// A UPS is not the machine's own battery; its status says nothing of this machine's
			// supply that the mains supply does not.
		default: // Mains, USB and its kinds, Wireless, BrickID: external power
			if on, ok := s.number(name, "online"); ok && on >= 1 {
				external = true
			}
		}
	}
	if capacities > 0 {
		// With several batteries (some laptops have two), their mean.
		st.BatteryPercent = (capacitySum + capacities/2) / capacities
	}
	switch {
	case external:
		st.Known.Source = true
	case discharging:
		st.Known.Source, st.OnBattery = true, true
	case notDischarging && !unclear:
		st.Known.Source = true
	case batteries == 0:
		st.Known.Source = true // no battery: a desktop
	}
	return st, nil
}

// attr reads a supply's attribute file: its first maxAttr bytes, with the spaces and line ends
// around it trimmed.
func (s Sysfs) attr(supply, name string) ([]byte, bool) {
	f, err := s.FS.Open(path.Join(supply, name))
	if err != nil {
		return nil, false
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxAttr))
	if err != nil {
		return nil, false
	}
	return bytes.TrimSpace(b), true
}

// word reads a text attribute (type, status, scope).
func (s Sysfs) word(supply, name string) (string, bool) {
	b, ok := s.attr(supply, name)
	if !ok {
		return "", false
	}
	return parseWord(b)
}

// number reads a numeric attribute (online, capacity).
func (s Sysfs) number(supply, name string) (int, bool) {
	b, ok := s.attr(supply, name)
	if !ok {
		return 0, false
	}
	return parseNumber(b)
}

// parseWord reads an attribute's text: one line of printable ASCII, not empty.
func parseWord(b []byte) (string, bool) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return "", false
	}
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return "", false
		}
	}
	return string(b), true
}

// parseNumber reads an attribute's decimal integer.
func parseNumber(b []byte) (int, bool) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	n, err := strconv.Atoi(string(b))
	if err != nil {
		return 0, false
	}
	return n, true
}

package power

import (
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
)

// supply is a fake power supply: its attribute files ("" content: the file is absent; a
// content of "<dir>": a folder where the file should be, which cannot be read as one).
type supply map[string]string

// fakeSysfs writes a power_supply folder in a temporary folder: each supply in a folder of its
// own under devices/, linked from the class folder as on a real system.
func fakeSysfs(t *testing.T, supplies map[string]supply) string {
	t.Helper()
	root := t.TempDir()
	class := filepath.Join(root, "class", "power_supply")
	if err := os.MkdirAll(class, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, attrs := range supplies {
		dev := filepath.Join(root, "devices", name)
		if err := os.MkdirAll(dev, 0o755); err != nil {
			t.Fatal(err)
		}
		for k, v := range attrs {
			p := filepath.Join(dev, k)
			var err error
			if v == "<dir>" {
				err = os.Mkdir(p, 0o755)
			} else {
				err = os.WriteFile(p, []byte(v), 0o644)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Symlink(filepath.Join("..", "..", "devices", name), filepath.Join(class, name)); err != nil {
			t.Fatal(err)
		}
	}
	return class
}

var (
	acOnline  = supply{"type": "Mains\n", "online": "1\n"}
	acOffline = supply{"type": "Mains\n", "online": "0\n"}
	usbOn     = supply{"type": "USB\n", "online": "1\n", "scope": "System\n"} // a USB-C charger
	usbOff    = supply{"type": "USB\n", "online": "0\n"}
)

func battery(status, capacity string) supply {
	return supply{"type": "Battery\n", "status": status + "\n", "capacity": capacity + "\n", "present": "1\n"}
}

func TestSysfs(t *testing.T) {
	mouse := supply{"type": "Battery\n", "scope": "Device\n", "status": "Discharging\n", "capacity": "40\n"}
	cases := []struct {
		name     string
		supplies map[string]supply
		known    bool
		battery  bool
		percent  int
	}{
		{"desktop without a battery", map[string]supply{}, true, false, -1},
		{"desktop with a mouse battery", map[string]supply{"hidpp_battery_0": mouse}, true, false, -1},
		{"desktop, mains listed", map[string]supply{"AC": acOnline}, true, false, -1},
		{"laptop on AC, charging", map[string]supply{"AC": acOnline, "BAT0": battery("Charging", "55")}, true, false, 55},
		{"laptop on AC, full", map[string]supply{"ADP1": acOnline, "BAT0": battery("Full", "100")}, true, false, 100},
		{"laptop on AC, charge threshold", map[string]supply{"AC": acOnline, "BAT0": battery("Not charging", "80")}, true, false, 80},
		{"laptop on AC, battery helping under load", map[string]supply{"AC": acOnline, "BAT0": battery("Discharging", "70")}, true, false, 70},
		{"laptop on battery", map[string]supply{"AC": acOffline, "BAT0": battery("Discharging", "42")}, true, true, 42},
		{"laptop on battery, no mains listed", map[string]supply{"BAT0": battery("Discharging", "42")}, true, true, 42},
		{"on battery, mouse charging", map[string]supply{"AC": acOffline, "BAT0": battery("Discharging", "30"), "hid-mouse": {"type": "Battery\n", "scope": "Device\n", "status": "Charging\n", "capacity": "90\n"}}, true, true, 30},
		{"on battery, mouse discharging, USB ports off", map[string]supply{"AC": acOffline, "ucsi-source-psy-USBC000:001": usbOff, "BAT0": battery("Discharging", "30"), "hid": mouse}, true, true, 30},
		{"USB-C charger", map[string]supply{"AC": acOffline, "ucsi-source-psy-USBC000:001": usbOn, "BAT0": battery("Charging", "12")}, true, false, 12},
		{"two batteries, one discharging", map[string]supply{"AC": acOffline, "BAT0": battery("Discharging", "50"), "BAT1": battery("Not charging", "91")}, true, true, 71},
		{"two batteries on AC", map[string]supply{"AC": acOnline, "BAT0": battery("Charging", "50"), "BAT1": battery("Full", "100")}, true, false, 75},
		{"status unknown, no mains", map[string]supply{"BAT0": battery("Unknown", "60")}, false, false, 60},
		{"status unreadable, mains offline", map[string]supply{"AC": acOffline, "BAT0": {"type": "Battery\n", "status": "<dir>", "capacity": "60\n"}}, false, false, 60},
		{"status unreadable, mains online", map[string]supply{"AC": acOnline, "BAT0": {"type": "Battery\n", "status": "<dir>"}}, true, false, -1},
		{"online unreadable, battery full", map[string]supply{"AC": {"type": "Mains\n", "online": "<dir>"}, "BAT0": battery("Full", "100")}, true, false, 100},
		{"type unreadable", map[string]supply{"X": {"type": "<dir>", "online": "1\n"}, "BAT0": battery("Discharging", "10")}, true, true, 10},
		{"capacity out of range or garbage", map[string]supply{"BAT0": battery("Discharging", "250"), "BAT1": battery("Discharging", "x")}, true, true, -1},
		{"one battery charging, one unclear", map[string]supply{"BAT0": battery("Charging", "20"), "BAT1": battery("Unknown", "20")}, false, false, 20},
		{"UPS on battery is not this machine's battery", map[string]supply{"AC": acOnline, "ups": {"type": "UPS\n", "status": "Discharging\n", "capacity": "90\n"}}, true, false, -1},
		{"not a supply", map[string]supply{"stray": {"uevent": "x\n"}}, true, false, -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := NewSysfs(fakeSysfs(t, c.supplies)).Read()
			if err != nil {
				t.Fatal(err)
			}
			if s.Known.Source != c.known || s.OnBattery != c.battery || s.BatteryPercent != c.percent {
				t.Errorf("got known %v, on battery %v, %d%%; want %v, %v, %d%% (%s)", s.Known.Source, s.OnBattery, s.BatteryPercent,
					c.known, c.battery, c.percent, s)
			}
			if s.Known.LowPower || s.Known.Thermal || s.LowPower || s.Thermal != ThermalUnknown {
				t.Errorf("sysfs claims to know Low Power Mode or the thermal state: %+v", s)
			}
		})
	}
}

// TestSysfsMissing: no power_supply folder (a container) is an unknown source, not an error;
// a class path that is a file is an error, with the state unknown.
func TestSysfsMissing(t *testing.T) {
	dir := t.TempDir()
	s, err := NewSysfs(filepath.Join(dir, "nope")).Read()
	if err != nil || s.Known.Source || s.OnBattery || s.BatteryPercent != -1 {
		t.Errorf("missing folder: %+v, %v", s, err)
	}
	f := filepath.Join(dir, "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err = NewSysfs(f).Read()
	if err == nil || s.Known.Source || s.OnBattery {
		t.Errorf("a file as the folder: %+v, %v", s, err)
	}
}

// TestSysfsFlip: the same reader sees the tree change (the daemon polls one reader).
func TestSysfsFlip(t *testing.T) {
	class := fakeSysfs(t, map[string]supply{"AC": acOffline, "BAT0": battery("Discharging", "50")})
	r := NewSysfs(class)
	if s, _ := r.Read(); !s.OnBattery {
		t.Fatalf("want on battery: %s", s)
	}
	for name, v := range map[string]string{"AC/online": "1\n", "BAT0/status": "Charging\n"} {
		if err := os.WriteFile(filepath.Join(class, name), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if s, _ := r.Read(); s.OnBattery || !s.Known.Source {
		t.Fatalf("want on AC: %s", s)
	}
}

func TestThermal(t *testing.T) {
	for _, n := range []string{"nominal", "fair", "Serious", " critical "} {
		th, err := ParseThermal(n)
		if err != nil || th == ThermalUnknown {
			t.Errorf("ParseThermal(%q) = %v, %v", n, th, err)
		}
	}
	if th, _ := ParseThermal("serious"); th != ThermalSerious || th.String() != "serious" || !(ThermalCritical > ThermalSerious) {
		t.Errorf("serious: %v", th)
	}
	for _, n := range []string{"", "unknown", "hot", "off"} {
		if _, err := ParseThermal(n); err == nil {
			t.Errorf("ParseThermal(%q) accepted", n)
		}
	}
}

func TestStateString(t *testing.T) {
	s := State{OnBattery: true, BatteryPercent: 54, Thermal: ThermalFair, LowPower: true, Known: Known{Source: true, LowPower: true, Thermal: true}}
	if got, want := s.String(), "on battery (battery 54%), Low Power Mode, thermal fair"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
	if got, want := Unknown().String(), "power source unknown"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
}

// FuzzSysfs: any bytes in a supply's attribute files give a state within its ranges, without
// a panic, and a peripheral's battery never decides anything.
func FuzzSysfs(f *testing.F) {
	f.Add([]byte("Battery\n"), []byte("Discharging\n"), []byte("1\n"), []byte("57\n"), []byte("System\n"))
	f.Add([]byte("Mains\n"), []byte(""), []byte("1\n"), []byte(""), []byte(""))
	f.Add([]byte("USB"), []byte("Charging"), []byte("2"), []byte("-1"), []byte("Device"))
	f.Add([]byte("Battery\x00"), []byte("Not charging\r\n"), []byte("99999999999999999999"), []byte(" 100 "), []byte("Unknown"))
	f.Fuzz(func(t *testing.T, typ, status, online, capacity, scope []byte) {
		fsys := fstest.MapFS{
			"X/type":     {Data: typ},
			"X/status":   {Data: status},
			"X/online":   {Data: online},
			"X/capacity": {Data: capacity},
			"X/scope":    {Data: scope},
		}
		s, err := Sysfs{FS: fsys}.Read()
		if err != nil {
			t.Fatal(err)
		}
		if s.BatteryPercent < -1 || s.BatteryPercent > 100 {
			t.Errorf("percent %d", s.BatteryPercent)
		}
		if s.OnBattery && !s.Known.Source {
			t.Errorf("on battery without a known source: %+v", s)
		}
		if w, ok := parseWord(scope); ok && w == "Device" && (s.OnBattery || !s.Known.Source) {
			t.Errorf("a peripheral decided: %+v", s)
		}
		if w, ok := parseWord(typ); s.OnBattery && (!ok || w != "Battery") {
			t.Errorf("on battery from a supply of type %q", typ)
		}
		// The parsers: a word is printable ASCII without spaces around it; a number reads back.
		if w, ok := parseWord(status); ok && (w == "" || w[0] == ' ' || w[len(w)-1] == ' ') {
			t.Errorf("parseWord(%q) = %q", status, w)
		}
		if _, ok := parseNumber(capacity); ok && len(capacity) == 0 {
			t.Errorf("parseNumber of nothing")
		}
	})
}

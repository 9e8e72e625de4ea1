package power

// System reads this machine's power state: on Linux, the power supplies in SysfsDir. Low Power
// Mode and the thermal state are not read on Linux (reported unknown).
func System() Reader { return NewSysfs(SysfsDir) }

// SystemInhibitor keeps this machine awake while work is in progress, and reports whether the
// platform has one. On Linux it does nothing: systemd-inhibit would mean a helper process per
// job, and the daemon does not take that on (false).
func SystemInhibitor() (Inhibitor, bool) { return NoInhibitor{}, false }

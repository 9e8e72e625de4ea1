//go:build darwin

package power

import (
	"errors"
	"fmt"
	"sync"

	"github.com/ebitengine/purego"
	"github.com/ebitengine/purego/objc"
)

// macOS: the power source through IOKit's IOPS functions, Low Power Mode and the thermal state
// through NSProcessInfo, the sleep assertion through IOPMAssertionCreateWithName; all through
// purego, without cgo.
//
// This file is compiled, not run, where it was written (there was no Mac): it reads as little
// as it can, checks the type of every Core Foundation value before using it, releases what the
// Create and Copy rule makes it own (and nothing it got by a Get), and reports unknown when a
// call or a value is not what it expects.

const (
	coreFoundationPath = "/System/Library/Frameworks/CoreFoundation.framework/CoreFoundation"
	ioKitPath          = "/System/Library/Frameworks/IOKit.framework/IOKit"
	foundationPath     = "/System/Library/Frameworks/Foundation.framework/Foundation"

	cfStringEncodingUTF8 = 0x08000100
	cfNumberSInt32Type   = 3
	iopmAssertionLevelOn = 255
)

// darwinAPI is the C functions used; Boolean returns are read as bool (purego looks at the low
// byte only).
type darwinAPI struct {
	CFRelease                 func(cf uintptr)
	CFGetTypeID               func(cf uintptr) uintptr
	CFStringGetTypeID         func() uintptr
	CFNumberGetTypeID         func() uintptr
	CFDictionaryGetTypeID     func() uintptr
	CFArrayGetTypeID          func() uintptr
	CFStringCreateWithCString func(alloc uintptr, cstr string, encoding uint32) uintptr
	CFStringGetCString        func(s uintptr, buf *byte, size int, encoding uint32) bool
	CFArrayGetCount           func(a uintptr) int
	CFArrayGetValueAtIndex    func(a uintptr, i int) uintptr
	CFDictionaryGetValue      func(d, key uintptr) uintptr
	CFNumberGetValue          func(n uintptr, typ int, out *int32) bool

	IOPSCopyPowerSourcesInfo        func() uintptr
	IOPSCopyPowerSourcesList        func(blob uintptr) uintptr
	IOPSGetPowerSourceDescription   func(blob, ps uintptr) uintptr
	IOPSGetProvidingPowerSourceType func(blob uintptr) uintptr
	IOPMAssertionCreateWithName     func(typ uintptr, level uint32, name uintptr, id *uint32) int32
	IOPMAssertionRelease            func(id uint32) int32

	// Core Foundation strings made once and kept: the dictionary keys and values compared.
	keyType, keyCurrent, keyMax, assertionType uintptr

	// NSProcessInfo.processInfo and its selectors (0 when Foundation could not be had).
	processInfo                        objc.ID
	selLowPower, selThermal, selRespon objc.SEL
}

// loadAPI opens the frameworks and binds the functions, once.
var loadAPI = sync.OnceValues(openAPI)

func openAPI() (*darwinAPI, error) {
	cf, err := purego.Dlopen(coreFoundationPath, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return nil, fmt.Errorf("open CoreFoundation: %w", err)
	}
	iokit, err := purego.Dlopen(ioKitPath, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return nil, fmt.Errorf("open IOKit: %w", err)
	}
	a := &darwinAPI{}
	bind := func(lib uintptr, fptr any, name string) error {
		sym, err := purego.Dlsym(lib, name)
		if err != nil || sym == 0 {
			return fmt.Errorf("%s: not found (%v)", name, err)
		}
		purego.RegisterFunc(fptr, sym)
		return nil
	}
	for _, b := range []struct {
		lib  uintptr
		fptr any
		name string
	}{
		{cf, &a.CFRelease, "CFRelease"},
		{cf, &a.CFGetTypeID, "CFGetTypeID"},
		{cf, &a.CFStringGetTypeID, "CFStringGetTypeID"},
		{cf, &a.CFNumberGetTypeID, "CFNumberGetTypeID"},
		{cf, &a.CFDictionaryGetTypeID, "CFDictionaryGetTypeID"},
		{cf, &a.CFArrayGetTypeID, "CFArrayGetTypeID"},
		{cf, &a.CFStringCreateWithCString, "CFStringCreateWithCString"},
		{cf, &a.CFStringGetCString, "CFStringGetCString"},
		{cf, &a.CFArrayGetCount, "CFArrayGetCount"},
		{cf, &a.CFArrayGetValueAtIndex, "CFArrayGetValueAtIndex"},
		{cf, &a.CFDictionaryGetValue, "CFDictionaryGetValue"},
		{cf, &a.CFNumberGetValue, "CFNumberGetValue"},
		{iokit, &a.IOPSCopyPowerSourcesInfo, "IOPSCopyPowerSourcesInfo"},
		{iokit, &a.IOPSCopyPowerSourcesList, "IOPSCopyPowerSourcesList"},
		{iokit, &a.IOPSGetPowerSourceDescription, "IOPSGetPowerSourceDescription"},
		{iokit, &a.IOPSGetProvidingPowerSourceType, "IOPSGetProvidingPowerSourceType"},
		{iokit, &a.IOPMAssertionCreateWithName, "IOPMAssertionCreateWithName"},
		{iokit, &a.IOPMAssertionRelease, "IOPMAssertionRelease"},
	} {
		if err := bind(b.lib, b.fptr, b.name); err != nil {
			return nil, err
		}
	}
	for _, s := range []struct {
		dst *uintptr
		v   string
	}{
		{&a.keyType, "Type"},                             // kIOPSTypeKey
		{&a.keyCurrent, "Current Capacity"},              // kIOPSCurrentCapacityKey
		{&a.keyMax, "Max Capacity"},                      // kIOPSMaxCapacityKey
		{&a.assertionType, "PreventUserIdleSystemSleep"}, // kIOPMAssertionTypePreventUserIdleSystemSleep
	} {
		if *s.dst = a.CFStringCreateWithCString(0, s.v, cfStringEncodingUTF8); *s.dst == 0 {
			return nil, fmt.Errorf("CFStringCreateWithCString(%q) failed", s.v)
		}
	}
	// NSProcessInfo: optional (Low Power Mode and the thermal state stay unknown without it).
	if _, err := purego.Dlopen(foundationPath, purego.RTLD_NOW|purego.RTLD_GLOBAL); err == nil {
		if cls := objc.GetClass("NSProcessInfo"); cls != 0 {
			a.processInfo = objc.ID(cls).Send(objc.RegisterName("processInfo"))
			a.selLowPower = objc.RegisterName("isLowPowerModeEnabled")
			a.selThermal = objc.RegisterName("thermalState")
			a.selRespon = objc.RegisterName("respondsToSelector:")
		}
	}
	return a, nil
}

// goString is a CFString's text, when v is a CFString of at most 255 bytes in UTF-8.
func (a *darwinAPI) goString(v uintptr) (string, bool) {
	if v == 0 || a.CFGetTypeID(v) != a.CFStringGetTypeID() {
		return "", false
	}
	var buf [256]byte
	if !a.CFStringGetCString(v, &buf[0], len(buf), cfStringEncodingUTF8) {
		return "", false
	}
	for i, c := range buf {
		if c == 0 {
			return string(buf[:i]), true
		}
	}
	return "", false
}

// int32Of is a CFNumber's value as an int32.
func (a *darwinAPI) int32Of(v uintptr) (int32, bool) {
	if v == 0 || a.CFGetTypeID(v) != a.CFNumberGetTypeID() {
		return 0, false
	}
	var n int32
	if !a.CFNumberGetValue(v, cfNumberSInt32Type, &n) {
		return 0, false
	}
	return n, true
}

// System reads this machine's power state: IOKit's power sources (AC, battery or UPS power,
// and the internal battery's charge) and NSProcessInfo's Low Power Mode and thermal state.
func System() Reader { return ReaderFunc(readDarwin) }

func readDarwin() (State, error) {
	st := Unknown()
	a, err := loadAPI()
	if err != nil {
		return st, err
	}
	a.readSource(&st)
	a.readProcessInfo(&st)
	if !st.Known.Source && !st.Known.LowPower && !st.Known.Thermal {
		return st, errors.New("neither IOKit's power sources nor NSProcessInfo could be read")
	}
	return st, nil
}

// readSource reads the providing power source and the internal battery's charge.
func (a *darwinAPI) readSource(st *State) {
	blob := a.IOPSCopyPowerSourcesInfo() // Copy: ours to release
	if blob == 0 {
		return
	}
	defer a.CFRelease(blob)
	// Get: not ours. "AC Power", "Battery Power" or "UPS Power".
	switch src, _ := a.goString(a.IOPSGetProvidingPowerSourceType(blob)); src {
	case "AC Power":
		st.Known.Source = true
	case "Battery Power":
		st.Known.Source, st.OnBattery = true, true
	}
	list := a.IOPSCopyPowerSourcesList(blob) // Copy: ours to release
	if list == 0 {
		return
	}
	defer a.CFRelease(list)
	if a.CFGetTypeID(list) != a.CFArrayGetTypeID() {
		return
	}
	n := a.CFArrayGetCount(list)
	for i := 0; i < n && i < 16; i++ {
		desc := a.IOPSGetPowerSourceDescription(blob, a.CFArrayGetValueAtIndex(list, i)) // Get
		if desc == 0 || a.CFGetTypeID(desc) != a.CFDictionaryGetTypeID() {
			continue
		}
		if typ, _ := a.goString(a.CFDictionaryGetValue(desc, a.keyType)); typ != "InternalBattery" {
			continue
		}
		cur, ok1 := a.int32Of(a.CFDictionaryGetValue(desc, a.keyCurrent))
		maxc, ok2 := a.int32Of(a.CFDictionaryGetValue(desc, a.keyMax))
		if ok1 && ok2 && maxc > 0 && cur >= 0 && cur <= maxc {
			st.BatteryPercent = int((int64(cur)*100 + int64(maxc)/2) / int64(maxc))
		}
		break
	}
}

// readProcessInfo reads NSProcessInfo's Low Power Mode (macOS 12 and later) and thermal state.
func (a *darwinAPI) readProcessInfo(st *State) {
	pi := a.processInfo
	if pi == 0 {
		return
	}
	if objc.Send[bool](pi, a.selRespon, a.selLowPower) {
		st.LowPower = objc.Send[bool](pi, a.selLowPower)
		st.Known.LowPower = true
	}
	if objc.Send[bool](pi, a.selRespon, a.selThermal) {
		// NSProcessInfoThermalState: 0 nominal, 1 fair, 2 serious, 3 critical.
		if t := objc.Send[int](pi, a.selThermal); t >= 0 && t <= 3 {
			st.Thermal = Thermal(t + 1)
			st.Known.Thermal = true
		}
	}
}

// SystemInhibitor keeps this machine awake while work is in progress: an IOKit
// PreventUserIdleSystemSleep assertion, held from Acquire to release (true: macOS has one).
func SystemInhibitor() (Inhibitor, bool) { return assertion{}, true }

type assertion struct{}

// Acquire creates the assertion, named reason (pmset -g assertions lists it).
func (assertion) Acquire(reason string) (func(), error) {
	a, err := loadAPI()
	if err != nil {
		return nil, err
	}
	name := a.CFStringCreateWithCString(0, reason, cfStringEncodingUTF8) // Create: ours
	if name == 0 {
		return nil, errors.New("CFStringCreateWithCString failed")
	}
	defer a.CFRelease(name) // the assertion keeps its own reference
	var id uint32
	if r := a.IOPMAssertionCreateWithName(a.assertionType, iopmAssertionLevelOn, name, &id); r != 0 {
		return nil, fmt.Errorf("IOPMAssertionCreateWithName: IOReturn 0x%x", uint32(r))
	}
	var once sync.Once
	return func() { once.Do(func() { a.IOPMAssertionRelease(id) }) }, nil
}

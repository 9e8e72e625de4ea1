package cuda

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var optionCases = []struct {
	name    string
	spec    string
	want    Options
	str     string // want.String(): "" for the defaults
	wantErr string // a substring of the error
}{
	{name: "empty", spec: "", str: ""},
	{name: "blank", spec: "  ", str: ""},
	{name: "every switch", spec: "attn=rows,flash=convert,lt=off,halfout=off,graphs=off,pick=off,precise=on,smallrows=16",
		want: Options{AttnRows: true, FlashConvert: true, NoLt: true, NoHalfOut: true, NoGraphs: true, NoPick: true, Precise: true, SmallRows: 16},
		str:  "attn=rows,flash=convert,graphs=off,halfout=off,lt=off,pick=off,precise=on,smallrows=16"},
	{name: "defaults spelled out", spec: "attn=split,flash=wide,graphs=on,halfout=on,lt=on,pick=on,pickpass=one,precise=off,smallrows=8", str: ""},
	{name: "spaces", spec: " lt = off , pick=off ", want: Options{NoLt: true, NoPick: true}, str: "lt=off,pick=off"},
	{name: "small rows off", spec: "smallrows=off", want: Options{SmallRows: -1}, str: "smallrows=off"},
	{name: "narrow flash attention, removed", spec: "flash=narrow", wantErr: "flash=narrow: unknown value"},
	{name: "attention on the CUDA cores", spec: "attnmma=off", want: Options{NoAttnMMA: true}, str: "attnmma=off"},
	{name: "diagnostics", spec: "profilestep=150,graphtimes=on", want: Options{GraphTimes: true, ProfileStep: 150}, str: "graphtimes=on,profilestep=150"},
	{name: "diagnostics off", spec: "profilestep=off,graphtimes=off", str: ""},
	{name: "keys and values copied", spec: "kvrows=copy", want: Options{NoKVRows: true}, str: "kvrows=copy"},
	{name: "steps queued whole", spec: "graphcut=off", want: Options{NoGraphCut: true}, str: "graphcut=off"},
	{name: "three projections", spec: "qkv=three", want: Options{NoQKV: true}, str: "qkv=three"},
	{name: "two passes", spec: "pickpass=two", want: Options{PickTwoPass: true}, str: "pickpass=two"},
	{name: "profile step zero", spec: "profilestep=0", wantErr: "profilestep=0: unknown value (want off|N)"},
	{name: "unknown key", spec: "lt=off,fast=on", wantErr: `unknown cuda option "fast" (keys: attn, attngroup, attnmma, flash, graphcut, graphs, graphtimes, halfout, kvrows, lt, padn, pick, pickpass, precise, profilestep, qkv, smallrows)`},
	{name: "unknown value", spec: "lt=maybe", wantErr: "cuda option lt=maybe: unknown value (want on|off)"},
	{name: "unknown attn value", spec: "attn=off", wantErr: "cuda option attn=off: unknown value (want split|rows)"},
	{name: "small rows zero", spec: "smallrows=0", wantErr: "smallrows=0: unknown value (want 8|N|off)"},
	{name: "small rows negative", spec: "smallrows=-1", wantErr: "smallrows=-1"},
	{name: "small rows not a number", spec: "smallrows=many", wantErr: "smallrows=many"},
	{name: "twice", spec: "lt=off,lt=on", wantErr: `cuda option "lt" given twice`},
	{name: "no value", spec: "lt", wantErr: `cuda option "lt": want key=value`},
	{name: "empty value", spec: "lt=", wantErr: `cuda option "lt=": want key=value`},
	{name: "empty item", spec: "lt=off,,pick=off", wantErr: `cuda option "": want key=value`},
	{name: "device is no key", spec: "device=1", wantErr: `unknown cuda option "device"`},
	{name: "case matters", spec: "LT=off", wantErr: `unknown cuda option "LT"`},
}

// TestParseOptions: every key and value, defaults spelled out, spaces, and the errors, each
// naming the key or value at fault; String prints the switches back in key order.
func TestParseOptions(t *testing.T) {
	for _, c := range optionCases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseOptions(c.spec)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
			}
			if s := got.String(); s != c.str {
				t.Errorf("String() = %q, want %q", s, c.str)
			}
			if s := (&Backend{opts: got}).Settings(); s != c.str {
				t.Errorf("Settings() = %q, want %q", s, c.str)
			}
		})
	}
}

// TestOptionsString: Device and Profile change no output and are left out; SmallRows at its
// default value is a default.
func TestOptionsString(t *testing.T) {
	cases := []struct {
		o    Options
		want string
	}{
		{Options{Device: 3, Profile: true}, ""},
		{Options{SmallRows: 8}, ""},
		{Options{SmallRows: -5}, "smallrows=off"},
		{Options{Device: 1, NoGraphs: true}, "graphs=off"},
	}
	for _, c := range cases {
		if got := c.o.String(); got != c.want {
			t.Errorf("%#v.String() = %q, want %q", c.o, got, c.want)
		}
	}
}

// TestOptionKeys: the help line lists every key in String's order with its default first.
func TestOptionKeys(t *testing.T) {
	want := "attn=split|rows, attngroup=on|off, attnmma=on|off, flash=wide|convert, graphcut=on|off, graphs=on|off, graphtimes=off|on, halfout=on|off, kvrows=gemm|copy, lt=on|off, padn=on|off, pick=on|off, pickpass=one|two, precise=off|on, profilestep=off|N, qkv=one|three, smallrows=8|N|off"
	if got := OptionKeys(); got != want {
		t.Errorf("OptionKeys() = %q, want %q", got, want)
	}
}

// FuzzParseOptions: no spec panics, and a spec that parses prints as one that parses to the same
// options (String is canonical: printing those again gives the same text).
func FuzzParseOptions(f *testing.F) {
	for _, c := range optionCases {
		f.Add(c.spec)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		o, err := ParseOptions(spec)
		if err != nil {
			return
		}
		s := o.String()
		again, err := ParseOptions(s)
		if err != nil {
			t.Fatalf("ParseOptions(%q) = %v, the String of ParseOptions(%q)", s, err, spec)
		}
		if again != o {
			t.Fatalf("%q -> %#v -> %q -> %#v", spec, o, s, again)
		}
		if again.String() != s {
			t.Fatalf("String not canonical: %q then %q", s, again.String())
		}
	})
}

package cuda

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/verbatimhq/verbatim/tensor"
)

// Options configures a Backend. Device and Profile choose the GPU and turn on timing; every other
// field has a key in ParseOptions, which is how a command line sets it: a switch that changes
// which kernels run or how they round, or one of two diagnostics (GraphTimes, ProfileStep).
type Options struct {
	// Device is the CUDA device ordinal.
	Device int
	// Profile records the GPU time of every op by kind (with CUDA events); see Backend.Profile.
	// It also runs the decoder step op by op (no CUDA graphs), which gives the same results.
	Profile bool

	// Precise computes everything in f32: F16/BF16 weights are widened before GEMMs and attention
	// always uses the exact kernel. Slower; for parity tests. Key precise=on.
	Precise bool
	// SmallRows is the largest row count for which Linear with a 16-bit weight runs the fused
	// small-M kernel (one launch, f32 input, bias/GELU/residual inside) instead of cuBLAS
	// [default 8: measured slower than cuBLAS at 16 rows; negative: never]. Key smallrows=N|off.
	SmallRows int
	// AttnRows turns off the split-K decoding attention kernel (k_attn_split_*, several blocks
	// per query row and head over slices of the keys, then a combine): decoding attention then
	// runs the one-block-per-row kernel. Key attn=rows.
	AttnRows bool
	// AttnEach runs the split-K decoding attention once per query row even where several rows
	// (beam search's beams of one window, up to 8) read the same keys and values, instead of one
	// block per head and slice of keys for all of them (the group kernels, f16 keys and
	// values, non-causal; see NoAttnMMA). Key attngroup=off.
	AttnEach bool
	// NoAttnMMA runs the work of the rows that read the same f16 keys and values (2 to 8 a
	// group) on the CUDA cores (k_attn_group*_h, f32 products) instead of the tensor cores
	// (k_attn_gmma_h: q and the probabilities rounded to f16 for the products, as the encoder's
	// flash kernel rounds them; 1.4x faster at 32 windows of beam search 5 on an H100). Key
	// attnmma=off.
	NoAttnMMA bool
	// FlashConvert runs the f32-loading flash kernel (k_attn_flash) for F16 keys and values too,
	// instead of k_attn_flash_w (cp.async double-buffered f16 tiles, ldmatrix, 32 query rows a
	// warp). Key flash=convert.
	FlashConvert bool
	// NoHalfOut writes the encoder's layer norms and attention outputs in f32 with an f16 copy
	// for the projections that read them, instead of in f16 alone, packed in place
	// (tensor.HalfOutputs): the projections' GEMMs read the same f16 values either way, so the
	// results do not change (TestHalfOutputs); f16 alone spares the f32 writes (turbo's encode
	// phase 1.97-2.00 -> 1.93-1.95 s on an H200, docs/performance.md). Key halfout=off.
	NoHalfOut bool
	// NoPadN runs a 16-bit Linear whose output count is not a multiple of 8 (the LM head's
	// 51,866 tokens) as it is, instead of on a copy of the weight padded with zero rows to a
	// multiple of 8 (made once, kept with the weight) into a block of that many columns, which
	// the picks read in place and anything else after a copy (padout.go). cuBLASLt offers only
	// its sm80 kernels for the unpadded shape: 155 us for 160 rows on an H100 against 72 us padded
	// (calls 29 and 30). The same products (TestPadN). Key padn=off.
	NoPadN bool
	// NoKVRows runs a decoder step's key and value projections into a scratch and copies them
	// into the f16 caches (k_setrows), instead of one cuBLASLt GEMM a projection writing its rows
	// straight into the caches (Backend.LinearRows). Key kvrows=copy.
	NoKVRows bool
	// NoQKV runs a decoder step's self-attention projections as three GEMMs (the query's, then
	// the keys' and values' into the caches, as NoKVRows says), instead of one GEMM of the three
	// weights loaded as one and a split of its output (Backend.LinearQKV). The weights are loaded
	// fused only where this is off. Key qkv=three.
	NoQKV bool
	// NoLt turns off the cuBLASLt path of Linear with 16-bit weights above SmallRows rows (bias
	// in the GEMM's epilogue, the residual as beta = 1, f16 GELU output kept packed in place):
	// Linear then runs cublasGemmEx plus the k_epi pass. Key lt=off.
	NoLt bool
	// NoGraphs runs the decoder step op by op instead of replaying it from CUDA graphs
	// (tensor.Grapher; graph.go). Key graphs=off.
	NoGraphs bool
	// NoGraphCut queues a decoder step's recording whole when it ends, instead of in pieces of
	// some 32 ops as it is recorded (CutGraph, tensor.GraphCutter: the device runs the first
	// layers while the host records the rest). The same ops in the same order. Key graphcut=off.
	NoGraphCut bool
	// NoPick reads each step's logits back and makes greedy picks and beam search's k best on the
	// host instead of on the GPU (tensor.RowPicker and tensor.TopPicker; pick.go, where a batched
	// decoder step reads back three numbers a row, and k candidates more for a beam). Key pick=off.
	NoPick bool
	// PickTwoPass ranks beam search's candidates of many rows (one block a row) with k_pick_top,
	// which reads each row twice (the timestamp rule first, then the picks), instead of
	// k_pick_top1, which reads it once where the timestamps fit its registers (whisper's 1,501):
	// the same tokens, the log-sum-exp summed in another order (TestPickTop holds both to the
	// host's picks). Key pickpass=two.
	PickTwoPass bool
	// GraphTimes times each decoder step's graph launch, capture or plain ops on the GPU with
	// CUDA events, by what EndGraph did (GraphStats.Ms). It changes no output; the events cost
	// a little. Key graphtimes=on.
	GraphTimes bool
	// ProfileStep starts an attached profiler's collection (cuProfilerStart, for ncu
	// --profile-from-start off) at the Nth batched decoder step (a recording of more than 64
	// token ids, counted from 1) and stops it two steps later, the picks and reorders between
	// them included: how ncu finds the batched steps of a long run. It counts the steps
	// recorded for CUDA graphs, so it does nothing with NoGraphs or Profile. It changes no
	// output. Key profilestep=N [off].
	ProfileStep int
}

// defaultSmallRows is SmallRows when it is 0.
const defaultSmallRows = 8

// optionKey is one key of ParseOptions: its values (the default first, as the help shows them),
// how a value sets Options, and how Options shows it ("" at the default).
type optionKey struct {
	name   string
	values string
	set    func(o *Options, v string) bool // false: v is not a value of this key
	show   func(o Options) string
}

// optionKeys are ParseOptions' keys, in the order String prints them (sorted by name).
var optionKeys = []optionKey{
	flag("attn", "split", "rows", func(o *Options) *bool { return &o.AttnRows }),
	flag("attngroup", "on", "off", func(o *Options) *bool { return &o.AttnEach }),
	flag("attnmma", "on", "off", func(o *Options) *bool { return &o.NoAttnMMA }),
	flag("flash", "wide", "convert", func(o *Options) *bool { return &o.FlashConvert }),
	flag("graphcut", "on", "off", func(o *Options) *bool { return &o.NoGraphCut }),
	flag("graphs", "on", "off", func(o *Options) *bool { return &o.NoGraphs }),
	flag("graphtimes", "off", "on", func(o *Options) *bool { return &o.GraphTimes }),
	flag("halfout", "on", "off", func(o *Options) *bool { return &o.NoHalfOut }),
	flag("kvrows", "gemm", "copy", func(o *Options) *bool { return &o.NoKVRows }),
	flag("lt", "on", "off", func(o *Options) *bool { return &o.NoLt }),
	flag("padn", "on", "off", func(o *Options) *bool { return &o.NoPadN }),
	flag("pick", "on", "off", func(o *Options) *bool { return &o.NoPick }),
	flag("pickpass", "one", "two", func(o *Options) *bool { return &o.PickTwoPass }),
	flag("precise", "off", "on", func(o *Options) *bool { return &o.Precise }),
	{
		name: "profilestep", values: "off|N",
		set: func(o *Options, v string) bool {
			if v == "off" {
				o.ProfileStep = 0
				return true
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || strconv.Itoa(n) != v {
				return false
			}
			o.ProfileStep = n
			return true
		},
		show: func(o Options) string {
			if o.ProfileStep <= 0 {
				return ""
			}
			return strconv.Itoa(o.ProfileStep)
		},
	},
	flag("qkv", "one", "three", func(o *Options) *bool { return &o.NoQKV }),
	{
		name: "smallrows", values: strconv.Itoa(defaultSmallRows) + "|N|off",
		set: func(o *Options, v string) bool {
			if v == "off" {
				o.SmallRows = -1
				return true
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || strconv.Itoa(n) != v {
				return false
			}
			o.SmallRows = n
			if n == defaultSmallRows {
				o.SmallRows = 0
			}
			return true
		},
		show: func(o Options) string {
			switch {
			case o.SmallRows < 0:
				return "off"
			case o.SmallRows == 0 || o.SmallRows == defaultSmallRows:
				return ""
			}
			return strconv.Itoa(o.SmallRows)
		},
	},
}

// flag is a key with two values, def (the field false) and alt (the field true).
func flag(name, def, alt string, field func(o *Options) *bool) optionKey {
	return optionKey{
		name: name, values: def + "|" + alt,
		set: func(o *Options, v string) bool {
			switch v {
			case def:
				*field(o) = false
			case alt:
				*field(o) = true
			default:
				return false
			}
			return true
		},
		show: func(o Options) string {
			if *field(&o) {
				return alt
			}
			return ""
		},
	}
}

// ParseOptions reads the switches of a spec such as "attn=rows,lt=off,smallrows=16": key=value
// pairs separated by commas, each key at most once, spaces around them ignored. The empty spec
// is the defaults. The keys, with their default value first:
//
//	attn=split|rows       split-K decoding attention, or one block per query row (AttnRows)
//	attngroup=on|off      one split-K block for the rows that read the same K/V (beams in
//	                      cross-attention), or one per row (AttnEach)
//	attnmma=on|off        the group kernels on the tensor cores, or on the CUDA cores (NoAttnMMA)
//	flash=wide|convert    flash attention on f16 K/V tiles, or the f32-loading kernel (FlashConvert)
//	graphcut=on|off       a decoder step's recording queued in pieces as it is recorded, or
//	                      whole at its end (NoGraphCut)
//	graphs=on|off         decoder steps replayed from CUDA graphs, or op by op (NoGraphs)
//	graphtimes=off|on     the GPU time of each step's graph or ops, by kind (GraphTimes)
//	halfout=on|off        the encoder's layer norms and attention outputs in f16 alone, packed
//	                      for the projections that read them, or in f32 with an f16 copy (NoHalfOut)
//	kvrows=gemm|copy      a decoder step's new keys and values written into the caches by
//	                      their GEMM, or into a scratch and copied (NoKVRows)
//	lt=on|off             cuBLASLt epilogues for 16-bit Linear, or cuBLAS plus a pass (NoLt)
//	padn=on|off           a 16-bit Linear of n outputs, n not a multiple of 8, on the weight
//	                      padded to a multiple of 8, or as it is (NoPadN)
//	pick=on|off           greedy picks and beam search's k best on the GPU, or on the host
//	                      from the logits (NoPick)
//	pickpass=one|two      beam search's candidates of many rows read in one pass, or two
//	                      (PickTwoPass)
//	precise=off|on        f16 tensor-core arithmetic, or f32 everywhere (Precise)
//	profilestep=off|N     an attached profiler collects from the Nth batched step (ProfileStep)
//	qkv=one|three         a decoder step's self-attention projections as one GEMM, or three (NoQKV)
//	smallrows=8|N|off     the fused small-M Linear up to N rows, or never (SmallRows)
//
// An unknown key or value is an error naming it. Device and Profile are not keys: they change no
// output. Options.String prints the spec back.
func ParseOptions(spec string) (Options, error) {
	var o Options
	if strings.TrimSpace(spec) == "" {
		return o, nil
	}
	seen := map[string]bool{}
	for item := range strings.SplitSeq(spec, ",") {
		item = strings.TrimSpace(item)
		k, v, ok := strings.Cut(item, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || v == "" {
			return Options{}, fmt.Errorf("cuda option %q: want key=value", item)
		}
		i := keyIndex(k)
		if i < 0 {
			return Options{}, fmt.Errorf("unknown cuda option %q (keys: %s)", k, keyNames())
		}
		if seen[k] {
			return Options{}, fmt.Errorf("cuda option %q given twice", k)
		}
		seen[k] = true
		if !optionKeys[i].set(&o, v) {
			return Options{}, fmt.Errorf("cuda option %s=%s: unknown value (want %s)", k, v, optionKeys[i].values)
		}
	}
	return o, nil
}

// String is o's switches that are not at their default, as ParseOptions reads them: key=value
// pairs sorted by key, separated by commas; "" when all are defaults. Device and Profile are
// left out.
func (o Options) String() string {
	var parts []string
	for _, k := range optionKeys {
		if v := k.show(o); v != "" {
			parts = append(parts, k.name+"="+v)
		}
	}
	return strings.Join(parts, ",")
}

// OptionKeys lists ParseOptions' keys with their values, the default first, for a command's help:
// "attn=split|rows, flash=wide|convert, ...".
func OptionKeys() string {
	parts := make([]string, len(optionKeys))
	for i, k := range optionKeys {
		parts[i] = k.name + "=" + k.values
	}
	return strings.Join(parts, ", ")
}

func keyIndex(name string) int {
	for i, k := range optionKeys {
		if k.name == name {
			return i
		}
	}
	return -1
}

func keyNames() string {
	names := make([]string, len(optionKeys))
	for i, k := range optionKeys {
		names[i] = k.name
	}
	return strings.Join(names, ", ")
}

var _ tensor.Tuned = (*Backend)(nil)

// Settings returns the switches the backend was opened with, as Options.String prints them
// (tensor.Tuned): "" when all are defaults.
func (be *Backend) Settings() string { return be.opts.String() }

//go:build verbatim_kv8

package whisper

import (
	"fmt"
	"os"

	"github.com/verbatimhq/verbatim/tensor"
)

// A build with the tag verbatim_kv8 (an accuracy experiment; releases never have it) reads
// VERBATIM_KV8: "int8" or "e4m3" rounds every encoding's cross-attention K/V (roundKV8, a
// scale per position and head); unset or empty leaves them as computed.
func init() {
	mode := os.Getenv("VERBATIM_KV8")
	switch mode {
	case "":
		return
	case "int8", "e4m3":
	default:
		fmt.Fprintf(os.Stderr, "VERBATIM_KV8=%q: want int8 or e4m3\n", mode)
		os.Exit(2)
	}
	roundCrossKV = func(m *Model, enc *Encoded) {
		group := m.Config.NTextState / m.Config.NTextHead
		for _, ts := range [][]*tensor.Tensor{enc.crossK, enc.crossV} {
			for _, t := range ts {
				v := m.b.ToF32(t)
				roundKV8(v, group, mode)
				f := m.b.FromF32(v, t.Shape...)
				m.b.Copy(t, f)
				m.b.Free(f)
			}
		}
	}
}

package cuda

import (
	_ "embed"
	"regexp"
	"strings"
)

// kernelSource is compiled by NVRTC for the device's SM on first use and cached on disk.
//
//go:embed kernels.cu
var kernelSource string

// kernelNames are the entry points looked up in the compiled module.
var kernelNames = []string{
	"k_unary", "k_binary", "k_bias_mid", "k_cvt", "k_layernorm", "k_softmax", "k_transpose",
	"k_im2col", "k_gather", "k_setrows", "k_attn_rows", "k_attn_flash",
	"k_epi", "k_linear_small1", "k_linear_small4", "k_linear_small8",
	"k_attn_split_h", "k_attn_split_f", "k_attn_combine", "k_attn_flash_w", "k_gelu_h",
	"k_pick",
	"k_pick_top", "k_pick_top1", "k_copy_rows", "k_unpad",
	"k_attn_group2_h", "k_attn_group4_h", "k_attn_group5_h", "k_attn_group8_h",
	"k_linear_mma", "k_pick_top_p1", "k_pick_top_p2", "k_pick_top_p3",
	"k_attn_gmma_h", "k_logmel", "k_logmel_norm", "k_qkv_rows",
}

// kernelParams is the number of parameters of each entry point in kernelSource, read from its
// extern "C" declarations (a name with ##G## stands for the macro's instances, G a number):
// kernel checks every launch's argument count against it, so that a launch with arguments
// missing or extra panics naming the kernel instead of running on shifted arguments.
var kernelParams = parseKernelParams(kernelSource)

var kernelDecl = regexp.MustCompile(`extern "C" __global__ void (?:__launch_bounds__\([^)]*\) )?(\w+(?:##\w+##\w*)?)\(([^)]*)\)`)

func parseKernelParams(src string) map[string]int {
	out := map[string]int{}
	for _, m := range kernelDecl.FindAllStringSubmatch(src, -1) {
		name, params := m[1], strings.TrimSpace(m[2])
		n := 0
		if params != "" && params != "void" {
			n = strings.Count(params, ",") + 1
		}
		if i := strings.Index(name, "##"); i >= 0 {
			j := strings.Index(name[i+2:], "##") + i + 2
			pre, post := name[:i], name[j+2:]
			for _, k := range kernelNames {
				if mid, ok := strings.CutPrefix(k, pre); ok {
					if g, ok := strings.CutSuffix(mid, post); ok && g != "" && strings.Trim(g, "0123456789") == "" {
						out[k] = n
					}
				}
			}
			continue
		}
		out[name] = n
	}
	return out
}

package cuda

import _ "embed"

// kernelSource is compiled by NVRTC for the device's SM on first use and cached on disk.
//
//go:embed kernels.cu
var kernelSource string

// kernelNames are the entry points looked up in the compiled module.
var kernelNames = []string{
	"k_unary", "k_binary", "k_bias_mid", "k_cvt", "k_layernorm", "k_softmax", "k_transpose",
	"k_im2col", "k_gather", "k_setrows", "k_attn_rows", "k_attn_flash",
	"k_epi", "k_linear_small1", "k_linear_small4", "k_linear_small8",
	"k_attn_split_h", "k_attn_split_f", "k_attn_combine", "k_attn_flash_w", "k_attn_flash_w32", "k_gelu_h",
	"k_pick",
	"k_pick_top", "k_copy_rows",
	"k_attn_group2_h", "k_attn_group4_h", "k_attn_group5_h", "k_attn_group8_h",
	"k_linear_mma", "k_pick_top_p1", "k_pick_top_p2", "k_pick_top_p3",
	"k_attn_gmma_h", "k_logmel", "k_logmel_norm",
}

//go:build !nomini

package mini

// embedsModel says whether this build embeds the model file (embed.go): in every build but
// -tags nomini a missing mini/model/ggml-mini.bin is a failure, not a reason to skip.
const embedsModel = true

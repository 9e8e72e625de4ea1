//go:build !nomini

package mini

import _ "embed" // the model file and its sha256

// data is model/ggml-mini.bin, in the binary's read-only data: Embedded returns it without a
// copy, and Install checks an installed file against sum without reading it. Build with -tags
// nomini to leave it out: a binary 28 MB smaller, for the GPU machine, whose calls carry at most
// 64 MiB.
//
//go:embed model/ggml-mini.bin
var data string

// sum is model/ggml-mini.bin.sha256: the file's sha256 in hex (a test holds it to data).
//
//go:embed model/ggml-mini.bin.sha256
var sum string

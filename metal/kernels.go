package metal

import _ "embed"

// kernelSource is the Metal Shading Language source of every kernel, compiled once when the
// backend opens.
//
//go:embed kernels.metal
var kernelSource string

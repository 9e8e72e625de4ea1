//go:build !nomini

package mini

import "embed"

// files holds model/ (the model file, once built). Build with -tags nomini to leave it out: a
// binary 28 MB smaller, for the GPU machine, whose calls carry at most 64 MiB.
//
//go:embed model
var files embed.FS

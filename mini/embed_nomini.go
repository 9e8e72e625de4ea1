//go:build nomini

package mini

import "embed"

// files is empty in a nomini build: Embedded returns nil and --model mini says the model is
// not built (see embed.go).
var files embed.FS

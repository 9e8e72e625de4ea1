//go:build nomini

package mini

// data and sum are empty in a nomini build: Embedded returns nil and --model mini says the model
// is not built (see embed.go).
var data, sum string

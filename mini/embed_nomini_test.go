//go:build nomini

package mini

// embedsModel is false in a nomini build (embed_nomini.go): the tests of the embedded model skip.
const embedsModel = false

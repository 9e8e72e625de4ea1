//go:build !unix

package api

import "io/fs"

// ownedByMe: no owners to compare here.
func ownedByMe(fs.FileInfo) error { return nil }

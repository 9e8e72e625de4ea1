// Package models knows the published Whisper models (Catalog: name, size and SHA-256 of each
// whisper.cpp ggml file), where installed models live (Dir), and how to fetch one (Pull: HTTPS,
// resumable, verified while streaming, installed atomically), check one (Verify), list them
// (Installed) and turn a --model argument into a file (Resolve). Pull is the only network access
// the program makes on its own; nothing else in this package touches the network.
package models

import (
	"errors"
	"fmt"
	"strings"
)

// DefaultBaseURL is the canonical public location of whisper.cpp's converted models; a model's
// URL is DefaultBaseURL + "/" + its File().
const DefaultBaseURL = "https://huggingface.co/ggerganov/whisper.cpp/resolve/main"

// Entry is one published model file.
type Entry struct {
	Name   string // "large-v3-turbo", "small.en-q8_0"
	Size   int64  // bytes
	SHA256 string // lowercase hex of the whole file
}

// File is the entry's file name, the same upstream and in the models folder.
func (e Entry) File() string { return "ggml-" + e.Name + ".bin" }

// URL is where the entry is downloaded from under base (DefaultBaseURL when empty).
func (e Entry) URL(base string) string {
	if base == "" {
		base = DefaultBaseURL
	}
	return strings.TrimRight(base, "/") + "/" + e.File()
}

var (
	// ErrUnknown: the name is not in the catalog.
	ErrUnknown = errors.New("unknown model")
	// ErrChecksum: a file's size or SHA-256 is not the one in the catalog.
	ErrChecksum = errors.New("checksum mismatch")
	// ErrNotInstalled: a known model is not in the models folder.
	ErrNotInstalled = errors.New("model not installed")
	// ErrNoModel: no --model was given and no default model is installed.
	ErrNoModel = errors.New("no model installed")
)

// ChecksumError says how a file differs from its catalog entry.
type ChecksumError struct {
	Path   string
	Entry  Entry
	Size   int64  // the file's size
	SHA256 string // the file's hash; empty when the size already differs
}

func (e *ChecksumError) Error() string {
	if e.Size != e.Entry.Size {
		return fmt.Sprintf("%s: %d bytes, but %s is %d bytes: %v", e.Path, e.Size, e.Entry.Name, e.Entry.Size, ErrChecksum)
	}
	return fmt.Sprintf("%s: sha256 %s, but %s is %s: %v", e.Path, e.SHA256, e.Entry.Name, e.Entry.SHA256, ErrChecksum)
}

func (e *ChecksumError) Unwrap() error { return ErrChecksum }

// Lookup finds a catalog entry by name; "ggml-NAME.bin" is accepted too.
func Lookup(name string) (Entry, bool) {
	name = strings.TrimSuffix(strings.TrimPrefix(name, "ggml-"), ".bin")
	for _, e := range Catalog {
		if e.Name == name {
			return e, true
		}
	}
	return Entry{}, false
}

// HumanSize formats a byte count in decimal units, as download sizes are usually quoted
// ("1.6 GB", "77.7 MB").
func HumanSize(n int64) string {
	const k = 1000
	switch {
	case n >= k*k*k:
		return fmt.Sprintf("%.1f GB", float64(n)/(k*k*k))
	case n >= k*k:
		return fmt.Sprintf("%.1f MB", float64(n)/(k*k))
	case n >= k:
		return fmt.Sprintf("%.1f kB", float64(n)/k)
	}
	return fmt.Sprintf("%d B", n)
}

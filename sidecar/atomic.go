// Package sidecar writes the files that go beside a transcribed input: SRT and WebVTT subtitles
// shaped for reading (Shape), plain text, a Markdown note and a JSON record of the run (Document).
// WriteAll renders them all in memory and writes each atomically (WriteFile); Current tells
// whether existing sidecars already match an input and settings, and CleanTemp removes what a
// crash left behind. The package does not import the engine: the pipeline converts its result
// into a Transcript.
package sidecar

import (
	"os"

	"github.com/verbatimhq/verbatim/durable"
)

// TempPrefix starts the name of every temporary file this package writes; the watcher ignores it.
const TempPrefix = durable.TempPrefix

// WriteFile writes data to path atomically (see package durable): a crash leaves either the old
// file or the new one, never a mix; on error the temp file is removed and path is untouched.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return durable.WriteFile(path, data, perm)
}

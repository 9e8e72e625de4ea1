//go:build !(linux || darwin)

package cpu

// ReleaseMapped does nothing where model files are read into memory rather than mapped (see the
// Unix version).
func (be *Backend) ReleaseMapped(raw []byte) {}

// mapAnon returns nil: tensors keep their values in the Go heap here.
func mapAnon(size int) []byte { return nil }

func unmapAnon(mem []byte) {}

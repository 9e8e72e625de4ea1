package weights

import (
	"errors"
	"io"
)

// The entries the tests and fuzzers use besides Open: a header alone (the header fixtures), and
// a model in memory (the fuzzers, which parse through the same parse as Open, without files).

// readHeader reads only the header of a model file: the configuration and, for ggml, ftype, mel
// filters and vocabulary. The result has no tensors and needs no Close. A ggml file cut after its
// header (no tensors) reads without error.
func readHeader(path string) (*File, error) { return open(path, true) }

// openReaderAt validates a model held by r, which has size bytes, as Open validates a file: a
// ggml .bin, or a model.safetensors whose config.json is config (unused for ggml; nil where
// there is none). name stands for the file in errors and in File.Path. The tensors' Data are
// views of r's bytes when r also has a method Bytes() []byte returning all size of them (as the
// file mappings of Open do), and copies read from r otherwise. Errors are as Open's.
func openReaderAt(name string, r io.ReaderAt, size int64, config []byte) (*File, error) {
	f, err := parse(newSource(name, r, size), func() ([]byte, error) {
		if config == nil {
			return nil, errors.New("missing")
		}
		return config, nil
	}, false)
	if err != nil {
		return nil, err
	}
	f.unmap = func() error { return nil }
	return f, nil
}

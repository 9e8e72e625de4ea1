// Package weights reads and writes Whisper model files: whisper.cpp's ggml .bin and Hugging Face
// model.safetensors + config.json. Files are memory-mapped; every tensor's name, shape and dtype is
// validated against the architecture, and errors name the file and the tensor. Tensors are
// presented under OpenAI's canonical names with PyTorch shapes (outermost first).
package weights

import "github.com/verbatimhq/verbatim/tensor"

// Format is a model file format.
type Format int

const (
	GGML Format = iota + 1
	Safetensors
)

// Config is a Whisper architecture (whisper.cpp's hparams).
type Config struct {
	NVocab      int
	NAudioCtx   int // 1500
	NAudioState int // d_model of the encoder
	NAudioHead  int
	NAudioLayer int
	NTextCtx    int // 448
	NTextState  int
	NTextHead   int
	NTextLayer  int
	NMels       int // 80 or 128
}

// Tensor is one stored tensor: canonical name, dtype as stored, PyTorch shape, and its raw bytes
// (little-endian, ggml block layout for quantized types), pointing into the mapped file.
type Tensor struct {
	Name  string
	DType tensor.DType
	Shape []int
	Data  []byte
}

// File is an open model file. Its tensors stay valid until Close.
type File struct {
	Path       string
	Format     Format
	Config     Config
	Arch       string             // "tiny", "large-v3-turbo", "micro", ... or "custom"
	Tensors    map[string]*Tensor // by canonical name
	MelFilters []float32          // [NMels, 201] from a ggml header; nil for safetensors
	Vocab      [][]byte           // token bytes by id from a ggml header; nil for safetensors
}

package models

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/verbatimhq/verbatim/sidecar"
)

// HashFile returns the SHA-256 of the file at path, in lowercase hex, stopping early when ctx
// is done.
func HashFile(ctx context.Context, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, readerCtx{ctx, f}, make([]byte, 1<<20)); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Hash is HashFile with a cache: a small hidden file beside the model records the digest with
// the size and modification time it was computed for, and is trusted only while both still
// match. Use it for listing; Verify always reads the whole file.
func Hash(ctx context.Context, path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if sum, ok := cachedHash(path, fi); ok {
		return sum, nil
	}
	sum, err := HashFile(ctx, path)
	if err != nil {
		return "", err
	}
	saveHash(path, fi, sum)
	return sum, nil
}

// hashRecord is the content of a hash cache file.
type hashRecord struct {
	Size    int64  `json:"size"`
	ModTime int64  `json:"mtime_ns"`
	SHA256  string `json:"sha256"`
}

// hashCachePath is the hidden file beside path that caches its digest.
func hashCachePath(path string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".sha256")
}

func cachedHash(path string, fi fs.FileInfo) (string, bool) {
	b, err := os.ReadFile(hashCachePath(path))
	if err != nil {
		return "", false
	}
	var r hashRecord
	if json.Unmarshal(b, &r) != nil || r.Size != fi.Size() || r.ModTime != fi.ModTime().UnixNano() || len(r.SHA256) != 64 {
		return "", false
	}
	return r.SHA256, true
}

// saveHash records sum for path as it was when fi was taken. Errors are ignored: the cache only
// saves time.
func saveHash(path string, fi fs.FileInfo, sum string) {
	b, err := json.Marshal(hashRecord{Size: fi.Size(), ModTime: fi.ModTime().UnixNano(), SHA256: sum})
	if err != nil {
		return
	}
	_ = sidecar.WriteFile(hashCachePath(path), append(b, '\n'), 0o644)
}

// Verify reads the whole file at path and checks its size and SHA-256 against e: nil, a
// *ChecksumError (ErrChecksum), or the error that stopped the reading. A good result refreshes
// the hash cache.
func Verify(ctx context.Context, path string, e Entry) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Size() != e.Size {
		return &ChecksumError{Path: path, Entry: e, Size: fi.Size()}
	}
	sum, err := HashFile(ctx, path)
	if err != nil {
		return err
	}
	if sum != e.SHA256 {
		return &ChecksumError{Path: path, Entry: e, Size: fi.Size(), SHA256: sum}
	}
	saveHash(path, fi, sum)
	return nil
}

// Model is a model file in the models folder.
type Model struct {
	Name  string // the file name without "ggml-" and ".bin"
	Path  string
	Size  int64
	Entry Entry // the catalog entry of that name; zero when Known is false
	Known bool
}

// Installed lists the ggml model files (*.bin) in dir, by name. A missing folder has none.
func Installed(dir string) ([]Model, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Model
	for _, d := range ents {
		name := d.Name()
		if !strings.HasSuffix(name, ".bin") || strings.HasPrefix(name, ".") {
			continue
		}
		fi, err := d.Info()
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		m := Model{Name: strings.TrimSuffix(strings.TrimPrefix(name, "ggml-"), ".bin"), Path: filepath.Join(dir, name), Size: fi.Size()}
		if e, ok := Lookup(name); ok && e.File() == name {
			m.Entry, m.Known = e, true
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

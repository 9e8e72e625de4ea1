package weights

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestZZMutate(t *testing.T) {
	valid := ggmlBytes(t, tinyCfg, synth(t, SynthOptions{Config: tinyCfg, Seed: 1}))
	path := filepath.Join(t.TempDir(), "x")
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200000; i++ {
		b := append([]byte(nil), valid...)
		for k := 0; k < 1+r.IntN(4) && len(b) > 8; k++ {
			switch r.IntN(4) {
			case 0:
				b[r.IntN(len(b))] = byte(r.Uint32())
			case 1:
				off := r.IntN(len(b)-4) &^ 3
				v := []uint32{0, 1, 0xffffffff, 0x7fffffff, 256, 1 << 20, uint32(r.IntN(70000))}[r.IntN(7)]
				b[off], b[off+1], b[off+2], b[off+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
			case 2:
				b = b[:r.IntN(len(b))]
			case 3:
				b = append(b, b[:r.IntN(64)]...)
			}
		}
		os.WriteFile(path, b, 0o644)
		start := time.Now()
		f, err := Open(path)
		if err == nil {
			f.Close()
		}
		if d := time.Since(start); d > 200*time.Millisecond {
			t.Fatalf("slow input %d: %v", i, d)
		}
	}
}

package mel

import (
	"archive/zip"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/cmplx"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// readNPZ reads the float32 arrays of a numpy .npz archive, keyed by name without ".npy".
func readNPZ(t *testing.T, path string) map[string]npyArray {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer zr.Close()
	out := map[string]npyArray{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatalf("open %s in %s: %v", f.Name, path, err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("read %s in %s: %v", f.Name, path, err)
		}
		a, err := parseNPY(b)
		if err != nil {
			t.Fatalf("parse %s in %s: %v", f.Name, path, err)
		}
		out[strings.TrimSuffix(f.Name, ".npy")] = a
	}
	return out
}

type npyArray struct {
	shape []int
	data  []float32
}

var npyShape = regexp.MustCompile(`'shape':\s*\(([0-9,\s]*)\)`)

// parseNPY decodes a version 1/2 .npy file holding little-endian float32 in C order.
func parseNPY(b []byte) (npyArray, error) {
	if len(b) < 10 || string(b[:6]) != "\x93NUMPY" {
		return npyArray{}, fmt.Errorf("not a npy file")
	}
	var hlen, off int
	switch b[6] {
	case 1:
		hlen, off = int(binary.LittleEndian.Uint16(b[8:])), 10
	case 2, 3:
		hlen, off = int(binary.LittleEndian.Uint32(b[8:])), 12
	default:
		return npyArray{}, fmt.Errorf("npy version %d", b[6])
	}
	if off+hlen > len(b) {
		return npyArray{}, fmt.Errorf("truncated header")
	}
	hdr := string(b[off : off+hlen])
	if !strings.Contains(hdr, "'descr': '<f4'") || !strings.Contains(hdr, "'fortran_order': False") {
		return npyArray{}, fmt.Errorf("unsupported header %q", hdr)
	}
	m := npyShape.FindStringSubmatch(hdr)
	if m == nil {
		return npyArray{}, fmt.Errorf("no shape in %q", hdr)
	}
	var a npyArray
	n := 1
	for s := range strings.SplitSeq(m[1], ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		d, err := strconv.Atoi(s)
		if err != nil {
			return npyArray{}, err
		}
		a.shape = append(a.shape, d)
		n *= d
	}
	body := b[off+hlen:]
	if len(body) != 4*n {
		return npyArray{}, fmt.Errorf("body %d bytes, want %d", len(body), 4*n)
	}
	a.data = f32s(body)
	return a, nil
}

func f32s(b []byte) []float32 {
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

// maxAbs returns the largest |a[i]-b[i]| and its index.
func maxAbs(a, b []float32) (float64, int) {
	var worst float64
	at := -1
	for i := range a {
		if d := math.Abs(float64(a[i]) - float64(b[i])); d > worst || at < 0 {
			worst, at = d, i
		}
	}
	return worst, at
}

func TestFilters(t *testing.T) {
	ref := readNPZ(t, "testdata/mel_filters.npz")
	for _, n := range []int{80, 128} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			want := ref[fmt.Sprintf("mel_%d", n)]
			if !slices.Equal(want.shape, []int{n, NFFT/2 + 1}) {
				t.Fatalf("reference shape %v", want.shape)
			}
			got := Filters(n)
			if len(got) != len(want.data) {
				t.Fatalf("len %d, want %d", len(got), len(want.data))
			}
			d, at := maxAbs(got, want.data)
			if d > 1e-6 {
				t.Errorf("max-abs error %.3g at [%d, %d]: got %g, want %g", d, at/201, at%201, got[at], want.data[at])
			}
			t.Logf("max-abs error %.3g", d)
			got[0] = 42 // callers get a copy
			if Filters(n)[0] == 42 {
				t.Error("Filters returned the cached slice")
			}
		})
	}
}

func naiveDFT(x []complex128) []complex128 {
	n := len(x)
	out := make([]complex128, n)
	for k := range n {
		for j := range n {
			out[k] += x[j] * cmplx.Rect(1, -2*math.Pi*float64(j*k%n)/float64(n))
		}
	}
	return out
}

func TestFFT(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 4, 5, 8, 12, 15, 49, 100, 200, 210} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			x := make([]complex128, n)
			for i := range x {
				x[i] = complex(rng.NormFloat64(), rng.NormFloat64())
			}
			want := naiveDFT(x)
			got := newFFTPlan(n).transform(slices.Clone(x), make([]complex128, n))
			for k := range n {
				if d := cmplx.Abs(got[k] - want[k]); d > 1e-9*float64(n) {
					t.Fatalf("bin %d: got %v, want %v", k, got[k], want[k])
				}
			}
		})
	}
	t.Run("real400", func(t *testing.T) {
		frame := make([]float64, NFFT)
		cx := make([]complex128, NFFT)
		for i := range frame {
			frame[i] = rng.NormFloat64()
			cx[i] = complex(frame[i], 0)
		}
		want := naiveDFT(cx)
		got := make([]float64, NFFT/2+1)
		newRealFFT(NFFT).power(frame, got, make([]complex128, NFFT/2), make([]complex128, NFFT/2))
		for k, g := range got {
			w := real(want[k])*real(want[k]) + imag(want[k])*imag(want[k])
			if math.Abs(g-w) > 1e-9*max(1, w) {
				t.Fatalf("bin %d: got %g, want %g", k, g, w)
			}
		}
	})
}

// readWAV16 reads the data chunk of a 16-bit PCM mono WAV (enough for the jfk fixture).
func readWAV16(t *testing.T, path string) []float32 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for off := 12; off+8 <= len(b); {
		id, size := string(b[off:off+4]), int(binary.LittleEndian.Uint32(b[off+4:]))
		off += 8
		if id == "data" {
			s := make([]float32, size/2)
			for i := range s {
				s[i] = float32(int16(binary.LittleEndian.Uint16(b[off+2*i:]))) / 32768
			}
			return s
		}
		off += size + size&1
	}
	t.Fatalf("%s: no data chunk", path)
	return nil
}

func TestWindowJFK(t *testing.T) {
	samples := readWAV16(t, "testdata/jfk.wav")
	if len(samples) != 176000 {
		t.Fatalf("jfk.wav: %d samples, want 176000", len(samples))
	}
	b, err := os.ReadFile("testdata/jfk.mel.f32")
	if err != nil {
		t.Fatal(err)
	}
	want := f32s(b)
	got := window(samples, 128)
	if len(got) != 128*ChunkFrames || len(want) != len(got) {
		t.Fatalf("len %d, reference %d, want %d", len(got), len(want), 128*ChunkFrames)
	}
	d, at := maxAbs(got, want)
	if d > 1e-4 {
		t.Errorf("max-abs error %.3g at mel %d frame %d: got %g, want %g", d, at/ChunkFrames, at%ChunkFrames, got[at], want[at])
	}
	t.Logf("max-abs error %.3g (mel %d, frame %d)", d, at/ChunkFrames, at%ChunkFrames)
}

// referenceFrame computes one frame's unnormalized log10 mel energies with a direct DFT.
func referenceFrame(samples []float32, nMels, t int) []float64 {
	n := len(samples)
	src := make([]float64, 0, n+NFFT)
	for i := NFFT / 2; i > 0; i-- {
		src = append(src, float64(samples[i]))
	}
	for _, s := range samples {
		src = append(src, float64(s))
	}
	for i := n - 2; i >= n-1-NFFT/2; i-- {
		src = append(src, float64(samples[i]))
	}
	power := make([]float64, NFFT/2+1)
	for k := range power {
		var re, im float64
		for j := range NFFT {
			w := 0.5 - 0.5*math.Cos(2*math.Pi*float64(j)/NFFT)
			v := src[t*HopLength+j] * w
			re += v * math.Cos(2*math.Pi*float64(j*k)/NFFT)
			im -= v * math.Sin(2*math.Pi*float64(j*k)/NFFT)
		}
		power[k] = re*re + im*im
	}
	fb := Filters(nMels)
	out := make([]float64, nMels)
	for i := range nMels {
		var s float64
		for k, p := range power {
			s += float64(fb[i*len(power)+k]) * p
		}
		out[i] = math.Log10(max(s, 1e-10))
	}
	return out
}

func noise(seed uint64, n int) []float32 {
	rng := rand.New(rand.NewPCG(seed, 7))
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(0.1*rng.NormFloat64() + 0.3*math.Sin(2*math.Pi*440*float64(i)/SampleRate))
	}
	return s
}

func TestComputeFraming(t *testing.T) {
	cases := []struct {
		name   string
		n      int
		frames int
	}{
		{"empty", 0, 0},
		{"under one hop", 159, 0},
		{"one hop", 160, 1},
		{"short reflect", 170, 1},
		{"two hops", 320, 2},
		{"65s plus", 65*SampleRate + 37, 6500},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data, frames := Compute(noise(3, c.n), 80)
			if frames != c.frames || len(data) != 80*frames {
				t.Fatalf("frames %d len %d, want %d and %d", frames, len(data), c.frames, 80*c.frames)
			}
			for i, v := range data {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Fatalf("non-finite value %v at %d", v, i)
				}
			}
		})
	}
}

func TestComputeMatchesDirectDFT(t *testing.T) {
	const nMels = 128
	s := noise(5, 65*SampleRate)
	data, frames := Compute(s, nMels)
	// Undo the normalization; noise keeps every value far above the max-8 floor.
	var top float64
	for _, v := range data {
		top = max(top, float64(v))
	}
	for _, f := range []int{0, 1, 2, 1234, frames / 2, frames - 2, frames - 1} {
		want := referenceFrame(s, nMels, f)
		for i, w := range want {
			got := float64(data[i*frames+f])*4 - 4
			if math.Abs(got-w) > 2e-5 {
				t.Fatalf("frame %d mel %d: log10 %g, direct DFT %g", f, i, got, w)
			}
		}
	}
	// Shifting the input by whole hops shifts the frames (interior frames only).
	const shift = 7
	sub, subFrames := Compute(s[shift*HopLength:], nMels)
	if subFrames != frames-shift {
		t.Fatalf("shifted frames %d, want %d", subFrames, frames-shift)
	}
	var worst float64
	for i := range nMels {
		for f := 2; f < subFrames-2; f++ {
			worst = max(worst, math.Abs(float64(sub[i*subFrames+f])-float64(data[i*frames+f+shift])))
		}
	}
	if worst > 1e-5 {
		t.Errorf("shifted input: max-abs difference %g", worst)
	}
}

func TestComputeClampsAtMaxMinus8(t *testing.T) {
	s := make([]float32, 2*SampleRate) // silence after a loud burst
	copy(s, noise(9, SampleRate/2))
	data, _ := Compute(s, 80)
	lo, hi := slices.Min(data), slices.Max(data)
	if math.Abs(float64(hi-lo)-2) > 1e-6 {
		t.Errorf("range %g..%g spans %g, want exactly 2 (8 decades / 4)", lo, hi, hi-lo)
	}
}

func TestWindowPadsAndCuts(t *testing.T) {
	long := noise(11, 40*SampleRate)
	got := window(long, 80)
	want, _ := Compute(long[:ChunkSamples], 80)
	if !slices.Equal(got, want) {
		t.Error("Window of 40 s differs from Compute of its first 30 s")
	}
	short := long[:SampleRate]
	padded := make([]float32, ChunkSamples)
	copy(padded, short)
	want, _ = Compute(padded, 80)
	if got := window(short, 80); !slices.Equal(got, want) {
		t.Error("Window of 1 s differs from Compute of it zero-padded to 30 s")
	}
}

func BenchmarkWindow(b *testing.B) {
	s := noise(1, ChunkSamples)
	for _, n := range []int{80, 128} {
		b.Run(fmt.Sprintf("mels=%d", n), func(b *testing.B) {
			b.SetBytes(ChunkSamples * 4)
			for b.Loop() {
				window(s, n)
			}
		})
	}
}

// TestHead: Head (and HeadInto, into a wider buffer) is the first frames of Compute over the
// samples and the zeros after them, bitwise, for inputs shorter than, as long as and longer than a window, silent ones and ones
// ending loud (the frames reaching past the samples), with n below and above the samples' frames.
func TestHead(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, c := range []struct {
		secs float64
		kind string
	}{{0, "noise"}, {0.3, "noise"}, {7.01, "noise"}, {30, "noise"}, {30, "silence"}, {30, "loud end"}, {41.5, "noise"}} {
		s := make([]float32, int(c.secs*SampleRate))
		for i := range s {
			switch c.kind {
			case "noise":
				s[i] = float32(rng.NormFloat64() * 0.1)
			case "loud end":
				if i > len(s)-150 {
					s[i] = 0.9
				}
			}
		}
		full, frames := Compute(append(slices.Clone(s), make([]float32, ChunkSamples)...), 80)
		for _, n := range []int{0, 1, len(s) / HopLength, ChunkFrames, frames} {
			got := Head(s, ChunkSamples, 80, n)
			if len(got) != 80*n {
				t.Fatalf("%v s %s, %d frames: %d values", c.secs, c.kind, n, len(got))
			}
			// HeadInto: the same frames in rows 3 columns wider, the columns past n untouched.
			const sentinel = -99
			stride := n + 3
			into := make([]float32, 80*stride)
			for i := range into {
				into[i] = sentinel
			}
			HeadInto(into, stride, s, ChunkSamples, 80, n)
			for i := range 80 {
				for f := range n {
					if g, w := got[i*n+f], full[i*frames+f]; g != w {
						t.Fatalf("%v s %s, %d frames: mel %d frame %d: %v, Compute %v", c.secs, c.kind, n, i, f, g, w)
					}
					if g, w := into[i*stride+f], full[i*frames+f]; g != w {
						t.Fatalf("%v s %s, %d frames: HeadInto mel %d frame %d: %v, Compute %v", c.secs, c.kind, n, i, f, g, w)
					}
				}
				for f := n; f < stride; f++ {
					if into[i*stride+f] != sentinel {
						t.Fatalf("%v s %s, %d frames: HeadInto wrote mel %d column %d, past its frames", c.secs, c.kind, n, i, f)
					}
				}
			}
		}
	}
}

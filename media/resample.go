package media

import (
	"github.com/verbatimhq/verbatim/audio"
)

// chunkResampler runs audio.Resample over a stream in blocks, giving the same samples as one
// call over the whole signal while holding only a block and two margins of input.
//
// Output sample i sits at input position i·down/up, so a block that starts at an input index
// that is a multiple of down starts exactly at output index (start/down)·up: every block keeps
// the phase of the whole-signal filter. Each block is resampled with margin input samples of
// context on both sides (more than the filter's half length, which audio.Resample documents
// through its transition band), and the outputs that the margins influence are dropped.
type chunkResampler struct {
	from, to      int
	up, down      int64
	block, margin int64     // input samples, multiples of down
	buf           []float32 // input from index base on
	base, next    int64     // global index of buf[0]; start of the next block
	total         int64     // input samples written
	flushed       bool
}

// blockSeconds is the input length of one block: long enough that the margins cost little and
// audio.Resample's output exceeds its threshold for running on all cores.
const blockSeconds = 8

func newChunkResampler(from, to int) *chunkResampler {
	g := gcdInt(from, to)
	up, down := int64(to/g), int64(from/g)
	// audio.Resample's transition band is 10% of the lower rate wide and its attenuation 90 dB,
	// so its Kaiser filter spans about 57·from/lower input samples; twice half of that is ample.
	ratio := int64((from + min(from, to) - 1) / min(from, to))
	need := 64*ratio + 64
	margin := roundUp(need, down)
	block := roundUp(max(int64(blockSeconds*from), 4*margin), down)
	return &chunkResampler{from: from, to: to, up: up, down: down, block: block, margin: margin}
}

func roundUp(n, m int64) int64 { return (n + m - 1) / m * m }

func gcdInt(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// write adds input samples and appends every output sample that is now final to out.
func (c *chunkResampler) write(out, in []float32) []float32 {
	c.buf = append(c.buf, in...)
	c.total += int64(len(in))
	for c.total >= c.next+c.block+c.margin {
		out = c.run(out, c.next+c.block, false)
	}
	return out
}

// flush appends the outputs that remain once the input has ended: ceil(total·up/down) in all,
// as audio.Resample gives for the whole input. Later calls append nothing.
func (c *chunkResampler) flush(out []float32) []float32 {
	if c.flushed {
		return out
	}
	c.flushed = true
	for c.next < c.total {
		out = c.run(out, min(c.next+c.block, c.total), true)
	}
	return out
}

// run resamples input [next, end) with its margins and advances next to end.
func (c *chunkResampler) run(out []float32, end int64, final bool) []float32 {
	lo := max(0, c.next-c.margin)
	hi := min(c.total, end+c.margin)
	seg := c.buf[lo-c.base : hi-c.base]
	res := audio.Resample(&audio.PCM{Rate: c.from, Samples: seg}, c.to).Samples
	o0 := lo * c.up / c.down // global output index of res[0]; exact since lo is a multiple of down
	first := c.next * c.up / c.down
	last := end * c.up / c.down
	if final && end == c.total {
		last = (c.total*c.up + c.down - 1) / c.down
	}
	out = append(out, res[first-o0:last-o0]...)
	c.next = end
	if drop := max(0, c.next-c.margin) - c.base; drop > 0 {
		c.buf = append(c.buf[:0], c.buf[drop:]...)
		c.base += drop
	}
	return out
}

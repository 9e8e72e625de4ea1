package whisper

import (
	"math"
	"strings"

	"github.com/verbatimhq/verbatim/whisper/mel"
)

// pending is a segment and all of its tokens (timestamps included) for the prompt history.
type pending struct {
	seg Segment
	all []int
}

// segmenter cuts a decoded window's tokens into segments (in the window's own time) and says
// where the next window starts: one of rules' strategies.
type segmenter interface {
	// split returns the segments of dr, decoded from a window of frames mel frames of audio,
	// and the seek advance in frames. remain is the number of mel frames from the window's
	// start to the end of the input's audio (decodeTask.remain). whole: the window is not sought
	// into again (Independent windows), so text after the last timestamp pair is kept too.
	split(tx *texts, dr *decodeResult, frames, remain int, whole bool) (segs []pending, advance int)
}

// texts turns token ids into text for segments.
type texts struct {
	ids       vocabIDs
	tokenText func(id int) string    // a token's bytes
	textOf    func(ids []int) string // decoded text of text tokens
}

// segment builds a segment from tokens [a, b) of dr. It reports false for a segment the
// reference clears (no text, or zero length) when clear is set.
func (tx *texts) segment(dr *decodeResult, a, b int, start, end float64, clear bool) (pending, bool) {
	seg := Segment{
		Start: start, End: end, AvgLogProb: dr.avgLogProb, NoSpeechProb: dr.noSpeechProb,
		CompressionRatio: dr.compressionRatio, Temperature: dr.temperature,
	}
	var text []int
	for i := a; i < b; i++ {
		id := dr.tokens[i]
		if id >= tx.ids.eot {
			continue
		}
		text = append(text, id)
		seg.Tokens = append(seg.Tokens, Token{ID: id, Text: tx.tokenText(id), P: math.Exp(dr.logprobs[i])})
	}
	seg.Text = tx.textOf(text)
	if clear && (start == end || strings.TrimSpace(seg.Text) == "") {
		return pending{}, false
	}
	return pending{seg: seg, all: dr.tokens[a:b]}, true
}

// openaiSegmenter is the reference's: segments end at consecutive timestamps, and the seek
// resumes at the last one unless the window ends with a single timestamp.
type openaiSegmenter struct{}

func (openaiSegmenter) split(tx *texts, dr *decodeResult, frames, _ int, whole bool) ([]pending, int) {
	if whole {
		return tx.splitWhole(dr, frames), frames
	}
	return tx.splitOpenAI(dr, 0, frames)
}

// splitOpenAI cuts a window's tokens into segments at consecutive timestamps and returns them
// with the seek advance in frames, as the reference's transcribe loop.
func (tx *texts) splitOpenAI(dr *decodeResult, seek, size int) ([]pending, int) {
	toks := dr.tokens
	begin := tx.ids.tsBegin
	off := float64(seek) / framesPerSecond
	isTS := func(i int) bool { return toks[i] >= begin }
	n := len(toks)
	singleEnding := n >= 2 && !isTS(n-2) && isTS(n-1)
	var cuts []int
	for i := 0; i+1 < n; i++ {
		if isTS(i) && isTS(i+1) {
			cuts = append(cuts, i+1)
		}
	}
	var out []pending
	if len(cuts) > 0 {
		if singleEnding {
			cuts = append(cuts, n)
		}
		last := 0
		for _, cut := range cuts {
			start := off + float64(toks[last]-begin)*timePrecision
			end := off + float64(toks[cut-1]-begin)*timePrecision
			if p, ok := tx.segment(dr, last, cut, start, end, true); ok {
				out = append(out, p)
			}
			last = cut
		}
		if singleEnding {
			return out, size
		}
		return out, (toks[last-1] - begin) * inputStride
	}
	dur := float64(size) / framesPerSecond
	if i := lastIndexFunc(toks, func(t int) bool { return t >= begin }); i >= 0 && toks[i] != begin {
		dur = float64(toks[i]-begin) * timePrecision
	}
	if p, ok := tx.segment(dr, 0, n, off, off+dur, true); ok {
		out = append(out, p)
	}
	return out, size
}

// splitWhole cuts a window's tokens into segments as splitOpenAI does, and keeps the text after
// the last timestamp pair too (a window decoded whole is not sought into again), ending at the
// last timestamp after it or at the window's end.
func (tx *texts) splitWhole(dr *decodeResult, size int) []pending {
	segs, advance := tx.splitOpenAI(dr, 0, size)
	if advance >= size {
		return segs
	}
	toks := dr.tokens
	begin := tx.ids.tsBegin
	last := 0
	for i := 0; i+1 < len(toks); i++ {
		if toks[i] >= begin && toks[i+1] >= begin {
			last = i + 1
		}
	}
	start := float64(advance) / framesPerSecond
	end := float64(size) / framesPerSecond
	if i := lastIndexFunc(toks[last:], func(t int) bool { return t >= begin }); i > 0 {
		end = min(end, max(start, float64(toks[last+i]-begin)*timePrecision))
	}
	if p, ok := tx.segment(dr, last, len(toks), start, end, true); ok {
		segs = append(segs, p)
	}
	return segs
}

// cppSegmenter is whisper.cpp's: a segment closes at each timestamp after <|0.00|> (runs of
// timestamps collapse), its times are the timestamps whisper.cpp predicts at those tokens, and
// trailing text ends at the seek advance. The seek advances by the decoder's last timestamp
// (30 s after a failure), or past the window when it ends with a single timestamp.
type cppSegmenter struct{}

func (cppSegmenter) split(tx *texts, dr *decodeResult, _, remain int, _ bool) ([]pending, int) {
	delta := dr.seekDelta
	if n := len(dr.tokens); n > 1 && dr.tokens[n-2] < tx.ids.tsBegin && dr.tokens[n-1] > tx.ids.tsBegin {
		delta = min(remain, mel.ChunkFrames) // single timestamp ending: skip the window
	}
	if delta <= 0 {
		delta = mel.ChunkFrames // never loop in place
	}
	return tx.splitCpp(dr, 0), delta
}

// splitCpp cuts a window's tokens into segments as whisper.cpp does (see cppSegmenter), with the
// window at mel frame seek.
func (tx *texts) splitCpp(dr *decodeResult, seek int) []pending {
	toks := dr.tokens
	if len(toks) == 0 {
		return nil
	}
	begin := tx.ids.tsBegin
	at := func(tid int) float64 {
		if tid < 0 {
			return float64(seek) / framesPerSecond
		}
		return float64(seek+2*(tid-begin)) / framesPerSecond
	}
	var out []pending
	add := func(a, b int, start, end float64) {
		p, _ := tx.segment(dr, a, b, start, end, false)
		out = append(out, p)
	}
	t0 := at(dr.tids[0])
	i0 := 0
	hasText := false
	for i := 0; i < len(toks); i++ {
		if toks[i] < tx.ids.eot {
			hasText = true
		}
		if toks[i] <= begin {
			continue
		}
		t1 := at(dr.tids[i])
		if hasText {
			add(i0, i+1, t0, t1)
		}
		hasText = false
		for i < len(toks) && toks[i] > begin {
			i++
		}
		i--
		t0, i0 = t1, i+1
	}
	if hasText {
		add(i0, len(toks), t0, float64(seek+dr.seekDelta)/framesPerSecond)
	}
	return out
}

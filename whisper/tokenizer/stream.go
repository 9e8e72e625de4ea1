package tokenizer

// StreamDecoder turns tokens into text one at a time, holding back the bytes of a character
// split across tokens until it is complete. The text it returns, Flush included, equals Decode
// of all the tokens. A StreamDecoder is not safe for concurrent use; make one per sequence.
type StreamDecoder struct {
	t       *Tokenizer
	pending []byte
}

// NewStreamDecoder returns a StreamDecoder for t.
func (t *Tokenizer) NewStreamDecoder() *StreamDecoder { return &StreamDecoder{t: t} }

// Add appends the token id and returns the text it completes, possibly "". Special and
// timestamp tokens add nothing and do not break a pending character.
func (d *StreamDecoder) Add(id int) string {
	d.pending = d.t.appendBytes(d.pending, []int{id})
	out, n := appendUTF8(nil, d.pending, false)
	d.pending = append(d.pending[:0], d.pending[n:]...)
	return string(out)
}

// Flush returns what is held back, an incomplete character as U+FFFD, and resets d.
func (d *StreamDecoder) Flush() string {
	out, _ := appendUTF8(nil, d.pending, true)
	d.pending = d.pending[:0]
	return string(out)
}

// Pending reports whether bytes of an incomplete character are held back.
func (d *StreamDecoder) Pending() bool { return len(d.pending) > 0 }

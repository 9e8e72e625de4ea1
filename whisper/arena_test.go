package whisper

import (
	"slices"
	"testing"

	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/whisper/weights"
)

// TestArena: on the CPU the encoder's scratch and the self-attention caches share the model's
// arena. An encoding while a session's caches are in it must leave them alone, an encoding after
// the session closed takes the memory back, and either way the decoder's logits are bitwise
// those of a model that never shared anything.
func TestArena(t *testing.T) {
	for _, dt := range []tensor.DType{tensor.F32, tensor.Q8_0} {
		format := weights.GGML
		if dt == tensor.F32 {
			format = weights.Safetensors
		}
		ref := synthModel(t, "micro", dt, format)
		m := synthModel(t, "micro", dt, format)
		if m.ar == nil {
			t.Fatal("no arena on the CPU")
		}
		mel := randomMel(m.Config, 2)
		one, two := mel[:len(mel)/2], mel[len(mel)/2:]
		prompt, next := [][]int32{{50258, 50259, 50360}}, [][]int32{{1000}}

		rs := session(t, ref, encode(t, ref, one, 1), 0)
		mustStep(t, rs, prompt, false)
		want := mustStep(t, rs, next, false)
		rs.Close()

		s := session(t, m, encode(t, m, one, 1), 0)
		mustStep(t, s, prompt, false)
		if m.ar.kv != s.kv {
			t.Fatalf("%s: the session's caches are not in the arena", dt)
		}
		encode(t, m, two, 1) // must not touch the open session's caches
		if got := mustStep(t, s, next, false); !slices.Equal(got, want) {
			t.Errorf("%s: logits changed by an encoding while the session was open", dt)
		}
		s.Close()
		if m.pool == nil || m.ar.kv != m.pool {
			t.Fatalf("%s: the closed session's caches are not pooled in the arena", dt)
		}
		e := encode(t, m, one, 1)
		if m.pool != nil || m.ar.kv != nil {
			t.Fatalf("%s: the encoding did not take the pooled caches' memory", dt)
		}
		s = session(t, m, e, 0)
		mustStep(t, s, prompt, false)
		if got := mustStep(t, s, next, false); !slices.Equal(got, want) {
			t.Errorf("%s: logits differ after the arena went to the encoder and back", dt)
		}
	}
}

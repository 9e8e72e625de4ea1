package whisper

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/verbatimhq/verbatim/audio"
	"github.com/verbatimhq/verbatim/cpu"
	"github.com/verbatimhq/verbatim/tensor"
)

// flushCounter is the CPU backend with a Flush (tensor.Flusher) that counts its calls, so that a
// test sees where host work falls against the hand-over of queued ops to the device.
type flushCounter struct {
	*cpu.Backend
	flushes int
}

func (f *flushCounter) Flush() { f.flushes++ }

// TestStepMasksAfterFlush: StepTop and StepPick ask for the step's masks once, after the
// decoder's step has been handed to the device (tensor.Flusher), so that on a GPU the host makes
// them while the step runs; the picks are made under those masks (a mask that forbids the
// unmasked pick moves it), and a wrong number of rows is an error, not a pick.
func TestStepMasksAfterFlush(t *testing.T) {
	be, err := cpu.New(cpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fc := &flushCounter{Backend: be}
	m, err := Load(filepath.Join(fixturesDir, "oracle-micro"), fc)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	pcm, err := audio.LoadWAV("../testdata/jfk.wav")
	if err != nil {
		t.Fatal(err)
	}
	o := DefaultOptions()
	o.Language = "en"
	in := testInput(t, m, o)
	ws := []*window{{v0: 0, samples: synthAudio(30, []Span{{0, 11}}, pcm.Samples)}}
	enc, err := m.Encode(in.mels(ws), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	prompt := make([]int32, len(in.sot))
	for i, id := range in.sot {
		prompt[i] = int32(id)
	}
	open := func() *Session {
		s, err := m.NewSession(enc, []int{0})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	tsBegin := int32(in.tx.ids.tsBegin)
	// masks returns rows (nil: one unmasked row), counting its calls and noting the flushes
	// before the first.
	var calls, flushedBefore int
	masksOf := func(bitmaps [][]uint32, rows []tensor.PickRow) stepMasks {
		calls, flushedBefore = 0, -1
		return func() ([][]uint32, []tensor.PickRow) {
			if calls == 0 {
				flushedBefore = fc.flushes
			}
			calls++
			if rows == nil {
				rows = []tensor.PickRow{{Mask: -1, TSBegin: tsBegin}}
			}
			return bitmaps, rows
		}
	}
	check := func(what string, f0 int) {
		t.Helper()
		if calls != 1 || flushedBefore <= f0 {
			t.Fatalf("%s: masks asked for %d times, after %d of the step's flushes (want once, after one at least)", what, calls, flushedBefore-f0)
		}
	}

	picks := make([]tensor.Pick, 1)
	top := make([]tensor.Cand, 2)
	f0 := fc.flushes
	if err := open().StepTop([][]int32{prompt}, masksOf(nil, nil), 2, picks, top); err != nil {
		t.Fatal(err)
	}
	check("StepTop", f0)
	free := picks[0].Token
	if free < 0 || top[0].Token != free {
		t.Fatalf("StepTop: pick %d, best candidate %d", free, top[0].Token)
	}
	// The same step with the free pick forbidden (a range of one token): the pick moves.
	f0 = fc.flushes
	forbid := []tensor.PickRow{{Mask: -1, TSBegin: tsBegin, Ranges: [][2]int32{{free, free + 1}}}}
	if err := open().StepPick([][]int32{prompt}, masksOf(nil, forbid), picks); err != nil {
		t.Fatal(err)
	}
	check("StepPick", f0)
	if picks[0].Token == free || picks[0].Token < 0 {
		t.Fatalf("StepPick: pick %d with token %d forbidden", picks[0].Token, free)
	}
	two := []tensor.PickRow{{Mask: -1, TSBegin: tsBegin}, {Mask: -1, TSBegin: tsBegin}}
	err = open().StepPick([][]int32{prompt}, masksOf(nil, two), picks)
	if err == nil || !strings.Contains(err.Error(), "2 rows of masks for 1 sequences") {
		t.Fatalf("two rows of masks for one sequence: err %v", err)
	}
}

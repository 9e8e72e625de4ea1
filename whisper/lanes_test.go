package whisper

import (
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verbatimhq/verbatim/cpu"
	"github.com/verbatimhq/verbatim/tensor"
)

// laneBackend is the CPU backend presented as asynchronous, as a GPU's is (a model on it has no
// arena, so TranscribeQueue runs lanes on it), that counts the goroutines inside its ops: two at
// once is the device used concurrently, which the lanes' lock must prevent.
type laneBackend struct {
	*cpu.Backend
	inside, overlaps atomic.Int32
	ops              atomic.Int64
}

func (b *laneBackend) enter() (leave func()) {
	if b.inside.Add(1) > 1 {
		b.overlaps.Add(1)
	}
	b.ops.Add(1)
	return func() { b.inside.Add(-1) }
}

func (b *laneBackend) Capabilities() tensor.Capabilities {
	c := b.Backend.Capabilities()
	c.Async = true
	return c
}

func (b *laneBackend) Alloc(dt tensor.DType, shape ...int) *tensor.Tensor {
	defer b.enter()()
	return b.Backend.Alloc(dt, shape...)
}

func (b *laneBackend) Free(t *tensor.Tensor) {
	defer b.enter()()
	b.Backend.Free(t)
}

func (b *laneBackend) ToF32(t *tensor.Tensor) []float32 {
	defer b.enter()()
	return b.Backend.ToF32(t)
}

func (b *laneBackend) Linear(dst, x, w, bias *tensor.Tensor) {
	defer b.enter()()
	b.Backend.Linear(dst, x, w, bias)
}

func (b *laneBackend) LayerNorm(dst, x, gamma, beta *tensor.Tensor, eps float32) {
	defer b.enter()()
	b.Backend.LayerNorm(dst, x, gamma, beta, eps)
}

func (b *laneBackend) Attention(dst, q, k, v *tensor.Tensor, heads, kvLen int, scale float32, causal bool) {
	defer b.enter()()
	b.Backend.Attention(dst, q, k, v, heads, kvLen, scale, causal)
}

func (b *laneBackend) Add(dst, x, y *tensor.Tensor) {
	defer b.enter()()
	b.Backend.Add(dst, x, y)
}

func (b *laneBackend) Gather(dst, table *tensor.Tensor, ids []int32) {
	defer b.enter()()
	b.Backend.Gather(dst, table, ids)
}

// laneMicro loads the micro model on a laneBackend (no arena, as on a GPU).
func laneMicro(t *testing.T) (*Model, *laneBackend) {
	t.Helper()
	be, err := cpu.New(cpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	lb := &laneBackend{Backend: be}
	ml, err := Load(filepath.Join(fixturesDir, "oracle-micro"), lb)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ml.Close() })
	return ml, lb
}

// TestLanes: two lanes on one model (ManyOptions.Lanes, as on a GPU) give every input its
// result alone, with Sequential and Independent windows; the lanes ran batches at the same
// time, each input in one lane, and never two ops on the device at once. Under -race this is
// also the check that the lanes share nothing else unguarded (the model's pools, workspaces,
// phase clock, the jobs' callbacks).
func TestLanes(t *testing.T) {
	m, speech := loadMicroForTranscribe(t)
	ml, lb := laneMicro(t)
	if ml.ar != nil {
		t.Fatal("a model on an asynchronous backend has an arena")
	}
	stop := ml.TimePhases() // the clock is shared by the lanes too
	defer stop()
	for _, mode := range []WindowMode{Sequential, Independent} {
		inputs := manyInputs(speech)
		if mode == Independent {
			inputs = slices.DeleteFunc(inputs, func(in manyInput) bool { return in.name == "german" || in.name == "short" })
		}
		alone, jobs := aloneAndJobs(t, m, inputs, mode)
		progress := 0 // one count for every job: the lanes call Progress under one lock
		for i := range jobs {
			jobs[i].Options.Progress = func(done, total time.Duration) { progress++ }
		}
		var mu sync.Mutex
		laneOf := map[*input]int{}
		type span struct{ first, last time.Time }
		spans := map[int]*span{}
		moved := 0
		observeBatch = func(lane int, steps []*step) func() {
			mu.Lock()
			defer mu.Unlock()
			if spans[lane] == nil {
				spans[lane] = &span{first: time.Now()}
			}
			for _, st := range steps {
				if l, ok := laneOf[st.in]; ok && l != lane {
					moved++
				}
				laneOf[st.in] = lane
			}
			return func() {
				mu.Lock()
				spans[lane].last = time.Now()
				mu.Unlock()
			}
		}
		got := transcribeMany(t.Context(), ml, jobs, ManyOptions{BatchSize: 4, Lanes: 2})
		observeBatch = nil
		for i, in := range inputs {
			if got[i].Err != nil {
				t.Fatalf("%s: %s: %v", windowNames[mode], in.name, got[i].Err)
			}
			sameResult(t, windowNames[mode]+" "+in.name, alone[i], got[i].Result)
		}
		if progress == 0 {
			t.Errorf("%s: no progress reported", windowNames[mode])
		}
		if len(spans) != 2 || moved > 0 {
			t.Fatalf("%s: batches in %d lanes, inputs moved between lanes %d times; want 2 and 0", windowNames[mode], len(spans), moved)
		}
		a, b := spans[0], spans[1]
		if a.last.Before(b.first) || b.last.Before(a.first) {
			t.Errorf("%s: the lanes ran one after the other (%v-%v, %v-%v)", windowNames[mode], a.first, a.last, b.first, b.last)
		}
	}
	if n := lb.overlaps.Load(); n > 0 {
		t.Errorf("%d of %d ops ran while another was on the device", n, lb.ops.Load())
	}
	if tm := stop(); tm.Sessions == 0 || tm.Steps == 0 {
		t.Errorf("phase clock: %d sessions, %d steps", tm.Sessions, tm.Steps)
	}
}

// TestSettleParallel: one lane on a model without an arena settles its batch's steps in
// parallel (batcher.settle), every input with word timestamps so that each settle runs forced
// passes on the device: each input's result is its result alone, Progress is never called
// concurrently, no two ops ran on the device at once, steps did settle at the same time, and
// forced passes ran batched (forcedQueue). Under -race, the check that settle shares nothing
// unguarded between inputs.
func TestSettleParallel(t *testing.T) {
	m, speech := loadMicroForTranscribe(t)
	ml, lb := laneMicro(t)
	inputs := manyInputs(speech)
	for i := range inputs {
		inputs[i].opts.WordTimestamps = true
	}
	alone, jobs := aloneAndJobs(t, m, inputs, Sequential)
	var inside, overlaps atomic.Int32
	for i := range jobs {
		jobs[i].Options.Progress = func(done, total time.Duration) {
			if inside.Add(1) > 1 {
				overlaps.Add(1)
			}
			time.Sleep(time.Millisecond)
			inside.Add(-1)
		}
	}
	var settling, most atomic.Int32
	observeSettle = func() func() {
		n := settling.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(5 * time.Millisecond) // long enough for the batch's other steps to start
		return func() { settling.Add(-1) }
	}
	var batched atomic.Int32 // forced passes run in batches of several
	observeForced = func(passes int) {
		if passes > 1 {
			batched.Add(int32(passes))
		}
	}
	got := transcribeMany(t.Context(), ml, jobs, ManyOptions{BatchSize: 4})
	observeSettle, observeForced = nil, nil
	for i, in := range inputs {
		if got[i].Err != nil {
			t.Fatalf("%s: %v", in.name, got[i].Err)
		}
		sameResult(t, in.name, alone[i], got[i].Result)
		if in.name == "regions" && len(got[i].Result.Segments) > 0 && len(got[i].Result.Segments[0].Words) == 0 {
			t.Errorf("%s: no words", in.name)
		}
	}
	if n := overlaps.Load(); n > 0 {
		t.Errorf("Progress called concurrently %d times", n)
	}
	if n := lb.overlaps.Load(); n > 0 {
		t.Errorf("%d of %d ops ran while another was on the device", n, lb.ops.Load())
	}
	if most.Load() < 2 {
		t.Errorf("at most %d steps settled at once, want several", most.Load())
	}
	if batched.Load() == 0 {
		t.Error("no forced passes were batched")
	}
	t.Logf("%d forced passes ran in batches of several", batched.Load())
}

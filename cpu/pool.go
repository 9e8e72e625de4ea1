package cpu

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/verbatimhq/verbatim/tensor"
)

// pool is a fixed set of worker goroutines that run the iterations of a parallel loop. The
// calling goroutine takes part as worker 0, so a pool of n has n-1 goroutines.
//
// Handing a loop to a sleeping worker is slow: waking a thread parked in the kernel takes a
// system call and, in a virtual machine, an interrupt to the other virtual processor (about
// 20 µs measured on the 2-core Xeon VM of issue 19, and as much again for the caller waiting on
// the last helper), while a decoding step runs about 60 parallel ops a few microseconds apart.
// So a worker that finishes a loop polls for the next one for up to spinFor before it parks, and
// the caller polls for its helpers' completion for up to spinFor before it sleeps. Polling runs
// PAUSE (which leaves the core to a sibling hardware thread) and yields the processor to other
// goroutines every few polls; the bound keeps an idle backend from burning a core.
type pool struct {
	n       int
	workers []*worker
	// scratch is per-worker storage, indexed by the worker number run passes.
	scratch [][4][]float32
	wg      sync.WaitGroup // the worker goroutines
	// waiting is set by run when it sleeps on done until the last helper finishes.
	waiting atomic.Bool
	done    chan struct{} // capacity 1
}

// spinFor is how long an idle worker polls for a job, and the caller for its helpers, before
// sleeping.
const spinFor = 100 * time.Microsecond

// worker is the hand-off slot of one helper goroutine.
type worker struct {
	job    atomic.Pointer[job]
	parked atomic.Bool   // set by the worker before it sleeps on wake; cleared by whoever wakes it
	quit   atomic.Bool   // set by close
	wake   chan struct{} // capacity 1: a token for a parked worker
	_      [64]byte      // keep workers' slots on separate cache lines
}

type job struct {
	fn      func(worker, i int)
	n       int64
	next    atomic.Int64
	pending atomic.Int64 // helpers that have not finished the job
	panic   atomic.Pointer[any]
}

func newPool(n int) *pool {
	p := &pool{n: n, scratch: make([][4][]float32, n), done: make(chan struct{}, 1)}
	for w := 1; w < n; w++ {
		wk := &worker{wake: make(chan struct{}, 1)}
		p.workers = append(p.workers, wk)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for {
				j := wk.take()
				if j == nil {
					return
				}
				j.work(w)
				if j.pending.Add(-1) == 0 && p.waiting.CompareAndSwap(true, false) {
					p.done <- struct{}{}
				}
			}
		}()
	}
	return p
}

// poll calls ready until it returns true or spinFor has passed, and reports whether it did.
func poll(ready func() bool) bool {
	var start time.Time
	for i := 1; ; i++ {
		if ready() {
			return true
		}
		pause(4)
		if i%16 != 0 {
			continue
		}
		if i == 16 {
			start = time.Now()
		} else if time.Since(start) > spinFor {
			return false
		}
		runtime.Gosched()
	}
}

// take returns the next job handed to wk, polling and then sleeping until it is woken; nil once
// the pool is closed.
func (wk *worker) take() *job {
	var j *job
	ready := func() bool {
		j = wk.job.Swap(nil)
		return j != nil || wk.quit.Load()
	}
	for !poll(ready) {
		// Park. The dispatcher stores the job and then looks at parked; the worker sets parked
		// and then looks at the job: one of the two sees the other's write.
		wk.parked.Store(true)
		if ready() {
			// If a dispatcher cleared parked first, its token stays in wake and makes a later
			// park return at once, which is harmless.
			wk.parked.CompareAndSwap(true, false)
			break
		}
		<-wk.wake
	}
	return j
}

// give hands j to wk and wakes it if it sleeps.
func (wk *worker) give(j *job) {
	wk.job.Store(j)
	if wk.parked.Load() && wk.parked.CompareAndSwap(true, false) {
		wk.wake <- struct{}{}
	}
}

// wait returns once every helper of j has finished it.
func (p *pool) wait(j *job) {
	if poll(func() bool { return j.pending.Load() == 0 }) {
		return
	}
	// Sleep: the last helper decrements pending and then looks at waiting; run sets waiting and
	// then looks at pending.
	p.waiting.Store(true)
	if j.pending.Load() == 0 && p.waiting.CompareAndSwap(true, false) {
		return
	}
	<-p.done // sent by the last helper, now or soon
}

// work runs iterations until none is left. A panic with a *tensor.Error (an op's misuse,
// checked inside a loop) stops the job and is kept for run to raise in the caller. Any other
// panic is a bug: it goes on from here, so the crash shows the worker's own stack.
func (j *job) work(w int) {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		j.next.Store(j.n) // stop handing out iterations
		var te *tensor.Error
		if e, ok := r.(error); !ok || !errors.As(e, &te) {
			panic(r)
		}
		j.panic.CompareAndSwap(nil, &r)
	}()
	for {
		i := j.next.Add(1) - 1
		if i >= j.n {
			return
		}
		j.fn(w, int(i))
	}
}

// run calls fn(worker, i) for every i in [0, n), spread over the workers; worker is in
// [0, p.n) and no two concurrent calls share one, so it can index per-worker scratch space.
// A panic in fn with a *tensor.Error is raised again in the caller after all workers stop; any
// other panic crashes the program where it happened.
func (p *pool) run(n int, fn func(worker, i int)) {
	if n <= 0 {
		return
	}
	if n == 1 || p.n == 1 {
		for i := range n {
			fn(0, i)
		}
		return
	}
	j := &job{fn: fn, n: int64(n)}
	helpers := min(p.n, n) - 1
	j.pending.Store(int64(helpers))
	for _, wk := range p.workers[:helpers] {
		wk.give(j)
	}
	j.work(0)
	p.wait(j)
	if r := j.panic.Load(); r != nil {
		panic(*r)
	}
}

// split runs fn over [0, total) in contiguous chunks, one or a few per worker, or inline when
// the work (cost units per item, ~ flops) is too small to pay for waking workers.
func (p *pool) split(total, cost int, fn func(lo, hi int)) {
	p.splitW(total, cost, func(_, lo, hi int) { fn(lo, hi) })
}

// splitW is split with the worker number of each chunk (as run passes it), for per-worker
// scratch space; an inline run is worker 0.
func (p *pool) splitW(total, cost int, fn func(worker, lo, hi int)) {
	if total <= 0 {
		return
	}
	const minWork = 1 << 15
	parts := min(total, p.n*4)
	if total*cost < minWork*2 || p.n == 1 {
		parts = 1
	} else if total*cost/parts < minWork {
		parts = max(1, min(parts, total*cost/minWork))
	}
	if parts == 1 {
		fn(0, 0, total)
		return
	}
	p.run(parts, func(w, i int) {
		fn(w, i*total/parts, (i+1)*total/parts)
	})
}

func (p *pool) close() {
	for _, wk := range p.workers {
		wk.quit.Store(true)
		if wk.parked.CompareAndSwap(true, false) {
			wk.wake <- struct{}{}
		}
	}
	p.wg.Wait()
}

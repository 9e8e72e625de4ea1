package cpu

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/verbatimhq/verbatim/tensor"
)

// pool is a fixed set of worker goroutines that run the iterations of a parallel loop. The
// calling goroutine takes part as worker 0, so a pool of n has n-1 goroutines.
type pool struct {
	n    int
	wake []chan *job
	// scratch is per-worker storage, indexed by the worker number run passes.
	scratch [][4][]float32
	wg      sync.WaitGroup // the worker goroutines
}

type job struct {
	fn    func(worker, i int)
	n     int64
	next  atomic.Int64
	done  sync.WaitGroup
	panic atomic.Pointer[any]
}

func newPool(n int) *pool {
	p := &pool{n: n, scratch: make([][4][]float32, n)}
	for w := 1; w < n; w++ {
		ch := make(chan *job, 1)
		p.wake = append(p.wake, ch)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for j := range ch {
				j.work(w)
				j.done.Done()
			}
		}()
	}
	return p
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
	j.done.Add(helpers)
	for w := range helpers {
		p.wake[w] <- j
	}
	j.work(0)
	j.done.Wait()
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
	for _, ch := range p.wake {
		close(ch)
	}
	p.wg.Wait()
}

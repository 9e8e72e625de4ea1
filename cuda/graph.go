package cuda

import (
	"maps"
	"math"
	"unsafe"

	"github.com/verbatimhq/verbatim/tensor"
)

// CUDA graphs for repeated op sequences (tensor.Grapher): the decoder step.
//
// Between BeginGraph and EndGraph the caller's ops are recorded instead of queued, and every
// op folds what it hands the driver (kernel, launch shape, arguments, GEMM operands, copy
// addresses and sizes) into a 64-bit hash as it is recorded. EndGraph sends the recording to
// the worker as one job. The first time a hash is seen the worker runs the ops as usual and
// only remembers the hash: a capture and an instantiation cost more than running the ops once,
// and the steps of a batch that shrinks as its windows end, or of beam searches whose batches
// differ, often never repeat. The second time it runs them under stream capture, instantiates
// the graph and launches it; from then on (the same step of the next batch of windows: same
// position, same buffers) it launches the cached graph without running the ops at all — one
// driver call instead of hundreds. The hash covers every value a graph
// bakes in, so a replay always does exactly what running the ops would; data that changes from
// step to step without changing the hash (the token ids) reaches the GPU through a pinned host
// area whose address is in the graph.
//
// An op recorded without a signature (enqueue rather than enqueueSig), or a synchronous call
// while recording (an allocation that misses the cache, a plan made on first use), ends the
// recording: its ops run as usual. So does a capture the driver refuses; that hash is then
// never captured again.
//
// A recording is queued in pieces (CutGraph, tensor.GraphCutter): the decoder asks for a cut
// after each layer, and once a piece holds cutOps ops it is queued there as a graph of its own
// (hashed, captured and replayed like a whole recording) while the caller records the next. The
// device no longer waits for the whole step's recording (some 480 ops of Go, about 0.6 ms for
// large-v3) before it starts: it runs the first layers while the host records the rest. On an
// H100, large-v3's bench --e2e --decode default at 64 inputs took 16.60-17.02 s in pieces against
// 17.46-18.21 s whole (four runs each, interleaved; its decode phase 11.4-11.6 s against
// 12.4-12.9); turbo's four layers, cut once, within the noise. The pieces of a recording share
// its pinned input area, each writing after the last, so a piece never waits for the one before.

// graphAPI is the driver's stream capture and graph API (CUDA 11.4+), bound when present.
type graphAPI struct {
	beginCapture func(s uintptr, mode int32) int32
	endCapture   func(s uintptr, g *uintptr) int32
	instantiate  func(e *uintptr, g uintptr, flags uint64) int32
	launch       func(e, s uintptr) int32
	execDestroy  func(e uintptr) int32
	destroy      func(g uintptr) int32
}

func (g *graphAPI) symbols() []symbol {
	return []symbol{
		{"cuStreamBeginCapture_v2", &g.beginCapture},
		{"cuStreamEndCapture", &g.endCapture},
		{"cuGraphInstantiateWithFlags", &g.instantiate},
		{"cuGraphLaunch", &g.launch},
		{"cuGraphExecDestroy", &g.execDestroy},
		{"cuGraphDestroy", &g.destroy},
	}
}

// profilerAPI starts and stops an attached profiler's collection (Options.ProfileStep).
type profilerAPI struct {
	start, stop func() int32
}

func (p *profilerAPI) symbols() []symbol {
	return []symbol{{"cuProfilerStart", &p.start}, {"cuProfilerStop", &p.stop}}
}

// profileStep queues the profiler's start or stop (Options.ProfileStep) ahead of a recording of
// pin bytes of inputs.
func (be *Backend) profileStep(pin int) {
	if be.opts.ProfileStep <= 0 || be.l.prof == nil || pin/4 <= 64 {
		return
	}
	be.profSeen++
	switch be.profSeen {
	case be.opts.ProfileStep:
		be.pending = append(be.pending, func() error { be.l.prof.start(); return nil })
	case be.opts.ProfileStep + 2:
		be.pending = append(be.pending, func() error { be.l.prof.stop(); return nil })
	}
}

const (
	captureModeRelaxed = 2       // CU_STREAM_CAPTURE_MODE_RELAXED
	maxGraphs          = 8192    // pieces (cutOps): 11 a step of large-v3, fewer nodes than 1,024 whole steps
	maxSeen            = 1 << 14 // hashes remembered as seen once
	graphPinBytes      = 1 << 16 // pinned area for a recording's host inputs (token ids)
	cutOps             = 32      // the ops a piece holds before CutGraph queues it
)

// graphRec is the caller's side of a recording.
type graphRec struct {
	on   bool
	ok   bool // every op so far has a signature
	h    uint64
	ops  []func() error
	pin  int // bytes of the pinned input area used (by this piece and the pieces before it)
	pin0 int // bytes used by the pieces before this one
}

// GraphStats counts what EndGraph and CutGraph did (tests and benchmarks), a recording's pieces
// each (a decoder step of large-v3 is 11).
type GraphStats struct {
	Launched int // cached graphs launched
	Captured int // graphs captured and instantiated
	Plain    int // recordings run as plain ops (unsigned op, synchronous call, refused capture)
	Once     int // recordings run as plain ops because their hash was new (captured if seen again)
	Failed   int // captures the driver refused
	// With Options.GraphTimes: the GPU time in ms of the pieces, and their number, by what ran
	// them: "launched", "captured" (capture, instantiation and launch), "once" and "plain"
	// (recordings with an unsigned op; not those cut short by a synchronous call), each
	// followed by the step's size class (pinRows).
	Ms    map[string]float64
	Timed map[string]int
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func mix(h, v uint64) uint64 {
	for range 8 {
		h ^= v & 0xff
		h *= fnvPrime
		v >>= 8
	}
	return h
}

func mixString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// BeginGraph starts recording (tensor.Grapher). It does nothing when graphs are off, the
// driver lacks them, the profiler is on, or a recording is already open.
func (be *Backend) BeginGraph() {
	be.checkOpen()
	if !be.graphs || be.g.on || be.prof != nil {
		return
	}
	if be.gPinBusy {
		// The last graph may still be reading the pinned inputs: wait for it.
		if err := be.Sync(); err != nil {
			panic(&tensor.Error{Msg: "cuda: synchronize", Err: err})
		}
	}
	if be.gPin == nil {
		var p unsafe.Pointer
		if err := be.do(func() error {
			return be.l.check("cuMemAllocHost", be.l.drv.cuMemAllocHost(&p, graphPinBytes))
		}); err != nil || p == nil {
			be.graphs = false
			return
		}
		be.gPin = p
	}
	be.g = graphRec{on: true, ok: true, h: fnvOffset}
}

// EndGraph ends the recording and queues it: a cached graph, a new capture, or plain ops.
func (be *Backend) EndGraph() {
	if !be.g.on {
		return
	}
	g := be.g
	be.g = graphRec{}
	be.queueRecording(g)
}

// CutGraph queues the open recording's ops so far as a piece of their own, when there are at
// least cutOps of them, and goes on recording the rest (tensor.GraphCutter). Outside a
// recording it does nothing.
func (be *Backend) CutGraph() {
	be.checkOpen()
	if !be.g.on || len(be.g.ops) < cutOps || be.opts.NoGraphCut {
		return
	}
	g := be.g
	be.g = graphRec{on: true, ok: true, h: fnvOffset, pin: g.pin, pin0: g.pin}
	be.queueRecording(g)
}

// queueRecording queues a recording (or a piece of one) g: a cached graph, a new capture, or
// plain ops. Its size class (pinRows) is that of the pinned inputs of its recording so far, the
// first piece's (the token ids).
func (be *Backend) queueRecording(g graphRec) {
	if len(g.ops) == 0 {
		return
	}
	if g.pin > g.pin0 {
		be.gPinBusy = true
	}
	be.profileStep(g.pin - g.pin0)
	if !g.ok {
		be.gPlain++
		if be.gTimer != nil {
			ops := g.ops
			be.pending = append(be.pending, be.gTimer.wrap("plain"+pinRows(g.pin), func() error { return runOps(ops) }))
		} else {
			be.pending = append(be.pending, g.ops...)
		}
		be.flush()
		return
	}
	h := mix(g.h, uint64(len(g.ops)))
	ops := g.ops
	run := func() error { return be.runGraph(h, ops) }
	if be.gTimer != nil {
		run = be.gTimer.wrapKind(func() (string, error) {
			kind, err := be.runGraphKind(h, ops)
			return kind + pinRows(g.pin), err
		})
	}
	be.pending = append(be.pending, run)
	be.flush()
}

// GraphStats returns the counts so far (it waits for queued work).
func (be *Backend) GraphStats() GraphStats {
	var s GraphStats
	be.do(func() error { s = be.gStats; return nil })
	s.Plain = be.gPlain
	if t := be.gTimer; t != nil {
		be.Sync() // collects the events
		t.mu.Lock()
		s.Ms, s.Timed = maps.Clone(t.total), maps.Clone(t.count)
		t.mu.Unlock()
	}
	return s
}

// abortGraph ends a recording before a synchronous call: what was recorded is queued as
// plain ops ahead of it, in order.
func (be *Backend) abortGraph() {
	g := be.g
	be.g = graphRec{}
	if g.pin > g.pin0 {
		be.gPinBusy = true
	}
	be.gPlain++
	be.pending = append(be.pending, g.ops...)
}

// sign folds an op's signature into the open recording.
func (be *Backend) sign(name string, sig []uint64) {
	h := mixString(be.g.h, name)
	for _, v := range sig {
		h = mix(h, v)
	}
	be.g.h = mix(h, uint64(len(sig)))
}

// graphPinned copies b into the recording's pinned input area and returns its address, or nil
// when the area is full (the caller then uses an unsigned op, ending the recording as a graph).
func (be *Backend) graphPinned(b []byte) unsafe.Pointer {
	if !be.g.on || be.g.pin+len(b) > graphPinBytes {
		return nil
	}
	p := unsafe.Add(be.gPin, be.g.pin)
	copy(unsafe.Slice((*byte)(p), len(b)), b)
	be.g.pin += (len(b) + 15) &^ 15
	return p
}

// pinRows names the size class of a step by its pinned inputs (GraphStats.Ms): the token ids,
// 4 bytes a sequence and token, in 16-byte units.
func pinRows(pin int) string {
	switch n := pin / 4; {
	case n <= 8:
		return " <=8 ids"
	case n <= 64:
		return " <=64 ids"
	default:
		return " >64 ids"
	}
}

// runGraph runs on the worker: launch the cached graph for h, or capture ops into one.
func (be *Backend) runGraph(h uint64, ops []func() error) error {
	_, err := be.runGraphKind(h, ops)
	return err
}

// runGraphKind is runGraph, also saying what it did (GraphStats.Ms's keys).
func (be *Backend) runGraphKind(h uint64, ops []func() error) (string, error) {
	gr := be.l.graph
	if e, ok := be.gExec[h]; ok {
		if e == 0 {
			return "plain", runOps(ops)
		}
		be.gStats.Launched++
		return "launched", be.l.check("cuGraphLaunch", gr.launch(e, be.stream))
	}
	if _, ok := be.gSeen[h]; !ok {
		if len(be.gSeen) >= maxSeen {
			clear(be.gSeen)
		}
		be.gSeen[h] = struct{}{}
		be.gStats.Once++
		return "once", runOps(ops)
	}
	delete(be.gSeen, h)
	if len(be.gExec) >= maxGraphs {
		be.dropGraphs()
	}
	refuse := func() (string, error) {
		be.gExec[h] = 0
		be.gStats.Failed++
		return "plain", runOps(ops)
	}
	if be.l.check("cuStreamBeginCapture", gr.beginCapture(be.stream, captureModeRelaxed)) != nil {
		return refuse()
	}
	opErr := runOps(ops)
	var g, e uintptr
	endErr := be.l.check("cuStreamEndCapture", gr.endCapture(be.stream, &g))
	if opErr == nil && endErr == nil && g != 0 {
		if be.l.check("cuGraphInstantiate", gr.instantiate(&e, g, 0)) != nil {
			e = 0
		}
	}
	if g != 0 {
		gr.destroy(g)
	}
	if e == 0 {
		return refuse()
	}
	be.gExec[h] = e
	be.gStats.Captured++
	return "captured", be.l.check("cuGraphLaunch", gr.launch(e, be.stream))
}

// dropGraphs destroys every cached graph (worker).
func (be *Backend) dropGraphs() {
	for h, e := range be.gExec {
		if e != 0 {
			be.l.graph.execDestroy(e)
		}
		delete(be.gExec, h)
	}
}

func runOps(ops []func() error) error {
	var first error
	for _, f := range ops {
		if err := f(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func bits(f float32) uint64 { return uint64(math.Float32bits(f)) }

var (
	_ tensor.Grapher     = (*Backend)(nil)
	_ tensor.GraphCutter = (*Backend)(nil)
)

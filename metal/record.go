package metal

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"unsafe"

	"github.com/verbatimhq/verbatim/tensor"
)

// recDevice is the recording device: it implements device without a GPU, runs nothing (buffers
// have no memory: the backend reads zeros) and checks every dispatch against kernels.metal:
//   - the pipeline's kernel is declared there, and every [[buffer(i)]] it declares is bound, no
//     other index is, the parameter struct by setBytes with exactly its size, the others by
//     setBuffer to a live buffer;
//   - each buffer holds, from its offset, the bytes the kernel reads or writes for these
//     parameters (contracts: each kernel's memory access stated again, in Go, from its source);
//   - the grid covers what the kernel needs (and no more where the kernel does not check its
//     bounds), the threadgroup size is what the kernel assumes, at most 1024 threads;
//   - threadgroup memory is given exactly where the kernel takes it, enough, and within the limit.
//
// Bindings are cleared after each dispatch (Metal keeps them; the backend binds everything every
// time, which this checks). Errors are collected, not panicked, so a test lists them all.
type recDevice struct {
	// run, when set, executes each dispatch at wait (the host emulation, emu_test.go); buffers
	// then have memory.
	run        func(k *kernelDecl, groups, threads [3]int, tgMem int, binds map[int]recBinding) error
	decls      map[string]*kernelDecl
	next       int
	live       map[*recBuffer]bool
	errs       []string
	dispatches int
	wrapped    int // buffers made by wrapBuffer
	byKernel   map[string]int
	tgMax      int
}

func newRecDevice() *recDevice {
	return &recDevice{live: map[*recBuffer]bool{}, byKernel: map[string]int{}, tgMax: 32 << 10}
}

func (d *recDevice) errorf(format string, args ...any) {
	if len(d.errs) < 100 {
		d.errs = append(d.errs, fmt.Sprintf(format, args...))
	}
}

func (d *recDevice) name() string              { return "recording device (runs nothing)" }
func (d *recDevice) maxThreadgroupMemory() int { return d.tgMax }
func (d *recDevice) close()                    {}

func (d *recDevice) newBuffer(n int) (buffer, error) {
	if n <= 0 {
		return nil, fmt.Errorf("buffer of %d bytes", n)
	}
	d.next++
	b := &recBuffer{d: d, id: d.next, n: n}
	if d.run != nil {
		b.mem = make([]byte, n)
	}
	d.live[b] = true
	return b, nil
}

func (d *recDevice) wrapBuffer(p unsafe.Pointer, n int) (buffer, error) {
	page := os.Getpagesize()
	if uintptr(p)%uintptr(page) != 0 || n%page != 0 || n <= 0 {
		return nil, fmt.Errorf("wrapBuffer: %p, %d bytes: not whole pages of %d", p, n, page)
	}
	d.wrapped++
	b, err := d.newBuffer(n)
	if err == nil && d.run != nil {
		b.(*recBuffer).mem = unsafe.Slice((*byte)(p), n) // the caller's bytes, as Metal would use them
	}
	return b, err
}

func (d *recDevice) newLibrary(src string) (library, error) {
	decls, err := parseKernels(src)
	if err != nil {
		return nil, err
	}
	d.decls = decls
	return &recLibrary{d: d}, nil
}

func (d *recDevice) newCommands() (commands, error) {
	return &recCommands{d: d, bufs: map[int]recBinding{}}, nil
}

type recBuffer struct {
	d        *recDevice
	id, n    int
	released bool
	mem      []byte // with recDevice.run
}

func (b *recBuffer) size() int        { return b.n }
func (b *recBuffer) contents() []byte { return b.mem }
func (b *recBuffer) release() {
	if b.released {
		b.d.errorf("buffer %d released twice", b.id)
	}
	b.released = true
	delete(b.d.live, b)
}

type recLibrary struct{ d *recDevice }

func (l *recLibrary) release() {}
func (l *recLibrary) pipeline(fn string) (pipeline, error) {
	if l.d.decls[fn] == nil {
		return nil, fmt.Errorf("no kernel %s in the library", fn)
	}
	return &recPipeline{name: fn}, nil
}

type recPipeline struct{ name string }

func (p *recPipeline) fn() string      { return p.name }
func (p *recPipeline) maxThreads() int { return 1024 }
func (p *recPipeline) release()        {}

type recBinding struct {
	buf   *recBuffer
	off   int
	bytes []byte // setBytes
}

type recCommands struct {
	d         *recDevice
	p         *recPipeline
	bufs      map[int]recBinding
	tg        map[int]int
	committed bool
	queue     []func() error // with recDevice.run: the dispatches, run at wait
}

func (c *recCommands) use(p pipeline) { c.p = p.(*recPipeline) }
func (c *recCommands) setBuffer(b buffer, off, i int) {
	c.bufs[i] = recBinding{buf: b.(*recBuffer), off: off}
}
func (c *recCommands) setBytes(p []byte, i int) {
	if len(p) > 4096 {
		c.d.errorf("setBytes of %d bytes at index %d: Metal takes at most 4 KB", len(p), i)
	}
	c.bufs[i] = recBinding{bytes: append([]byte(nil), p...)}
}
func (c *recCommands) setThreadgroupMemory(n, i int) {
	if c.tg == nil {
		c.tg = map[int]int{}
	}
	c.tg[i] = n
}
func (c *recCommands) commit() {
	if c.committed {
		c.d.errorf("command buffer committed twice")
	}
	c.committed = true
}
func (c *recCommands) wait() error {
	if !c.committed {
		return fmt.Errorf("wait before commit")
	}
	q := c.queue
	c.queue = nil
	for _, f := range q {
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}
func (c *recCommands) release() {}

func (c *recCommands) dispatch(groups, threads [3]int) {
	d := c.d
	defer func() { c.bufs, c.tg = map[int]recBinding{}, nil }()
	if c.committed {
		d.errorf("dispatch after commit")
	}
	if c.p == nil {
		d.errorf("dispatch without a pipeline")
		return
	}
	k := d.decls[c.p.name]
	d.dispatches++
	d.byKernel[k.name]++
	where := fmt.Sprintf("%s (dispatch %d)", k.name, d.dispatches)
	np := len(k.buffers) - 1
	for i := range c.bufs {
		if i < 0 || i > np {
			d.errorf("%s: buffer index %d bound, the kernel declares 0..%d", where, i, np)
		}
	}
	pb, ok := c.bufs[np]
	if !ok || pb.bytes == nil {
		d.errorf("%s: parameters (%s) not bound by setBytes at index %d", where, k.paramStruct, np)
		return
	}
	if len(pb.bytes) != 4*len(k.params) {
		d.errorf("%s: %d bytes of parameters, %s has %d fields", where, len(pb.bytes), k.paramStruct, len(k.params))
		return
	}
	p := recParams{}
	for i, name := range k.params {
		p[name] = binary.LittleEndian.Uint32(pb.bytes[4*i:])
	}
	threads3 := threads[0] * threads[1] * threads[2]
	if threads3 < 1 || threads3 > 1024 {
		d.errorf("%s: %v threads a threadgroup", where, threads)
	}
	for _, g := range groups {
		if g < 1 {
			d.errorf("%s: grid %v", where, groups)
		}
	}
	contract, ok := contracts[k.name]
	if !ok {
		d.errorf("%s: no contract", where)
		return
	}
	need, err := contract(p, groups, threads)
	if err != nil {
		d.errorf("%s %v: %v", where, p, err)
		return
	}
	for i, bd := range k.buffers[:np] {
		b, ok := c.bufs[i]
		switch {
		case !ok:
			d.errorf("%s: buffer(%d) %s not bound", where, i, bd.name)
		case b.buf == nil:
			d.errorf("%s: buffer(%d) %s bound by setBytes", where, i, bd.name)
		case b.buf.released:
			d.errorf("%s: buffer(%d) %s was released", where, i, bd.name)
		case b.off < 0 || b.off+need.bytes[bd.name] > b.buf.n:
			d.errorf("%s %v: buffer(%d) %s needs %d bytes from offset %d, the buffer has %d", where, p, i, bd.name,
				need.bytes[bd.name], b.off, b.buf.n)
		}
	}
	for name := range need.bytes {
		if !k.hasBuffer(name) {
			d.errorf("%s: contract names buffer %s, the kernel has none", where, name)
		}
	}
	if d.run != nil {
		binds, tg := c.bufs, c.tg[0]
		c.queue = append(c.queue, func() error { return d.run(k, groups, threads, tg, binds) })
	}
	switch {
	case k.tgMem && c.tg[0] < need.tgMem:
		d.errorf("%s: %d bytes of threadgroup memory, needs %d", where, c.tg[0], need.tgMem)
	case k.tgMem && c.tg[0] > d.tgMax:
		d.errorf("%s: %d bytes of threadgroup memory, the device has %d", where, c.tg[0], d.tgMax)
	case !k.tgMem && len(c.tg) > 0:
		d.errorf("%s: threadgroup memory set for a kernel that takes none", where)
	}
}

func (k *kernelDecl) hasBuffer(name string) bool {
	for _, b := range k.buffers {
		if b.name == name {
			return true
		}
	}
	return false
}

// report lists what the recording saw: dispatches by kernel, live buffers, and the errors.
func (d *recDevice) report() string {
	var names []string
	for n := range d.byKernel {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	fmt.Fprintf(&b, "%d dispatches:", d.dispatches)
	for _, n := range names {
		fmt.Fprintf(&b, " %s %d", n, d.byKernel[n])
	}
	fmt.Fprintf(&b, "; %d buffers live; %d errors", len(d.live), len(d.errs))
	return b.String()
}

// recParams are a dispatch's parameters by field name, as raw 32-bit values.
type recParams map[string]uint32

func (p recParams) u(name string) int {
	v, ok := p[name]
	if !ok {
		panic("contract reads missing parameter " + name)
	}
	return int(v)
}
func (p recParams) i(name string) int { return int(int32(p[name])) }
func (p recParams) f(name string) float32 {
	return math.Float32frombits(p[name])
}

// need is what one dispatch requires: bytes per buffer name from its offset, threadgroup memory.
type need struct {
	bytes map[string]int
	tgMem int
}

// rb is the bytes of n elements of dtype code dt.
func rb(dt, n int) (int, error) {
	if dt < 0 || dt > int(tensor.Q4_0) {
		return 0, fmt.Errorf("dtype code %d", dt)
	}
	d := tensor.DType(dt)
	if n%d.BlockSize() != 0 {
		return 0, fmt.Errorf("%d elements of %s", n, d)
	}
	return d.RowBytes(n), nil
}

// covers checks that groups x threads along x reach n threads (one element a thread).
func covers(groups, threads [3]int, n int) error {
	if groups[0]*threads[0] < n || groups[1] != 1 || groups[2] != 1 {
		return fmt.Errorf("grid %v x %v does not cover %d elements", groups, threads, n)
	}
	return nil
}

func threadsAre(threads [3]int, want [3]int) error {
	if threads != want {
		return fmt.Errorf("threadgroup %v, the kernel assumes %v", threads, want)
	}
	return nil
}

// rowGroups checks a one-threadgroup-a-row grid: exactly rows groups (the kernels return early
// past rows, but more would be waste), threads a multiple of 32.
func rowGroups(groups, threads [3]int, rows int) error {
	if groups != [3]int{rows, 1, 1} || threads[0]%32 != 0 || threads[1] != 1 || threads[2] != 1 {
		return fmt.Errorf("grid %v x %v for %d rows", groups, threads, rows)
	}
	return nil
}

// contracts state, for each kernel of kernels.metal, the memory its parameters make it touch and
// the grid it needs. They are read from the kernels' code: a change there must change them.
var contracts = map[string]func(p recParams, groups, threads [3]int) (need, error){
	"k_unary": func(p recParams, g, t [3]int) (need, error) {
		n := p.u("n")
		return need{bytes: map[string]int{"x": 4 * n, "dst": 4 * n}}, covers(g, t, n)
	},
	"k_binary": func(p recParams, g, t [3]int) (need, error) {
		n, m := p.u("n"), p.u("m")
		if m == 0 || n%m != 0 {
			return need{}, fmt.Errorf("%d elements broadcast over %d", m, n)
		}
		return need{bytes: map[string]int{"a": 4 * n, "b": 4 * m, "dst": 4 * n}}, covers(g, t, n)
	},
	"k_layernorm": func(p recParams, g, t [3]int) (need, error) {
		rows, cols := p.u("rows"), p.u("cols")
		gb, err1 := rb(p.i("gdt"), cols)
		bb, err2 := rb(p.i("bdt"), cols)
		if err := firstErr(err1, err2, rowGroups(g, t, rows)); err != nil {
			return need{}, err
		}
		return need{bytes: map[string]int{"x": 4 * rows * cols, "gamma": gb, "beta": bb, "dst": 4 * rows * cols}}, nil
	},
	"k_softmax": func(p recParams, g, t [3]int) (need, error) {
		rows, cols := p.u("rows"), p.u("cols")
		return need{bytes: map[string]int{"x": 4 * rows * cols, "dst": 4 * rows * cols}}, rowGroups(g, t, rows)
	},
	"k_linear": func(p recParams, g, t [3]int) (need, error) {
		rows, n, k := p.u("rows"), p.u("N"), p.u("K")
		wb, err1 := rb(p.i("wdt"), n*k)
		db, err2 := rb(p.i("ddt"), rows*n)
		bb, err3 := 0, error(nil)
		if p.i("hasBias") != 0 {
			bb, err3 = rb(p.i("bdt"), n)
		}
		var err4 error
		if e := p.i("epi"); e < 0 || e > 2 || (e != 0 && p.i("ddt") != int(tensor.F32)) {
			err4 = fmt.Errorf("epilogue %d into dtype %d", e, p.i("ddt"))
		}
		err5 := threadsAre(t, [3]int{16, 16, 1})
		var err6 error
		if g[0]*16 < n || g[1]*16 < rows || g[2] != 1 {
			err6 = fmt.Errorf("grid %v for %d x %d outputs", g, rows, n)
		}
		if err := firstErr(err1, err2, err3, err4, err5, err6); err != nil {
			return need{}, err
		}
		return need{bytes: map[string]int{"x": 4 * rows * k, "w": wb, "bias": bb, "dst": db}}, nil
	},
	"k_matmul": func(p recParams, g, t [3]int) (need, error) {
		m, n, k, sa, sb := p.u("M"), p.u("N"), p.u("K"), p.u("strideA"), p.u("strideB")
		batch := g[2]
		var err error
		switch {
		case sa != m*k || (sb != 0 && sb != k*n):
			err = fmt.Errorf("strides %d, %d for %d x %d x %d", sa, sb, m, k, n)
		case g[0]*16 < n || g[1]*16 < m:
			err = fmt.Errorf("grid %v for %d x %d outputs", g, m, n)
		}
		if err := firstErr(err, threadsAre(t, [3]int{16, 16, 1})); err != nil {
			return need{}, err
		}
		bBytes := 4 * k * n
		if sb != 0 {
			bBytes *= batch
		}
		return need{bytes: map[string]int{"a": 4 * batch * m * k, "b": bBytes, "dst": 4 * batch * m * n}}, nil
	},
	"k_conv1d": func(p recParams, g, t [3]int) (need, error) {
		b, cin, tt, cout, kw, tout := p.u("B"), p.u("Cin"), p.u("T"), p.u("Cout"), p.u("K"), p.u("Tout")
		stride, pad := p.i("stride"), p.i("pad")
		var err error
		if stride < 1 || pad < 0 || tout != (tt+2*pad-kw)/stride+1 {
			err = fmt.Errorf("%d outputs of %d inputs, kernel %d, stride %d, pad %d", tout, tt, kw, stride, pad)
		}
		wb, err1 := rb(p.i("wdt"), cout*cin*kw)
		bb, err2 := 0, error(nil)
		if p.i("hasBias") != 0 {
			bb, err2 = rb(p.i("bdt"), cout)
		}
		if err := firstErr(err, err1, err2, covers(g, t, b*cout*tout)); err != nil {
			return need{}, err
		}
		return need{bytes: map[string]int{"x": 4 * b * cin * tt, "w": wb, "bias": bb, "dst": 4 * b * cout * tout}}, nil
	},
	"k_attention":       attentionContract(true),
	"k_attention_probs": attentionContract(false),
	"k_gather": func(p recParams, g, t [3]int) (need, error) {
		n, c, rows := p.u("n"), p.u("C"), p.u("N")
		tb, err := rb(p.i("dt"), rows*c)
		if err := firstErr(err, covers(g, t, n*c)); err != nil {
			return need{}, err
		}
		return need{bytes: map[string]int{"table": tb, "ids": 4 * n, "dst": 4 * n * c}}, nil
	},
	"k_copy": func(p recParams, g, t [3]int) (need, error) {
		n := p.u("n")
		sb, err1 := rb(p.i("sdt"), n)
		db, err2 := rb(p.i("ddt"), n)
		if err := firstErr(err1, err2, plainDT(p.i("ddt")), covers(g, t, n)); err != nil {
			return need{}, err
		}
		return need{bytes: map[string]int{"src": sb, "dst": db}}, nil
	},
	"k_setrows": func(p recParams, g, t [3]int) (need, error) {
		b, n, tt, c, at := p.u("B"), p.u("n"), p.u("T"), p.u("C"), p.u("at")
		var err error
		if at+n > tt {
			err = fmt.Errorf("rows [%d, %d) of %d", at, at+n, tt)
		}
		sb, err1 := rb(p.i("sdt"), b*n*c)
		db, err2 := rb(p.i("ddt"), b*tt*c)
		if err := firstErr(err, err1, err2, plainDT(p.i("sdt")), plainDT(p.i("ddt")), covers(g, t, b*n*c)); err != nil {
			return need{}, err
		}
		return need{bytes: map[string]int{"src": sb, "dst": db}}, nil
	},
	"k_transpose": func(p recParams, g, t [3]int) (need, error) {
		n := p.u("P") * p.u("M") * p.u("N")
		nb, err := rb(p.i("dt"), n)
		if err := firstErr(err, plainDT(p.i("dt")), covers(g, t, n)); err != nil {
			return need{}, err
		}
		return need{bytes: map[string]int{"src": nb, "dst": nb}}, nil
	},
}

// attentionContract: grid exactly (Tq, H, B) (the kernel does not check its group position),
// the batch B from the grid; k and v (or probs) sized from it.
func attentionContract(withV bool) func(p recParams, g, t [3]int) (need, error) {
	return func(p recParams, g, t [3]int) (need, error) {
		tq, tk, h, dd, kv := p.u("Tq"), p.u("Tk"), p.u("H"), p.u("D"), p.u("kvLen")
		b := g[2]
		var err error
		switch {
		case g[0] != tq || g[1] != h:
			err = fmt.Errorf("grid %v for %d queries of %d heads", g, tq, h)
		case kv < 1 || kv > tk:
			err = fmt.Errorf("%d keys of %d", kv, tk)
		case p.i("causal") != 0 && kv < tq:
			err = fmt.Errorf("causal with %d queries over %d keys", tq, kv)
		case t[0]%32 != 0 || t[1] != 1 || t[2] != 1:
			err = fmt.Errorf("threadgroup %v", t)
		}
		kb, err1 := rb(p.i("kdt"), b*tk*h*dd)
		if err := firstErr(err, err1, plainDT(p.i("kdt"))); err != nil {
			return need{}, err
		}
		nd := need{bytes: map[string]int{"q": 4 * b * tq * h * dd, "k": kb}, tgMem: 4 * kv}
		if withV {
			vb, err := rb(p.i("vdt"), b*tk*h*dd)
			if err := firstErr(err, plainDT(p.i("vdt"))); err != nil {
				return need{}, err
			}
			nd.bytes["v"], nd.bytes["dst"] = vb, 4*b*tq*h*dd
		} else {
			nd.bytes["probs"] = 4 * b * h * tq * kv
		}
		return nd, nil
	}
}

func plainDT(dt int) error {
	if dt != int(tensor.F32) && dt != int(tensor.F16) && dt != int(tensor.BF16) {
		return fmt.Errorf("dtype code %d where f32, f16 or bf16 is read or written", dt)
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

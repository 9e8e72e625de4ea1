package cuda

import (
	"fmt"
	"unsafe"

	"github.com/verbatimhq/verbatim/tensor"
)

// cuBLASLt, loaded from libcublasLt.so.* at run time: GEMMs with the bias added in the epilogue
// (and the residual as C with beta = 1), so that a Linear is one launch instead of GEMM + k_epi.
// Reference: https://docs.nvidia.com/cuda/cublas/index.html#using-the-cublaslt-api
// cublasLtMatmul: https://docs.nvidia.com/cuda/cublas/index.html#cublasltmatmul
// cublasLtMatmulAlgoGetHeuristic: https://docs.nvidia.com/cuda/cublas/index.html#cublasltmatmulalgogetheuristic
// cublasLtMatmulDescAttributes_t: https://docs.nvidia.com/cuda/cublas/index.html#cublasltmatmuldescattributes-t
// cublasLtEpilogue_t: https://docs.nvidia.com/cuda/cublas/index.html#cublasltepilogue-t
type cublasLtAPI struct {
	create           func(h *uintptr) int32
	destroy          func(h uintptr) int32
	descCreate       func(d *uintptr, compute int32, scale int32) int32
	descDestroy      func(d uintptr) int32
	descSetAttr      func(d uintptr, attr int32, buf unsafe.Pointer, size uintptr) int32
	layoutCreate     func(l *uintptr, dt int32, rows, cols uint64, ld int64) int32
	layoutDestroy    func(l uintptr) int32
	prefCreate       func(p *uintptr) int32
	prefDestroy      func(p uintptr) int32
	prefSetAttr      func(p uintptr, attr int32, buf unsafe.Pointer, size uintptr) int32
	algoGetHeuristic func(h, desc, a, b, c, d, pref uintptr, requested int32, results unsafe.Pointer, count *int32) int32
	algoConfigGet    func(algo unsafe.Pointer, attr int32, buf unsafe.Pointer, size uintptr, written *uintptr) int32
	matmul           func(h, desc uintptr, alpha unsafe.Pointer, a uint64, adesc uintptr, b uint64, bdesc uintptr,
		beta unsafe.Pointer, c uint64, cdesc uintptr, d uint64, ddesc uintptr, algo unsafe.Pointer,
		ws uint64, wsSize uintptr, stream uintptr) int32
}

func (c *cublasLtAPI) symbols() []symbol {
	return []symbol{
		{"cublasLtCreate", &c.create},
		{"cublasLtDestroy", &c.destroy},
		{"cublasLtMatmulDescCreate", &c.descCreate},
		{"cublasLtMatmulDescDestroy", &c.descDestroy},
		{"cublasLtMatmulDescSetAttribute", &c.descSetAttr},
		{"cublasLtMatrixLayoutCreate", &c.layoutCreate},
		{"cublasLtMatrixLayoutDestroy", &c.layoutDestroy},
		{"cublasLtMatmulPreferenceCreate", &c.prefCreate},
		{"cublasLtMatmulPreferenceDestroy", &c.prefDestroy},
		{"cublasLtMatmulPreferenceSetAttribute", &c.prefSetAttr},
		{"cublasLtMatmulAlgoGetHeuristic", &c.algoGetHeuristic},
		{"cublasLtMatmulAlgoConfigGetAttribute", &c.algoConfigGet},
		{"cublasLtMatmul", &c.matmul},
	}
}

// cuBLASLt constants (cublasLt.h).
const (
	ltDescTransA      = 3 // CUBLASLT_MATMUL_DESC_TRANSA, int32
	ltDescTransB      = 4 // CUBLASLT_MATMUL_DESC_TRANSB, int32
	ltDescEpilogue    = 7 // CUBLASLT_MATMUL_DESC_EPILOGUE, uint32
	ltDescBiasPointer = 8 // CUBLASLT_MATMUL_DESC_BIAS_POINTER, const void*

	ltEpilogueDefault = 1 // CUBLASLT_EPILOGUE_DEFAULT
	ltEpilogueBias    = 4 // CUBLASLT_EPILOGUE_BIAS: D = alpha op(A) op(B) + beta C + bias (per row of D)

	ltPrefMaxWorkspace = 1 // CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, uint64

	// ltWorkspace is the device workspace offered to cuBLASLt's algorithms.
	ltWorkspace = 32 << 20
	// ltHeuristicSize is sizeof(cublasLtMatmulHeuristicResult_t): cublasLtMatmulAlgo_t (8
	// uint64), size_t workspaceSize, cublasStatus_t state, float wavesCount, int reserved[4].
	ltHeuristicSize = 96
)

// ltKey identifies a cuBLASLt plan: the shape of a row-major Linear (rows x k times n x k
// weight), the operand, output and bias types, whether C (beta = 1) is read, and the distance
// between the output's rows in elements (ldd; 0: n, the rows packed).
type ltKey struct {
	rows, n, k  int
	wdt, ddt    int32
	bias, accum bool
	ldd         int
}

// ltPlan is a matmul descriptor, its layouts and the algorithm the heuristic chose. Made and
// used on the worker; destroyed in teardown.
type ltPlan struct {
	desc, a, b, d uintptr
	algo          [ltHeuristicSize]byte
}

// ltPlanFor returns the cached plan for k, making it on first use (on the worker). A nil plan
// means cuBLASLt offers no algorithm for the shape: the caller takes the cuBLAS path.
func (be *Backend) ltPlanFor(k ltKey) *ltPlan {
	if p, ok := be.ltPlans[k]; ok {
		return p
	}
	var plan *ltPlan
	err := be.do(func() error {
		p, err := be.makeLtPlan(k)
		plan = p
		return err
	})
	if err != nil {
		plan = nil
	}
	be.ltPlans[k] = plan
	return plan
}

func (be *Backend) makeLtPlan(k ltKey) (*ltPlan, error) {
	lt := be.l.lt
	p := &ltPlan{}
	fail := func(call string, code int32) error {
		be.destroyLtPlan(p)
		return cublasCheck(call, code)
	}
	if c := lt.descCreate(&p.desc, cublasCompute32F, cudaR32F); c != 0 || p.desc == 0 {
		return nil, fail("cublasLtMatmulDescCreate", max(c, 7))
	}
	// Row-major dst[rows, n] = x[rows, k] w[n, k]^T is column-major D[n, rows] = W^T X with W
	// stored k x n (ld k) and transposed, X stored k x rows (ld k).
	ta, tb := int32(cublasOpT), int32(cublasOpN)
	epi := uint32(ltEpilogueDefault)
	if k.bias {
		epi = ltEpilogueBias
	}
	if c := lt.descSetAttr(p.desc, ltDescTransA, unsafe.Pointer(&ta), 4); c != 0 {
		return nil, fail("cublasLtMatmulDescSetAttribute(TRANSA)", c)
	}
	if c := lt.descSetAttr(p.desc, ltDescTransB, unsafe.Pointer(&tb), 4); c != 0 {
		return nil, fail("cublasLtMatmulDescSetAttribute(TRANSB)", c)
	}
	if c := lt.descSetAttr(p.desc, ltDescEpilogue, unsafe.Pointer(&epi), 4); c != 0 {
		return nil, fail("cublasLtMatmulDescSetAttribute(EPILOGUE)", c)
	}
	if c := lt.layoutCreate(&p.a, k.wdt, uint64(k.k), uint64(k.n), int64(k.k)); c != 0 || p.a == 0 {
		return nil, fail("cublasLtMatrixLayoutCreate(A)", max(c, 7))
	}
	if c := lt.layoutCreate(&p.b, k.wdt, uint64(k.k), uint64(k.rows), int64(k.k)); c != 0 || p.b == 0 {
		return nil, fail("cublasLtMatrixLayoutCreate(B)", max(c, 7))
	}
	ldd := k.n
	if k.ldd > 0 {
		ldd = k.ldd
	}
	if c := lt.layoutCreate(&p.d, k.ddt, uint64(k.n), uint64(k.rows), int64(ldd)); c != 0 || p.d == 0 {
		return nil, fail("cublasLtMatrixLayoutCreate(D)", max(c, 7))
	}
	algos, err := be.ltHeuristics(p, k, 1)
	if err != nil {
		be.destroyLtPlan(p)
		return nil, err
	}
	p.algo = algos[0]
	return p, nil
}

// ltWaves is a heuristic result's wavesCount.
func ltWaves(a [ltHeuristicSize]byte) float32 {
	return *(*float32)(unsafe.Pointer(&a[76]))
}

// ltHeuristics returns up to n of cuBLASLt's algorithms for p's descriptor and layouts (the
// key's shape), best first by its heuristic, each with the workspace it needs within ours.
func (be *Backend) ltHeuristics(p *ltPlan, k ltKey, n int) ([][ltHeuristicSize]byte, error) {
	lt := be.l.lt
	var pref uintptr
	if c := lt.prefCreate(&pref); c != 0 || pref == 0 {
		return nil, cublasCheck("cublasLtMatmulPreferenceCreate", max(c, 7))
	}
	defer lt.prefDestroy(pref)
	ws := uint64(ltWorkspace)
	if c := lt.prefSetAttr(pref, ltPrefMaxWorkspace, unsafe.Pointer(&ws), 8); c != 0 {
		return nil, cublasCheck("cublasLtMatmulPreferenceSetAttribute", c)
	}
	// The heuristic reads the bias pointer's alignment: give it an aligned placeholder (every
	// bias the plan runs with is 256-byte aligned, see linearLt).
	if k.bias {
		bp := uint64(256)
		lt.descSetAttr(p.desc, ltDescBiasPointer, unsafe.Pointer(&bp), 8)
	}
	res := make([][ltHeuristicSize]byte, n)
	var got int32
	if c := lt.algoGetHeuristic(be.lt, p.desc, p.a, p.b, p.d, p.d, pref, int32(n), unsafe.Pointer(&res[0][0]), &got); c != 0 {
		return nil, cublasCheck("cublasLtMatmulAlgoGetHeuristic", c)
	}
	var out [][ltHeuristicSize]byte
	for _, r := range res[:max(0, min(int(got), n))] {
		state := *(*int32)(unsafe.Pointer(&r[72]))
		wsNeed := *(*uint64)(unsafe.Pointer(&r[64]))
		if state == 0 && wsNeed <= ltWorkspace {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("cublasLtMatmulAlgoGetHeuristic: no algorithm for %+v", k)
	}
	return out, nil
}

// ltAlgoConfig reads an algorithm's configuration attribute attr
// (cublasLtMatmulAlgoConfigAttributes_t) as an unsigned number of size bytes (2 or 4).
func (be *Backend) ltAlgoConfig(a *[ltHeuristicSize]byte, attr int32, size uintptr) uint32 {
	var v uint32
	var written uintptr
	if be.l.lt.algoConfigGet(unsafe.Pointer(&a[0]), attr, unsafe.Pointer(&v), size, &written) != 0 {
		return 0
	}
	if size == 2 {
		v &= 0xffff
	}
	return v
}

func (be *Backend) destroyLtPlan(p *ltPlan) {
	lt := be.l.lt
	for _, l := range []uintptr{p.a, p.b, p.d} {
		if l != 0 {
			lt.layoutDestroy(l)
		}
	}
	if p.desc != 0 {
		lt.descDestroy(p.desc)
	}
	*p = ltPlan{}
}

// linearLt records dst = x w^T (+ bias) (+ dst when accum) as one cublasLtMatmul: xp is the
// 16-bit GEMM input (the shadow, a packed tensor or a k_cvt scratch), bp the bias in dst's dtype
// (0 for none). It reports false, recording nothing, when cuBLASLt has no plan for the shape.
func (be *Backend) linearLt(dst uint64, ddt int32, xp uint64, wp uint64, wdt tensor.DType, bp uint64, rows, n, k int, accum bool) bool {
	key := ltKey{rows: rows, n: n, k: k, wdt: cudaType(wdt), ddt: ddt, bias: bp != 0, accum: accum}
	plan := be.ltPlanFor(key)
	if plan == nil {
		return false
	}
	be.ltMatmul(plan, dst, xp, wp, bp, rows, n, k, accum)
	return true
}

// ltMatmul records plan's cublasLtMatmul of dst = x w^T (+ bias) (+ dst when accum), with xp,
// wp and bp as linearLt's.
func (be *Backend) ltMatmul(plan *ltPlan, dst, xp, wp, bp uint64, rows, n, k int, accum bool) {
	if be.ltWS == 0 {
		be.ltWS = be.malloc(ltWorkspace) // owned by the ledger, never returned to the cache
	}
	ws := be.ltWS
	acc := uint64(0)
	if accum {
		acc = 1
	}
	op := "gemm_lt"
	if be.prof != nil { // the profile splits the GEMMs by shape (graphs are off while profiling)
		op = fmt.Sprintf("gemm_lt %dx%dx%d", rows, n, k)
	}
	be.enqueueSig(op, func() error {
		lt := be.l.lt
		if bp != 0 {
			b := bp
			if c := lt.descSetAttr(plan.desc, ltDescBiasPointer, unsafe.Pointer(&b), 8); c != 0 {
				return cublasCheck("cublasLtMatmulDescSetAttribute(BIAS_POINTER)", c)
			}
		}
		al, bt := float32(1), float32(0)
		if accum {
			bt = 1
		}
		return cublasCheck("cublasLtMatmul", lt.matmul(be.lt, plan.desc, unsafe.Pointer(&al), wp, plan.a, xp, plan.b,
			unsafe.Pointer(&bt), dst, plan.d, dst, plan.d, unsafe.Pointer(&plan.algo[0]), ws, ltWorkspace, be.stream))
	}, uint64(uintptr(unsafe.Pointer(plan))), uint64(plan.desc), wp, xp, dst, bp, ws, acc)
}

// biasAs returns bias in dtype dt: the weight itself, or a converted copy made once and kept
// until the weight is freed.
func (be *Backend) biasAs(bias *tensor.Tensor, dt tensor.DType) uint64 {
	if bias.DType == dt {
		return ptr(bias)
	}
	key := biasKey{ptr(bias), dt}
	if p, ok := be.biasCopies[key]; ok {
		return p
	}
	n := bias.Len()
	p := be.malloc(n * elemSize(dt))
	be.kernel("k_cvt", be.grid1(n), block256, 0, u64(p), dtc(dt), u64(ptr(bias)), dtc(bias.DType), i64(n))
	be.biasCopies[key] = p
	return p
}

type biasKey struct {
	p  uint64
	dt tensor.DType
}

// dropBiasCopies releases the converted copies of biases stored in [p, e).
func (be *Backend) dropBiasCopies(p, e uint64) {
	for k, c := range be.biasCopies {
		if k.p >= p && k.p < e {
			be.release(c)
			delete(be.biasCopies, k)
		}
	}
}

package cpu

import (
	"math"

	"github.com/verbatimhq/verbatim/tensor"
)

var _ tensor.AttentionWeights = (*Backend)(nil)

// attnShape checks the operands of Attention and returns batch, Tq, Tk, head dim.
func (be *Backend) attnShape(op string, q, k *tensor.Tensor, heads, kvLen int) (b, tq, tk, d int) {
	dims := func(t *tensor.Tensor) (int, int, int) {
		switch t.Rank() {
		case 2:
			return 1, t.Shape[0], t.Shape[1]
		case 3:
			return t.Shape[0], t.Shape[1], t.Shape[2]
		}
		shapeErr(op, "%v is not rank 2 or 3", t.Shape)
		return 0, 0, 0
	}
	b, tq, hd := dims(q)
	bk, tk, hdk := dims(k)
	if heads < 1 || hd%heads != 0 || bk != b || hdk != hd || kvLen < 0 || kvLen > tk {
		shapeErr(op, "q %v, k %v, heads %d, kvLen %d", q.Shape, k.Shape, heads, kvLen)
	}
	return b, tq, tk, hd / heads
}

// visible is the number of keys query i sees.
func visible(i, tq, kvLen int, causal bool) int {
	if !causal {
		return kvLen
	}
	return max(0, min(kvLen, i+kvLen-tq+1))
}

// Attention is multi-head scaled dot-product attention. Large query counts run blocked: per
// head and block of queries, S = scale q k^T on packed panels, softmax in place, then S v, all
// with the GEMM kernels. A few queries (decoding) use dot products instead. A query that sees
// no key (possible only with causal and kvLen < Tq) gets a zero output row. k and v are F32 or
// both F16 (tensor.HalfCaches), widened as they are read.
func (be *Backend) Attention(dst, q, k, v *tensor.Tensor, heads, kvLen int, scale float32, causal bool) {
	qd, kd, vd, dd := be.f32(q), be.kvData("Attention", k), be.kvData("Attention", v), be.f32(dst)
	b, tq, tk, d := be.attnShape("Attention", q, k, heads, kvLen)
	hd := heads * d
	if !tensor.SameShape(k.Shape, v.Shape) || k.DType != v.DType || dst.Len() != q.Len() || dst.Dim(-1) != hd {
		shapeErr("Attention", "q %v, k %v, v %v, dst %v", q.Shape, k.Shape, v.Shape, dst.Shape)
	}
	if tq*hd == 0 {
		return
	}
	if tq <= 8 || kvLen == 0 {
		be.attnSmall(dd, qd, kd, vd, b, tq, tk, heads, d, kvLen, scale, causal)
		return
	}
	be.attnBlocked(dd, qd, kd, vd, b, tq, tk, heads, d, kvLen, scale, causal)
}

// attnBlocked computes attention for blocks of nr queries with the GEMM kernels, working on the
// transposed scores so that no large operand is repacked: S^T = K Q^T lands in exactly the
// layout of a packed B panel, the softmax runs down its columns, and O^T = V^T P^T reuses it
// as is. K and V are packed once per (batch, head) as A panels.
func (be *Backend) attnBlocked(dd, qd []float32, kd, vd kvData, b, tq, tk, heads, d, kvLen int, scale float32, causal bool) {
	s := active
	mr, nr := s.mr, s.nr
	hd := heads * d
	kvPadM, dPadM := roundUp(kvLen, mr), roundUp(d, mr)
	perK := kvPadM * d    // K as A panels: kvLen rows, depth d
	perV := dPadM * kvLen // V^T as A panels: d rows, depth kvLen
	kp := be.sharedBuf(0, b*heads*perK)
	vp := be.sharedBuf(1, b*heads*perV)
	be.pool.run(b*heads, func(_, t int) {
		bi, h := t/heads, t%heads
		kb := kd.mat(bi*tk*hd+h*d, hd, 1)
		vb := vd.mat(bi*tk*hd+h*d, 1, hd)
		for p0 := 0; p0 < d; p0 += kcBlock {
			packA(kp[t*perK+p0*kvPadM:], kb, 0, kvLen, p0, min(kcBlock, d-p0), mr, 1)
		}
		for p0 := 0; p0 < kvLen; p0 += kcBlock {
			packA(vp[t*perV+p0*dPadM:], vb, 0, d, p0, min(kcBlock, kvLen-p0), mr, 1)
		}
	})
	nqb := (tq + nr - 1) / nr
	be.pool.run(b*heads*nqb, func(w, t int) {
		bh, qb := t/nqb, t%nqb
		bi, h := bh/heads, bh%heads
		j0 := qb * nr
		cols := min(nr, tq-j0)
		out := dd[(bi*tq+j0)*hd+h*d:]
		nvis := visible(j0+cols-1, tq, kvLen, causal)
		if nvis == 0 {
			for j := range cols {
				clear(out[j*hd : j*hd+d])
			}
			return
		}
		tmp := be.scratch(w, 0, mr*nr)
		qp := be.scratch(w, 1, d*nr)
		st := be.scratch(w, 2, nvis*nr)
		ot := be.scratch(w, 3, d*nr+nr)
		inv := ot[d*nr:]
		// S^T [nvis, nr] = K Q^T * scale.
		qm := mat{data: qd[(bi*tq+j0)*hd+h*d:], rs: 1, cs: hd}
		for p0 := 0; p0 < d; p0 += kcBlock {
			kc := min(kcBlock, d-p0)
			packB(qp[p0*nr:], qm, 0, cols, p0, kc, nr)
			if scale != 1 {
				for i := range qp[p0*nr : p0*nr+kc*nr] {
					qp[p0*nr+i] *= scale
				}
			}
			macro(s, nvis, nr, kc, kp[bh*perK+p0*kvPadM:], mr*kc, qp[p0*nr:], nr*kc, st, nr, p0 > 0, tmp)
		}
		// Mask keys a causal query does not see, then softmax down the columns.
		var empty []int
		if causal {
			for j := range cols {
				n := visible(j0+j, tq, kvLen, causal)
				if n == 0 {
					empty = append(empty, j)
				}
				for r := n; r < nvis; r++ {
					st[r*nr+j] = float32(math.Inf(-1))
				}
			}
			for _, j := range empty {
				for r := range nvis {
					st[r*nr+j] = 0
				}
			}
		}
		s.softmaxCols(&st[0], nvis, &inv[0])
		if causal {
			for j := range cols {
				for r := visible(j0+j, tq, kvLen, causal); r < nvis; r++ {
					st[r*nr+j] = 0
				}
			}
			for _, j := range empty {
				inv[j] = 0
			}
		}
		// O^T [d, nr] = V^T P^T.
		for p0 := 0; p0 < nvis; p0 += kcBlock {
			kc := min(kcBlock, nvis-p0)
			macro(s, d, nr, kc, vp[bh*perV+p0*dPadM:], mr*min(kcBlock, kvLen-p0), st[p0*nr:], nr*kc, ot, nr, p0 > 0, tmp)
		}
		for j := range cols {
			o := out[j*hd : j*hd+d]
			for e := range o {
				o[e] = ot[e*nr+j] * inv[j]
			}
		}
	})
}

// attnSmall handles a few query rows: per (batch, head), scores by dot products over the keys,
// softmax, and a weighted sum of the value rows.
func (be *Backend) attnSmall(dd, qd []float32, kd, vd kvData, b, tq, tk, heads, d, kvLen int, scale float32, causal bool) {
	hd := heads * d
	// Queries that all see every key (cross-attention, beam search's beams of one window) and
	// F16 values: their weighted sums run together (wsumhr), each value row widened once for
	// all of them; every output is the same bits as one query at a time.
	s := active
	together := !causal && tq > 1 && kvLen > 0 && vd.h != nil && s.wsumhr[2] != nil && d%s.hStep == 0
	be.pool.splitW(b*heads, 4*tq*kvLen*d, func(w, lo, hi int) {
		if together {
			sc := be.scratch(w, 0, tq*kvLen) // every query's scores, then probabilities
			inv := be.scratch(w, 1, tq)
			for t := lo; t < hi; t++ {
				bi, h := t/heads, t%heads
				off := bi*tk*hd + h*d
				q := qd[bi*tq*hd+h*d : (bi*tq+tq-1)*hd+h*d+d]
				n4 := kvLen / 4 * 4 // the keys scores gives dot4h (the rest: dotH)
				for i := 0; i < tq; {
					r := rowsCall(tq - i)
					if r == 1 || n4 == 0 || kd.h == nil || s.dothr[2] == nil || d%s.dotStep != 0 {
						for ; r > 0; r, i = r-1, i+1 {
							kd.scores(sc[i*kvLen:(i+1)*kvLen], q[i*hd:i*hd+d], off, hd, scale)
						}
						continue
					}
					k := kd.h[off : off+(kvLen-1)*hd+d] // bounds for the kernel
					s.dothr[r](d, &q[i*hd], hd, &k[0], hd, &sc[i*kvLen], kvLen, n4, false)
					for ; r > 0; r, i = r-1, i+1 {
						p := sc[i*kvLen : (i+1)*kvLen]
						for j := range n4 {
							p[j] *= scale
						}
						for j := n4; j < kvLen; j++ {
							p[j] = dotH(q[i*hd:i*hd+d], k[j*hd:j*hd+d]) * scale
						}
					}
				}
				for i := range tq {
					p := sc[i*kvLen : (i+1)*kvLen]
					inv[i] = 1 / expSum(p, vmax(p))
				}
				out := dd[bi*tq*hd+h*d : (bi*tq+tq-1)*hd+h*d+d]
				v := vd.h[off : off+(kvLen-1)*hd+d] // bounds for the kernels
				for i := 0; i < tq; {
					r := rowsCall(tq - i)
					if r == 1 {
						vd.wsum(out[i*hd:i*hd+d], sc[i*kvLen:(i+1)*kvLen], off, hd)
					} else {
						s.wsumhr[r](&out[i*hd], hd, d, &sc[i*kvLen], kvLen, kvLen, &v[0], hd)
					}
					i += r
				}
				for i := range tq {
					o := out[i*hd : i*hd+d]
					for j := range o {
						o[j] *= inv[i]
					}
				}
			}
			return
		}
		sc := be.scratch(w, 0, kvLen) // the scores of one query (a few visible keys at most kvLen)
		for t := lo; t < hi; t++ {
			bi, h := t/heads, t%heads
			for i := range tq {
				out := dd[(bi*tq+i)*hd+h*d : (bi*tq+i)*hd+h*d+d]
				n := visible(i, tq, kvLen, causal)
				if n == 0 {
					clear(out)
					continue
				}
				sc := sc[:n]
				qv := qd[(bi*tq+i)*hd+h*d : (bi*tq+i)*hd+h*d+d]
				kd.scores(sc, qv, bi*tk*hd+h*d, hd, scale)
				inv := 1 / expSum(sc, vmax(sc))
				vd.wsum(out, sc, bi*tk*hd+h*d, hd)
				for j := range out {
					out[j] *= inv
				}
			}
		}
	})
}

// rowsCall is how many of the next n rows one call of a several-row kernel (gemvhr, dothr,
// wsumhr) takes: n in calls of at most maxRowsH, as even as possible.
func rowsCall(n int) int {
	calls := (n + maxRowsH - 1) / maxRowsH
	return (n + calls - 1) / calls
}

// scores sets sc[j] = scale * q . k[j*ldk : j*ldk+len(q)].
func scores(sc, q, k []float32, ldk int, scale float32) {
	s := active
	d := len(q)
	dv := d / s.dotStep * s.dotStep
	var out [4]float32
	j := 0
	if dv > 0 {
		for ; j+4 <= len(sc); j += 4 {
			s.dot4(dv, &q[0], &k[j*ldk], ldk, &out[0])
			for r := range 4 {
				v := out[r]
				if dv < d {
					v += dot(q[dv:], k[(j+r)*ldk+dv:(j+r)*ldk+d])
				}
				sc[j+r] = v * scale
			}
		}
	}
	for ; j < len(sc); j++ {
		sc[j] = dot(q, k[j*ldk:j*ldk+d]) * scale
	}
}

// wsum sets out = sum_j p[j] * v[j*ldv:][:len(out)].
func wsum(out, p, v []float32, ldv int) {
	s := active
	d := len(out)
	dv := d / s.vecStep * s.vecStep
	if len(p) == 0 {
		clear(out)
		return
	}
	_ = v[(len(p)-1)*ldv+d-1] // bounds check for the kernel
	if dv > 0 {
		s.wsum(&out[0], dv, &p[0], len(p), &v[0], ldv)
	}
	if dv < d {
		wsumGeneric(&out[dv], d-dv, &p[0], len(p), &v[dv], ldv)
	}
}

// AttentionProbs writes the softmax probabilities of Attention: probs [B, H, Tq, kvLen]. Keys a
// causal query does not see get probability 0. k is F32 or F16.
func (be *Backend) AttentionProbs(probs, q, k *tensor.Tensor, heads, kvLen int, scale float32, causal bool) {
	qd, kd, pd := be.f32(q), be.kvData("AttentionProbs", k), be.f32(probs)
	b, tq, tk, d := be.attnShape("AttentionProbs", q, k, heads, kvLen)
	if probs.Len() != b*heads*tq*kvLen || probs.Dim(-1) != kvLen {
		shapeErr("AttentionProbs", "probs %v, want [%d %d %d %d]", probs.Shape, b, heads, tq, kvLen)
	}
	hd := heads * d
	be.pool.split(b*heads*tq, 2*kvLen*d, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			bh, i := t/tq, t%tq
			bi, h := bh/heads, bh%heads
			row := pd[t*kvLen : (t+1)*kvLen]
			n := visible(i, tq, kvLen, causal)
			clear(row[n:])
			if n == 0 {
				continue
			}
			qv := qd[(bi*tq+i)*hd+h*d : (bi*tq+i)*hd+h*d+d]
			kd.scores(row[:n], qv, bi*tk*hd+h*d, hd, scale)
			softmaxRow(row[:n])
		}
	})
}

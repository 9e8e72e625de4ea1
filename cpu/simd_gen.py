# Generates simd_amd64.s (run from cpu/: python3 simd_gen.py). The unrolled AVX-512/AVX2 blocks
# of the SGEMM micro-kernels, the exp/GELU/softmax kernels and the quantized-weight kernels
# (matrix-vector on q8 activations, dequantization for GEMM packing) come from here.
L=[]
w=L.append
w("//go:build amd64 && !purego")
w("")
w("// SIMD kernels for the cpu backend: SGEMM micro-kernels, dot products, exp, and the kernels of")
w("// quantized weights.")
w("// The unrolled blocks were written by a small generator script; keep them consistent.")
w("")
w('#include "textflag.h"')
w("")
# ---------- AVX-512 12x32 kernel
w("// func kern12x32(k int, a, b, c *float32, ldc int, acc bool)")
w("// c[12x32] (+)= a (packed 12-row panel) * b (packed 32-column panel), AVX-512F.")
w("TEXT ·kern12x32(SB), NOSPLIT, $0-41")
w("\tMOVQ k+0(FP), CX")
w("\tMOVQ a+8(FP), SI")
w("\tMOVQ b+16(FP), DI")
w("\tMOVQ c+24(FP), DX")
w("\tMOVQ ldc+32(FP), R8")
w("\tSHLQ $2, R8")
for i in range(24):
    w(f"\tVPXORD Z{i}, Z{i}, Z{i}")
w("\tTESTQ CX, CX")
w("\tJEQ k12store")
w("k12loop:")
w("\tVMOVUPS (DI), Z24")
w("\tVMOVUPS 64(DI), Z25")
for i in range(12):
    r=26+i%6
    w(f"\tVBROADCASTSS {4*i}(SI), Z{r}")
    w(f"\tVFMADD231PS Z24, Z{r}, Z{2*i}")
    w(f"\tVFMADD231PS Z25, Z{r}, Z{2*i+1}")
w("\tADDQ $48, SI")
w("\tADDQ $128, DI")
w("\tDECQ CX")
w("\tJNZ k12loop")
w("k12store:")
w("\tMOVBLZX acc+40(FP), AX")
w("\tTESTL AX, AX")
w("\tJEQ k12set")
for i in range(12):
    w(f"\tVADDPS (DX), Z{2*i}, Z{2*i}")
    w(f"\tVADDPS 64(DX), Z{2*i+1}, Z{2*i+1}")
    w(f"\tVMOVUPS Z{2*i}, (DX)")
    w(f"\tVMOVUPS Z{2*i+1}, 64(DX)")
    if i<11: w("\tADDQ R8, DX")
w("\tVZEROUPPER")
w("\tRET")
w("k12set:")
for i in range(12):
    w(f"\tVMOVUPS Z{2*i}, (DX)")
    w(f"\tVMOVUPS Z{2*i+1}, 64(DX)")
    if i<11: w("\tADDQ R8, DX")
w("\tVZEROUPPER")
w("\tRET")
w("")
# ---------- AVX2 6x16 kernel
w("// func kern6x16(k int, a, b, c *float32, ldc int, acc bool)")
w("// c[6x16] (+)= a (packed 6-row panel) * b (packed 16-column panel), AVX2+FMA.")
w("TEXT ·kern6x16(SB), NOSPLIT, $0-41")
w("\tMOVQ k+0(FP), CX")
w("\tMOVQ a+8(FP), SI")
w("\tMOVQ b+16(FP), DI")
w("\tMOVQ c+24(FP), DX")
w("\tMOVQ ldc+32(FP), R8")
w("\tSHLQ $2, R8")
for i in range(12):
    w(f"\tVXORPS Y{i}, Y{i}, Y{i}")
w("\tTESTQ CX, CX")
w("\tJEQ k6store")
w("k6loop:")
w("\tVMOVUPS (DI), Y12")
w("\tVMOVUPS 32(DI), Y13")
for i in range(6):
    r=14+i%2
    w(f"\tVBROADCASTSS {4*i}(SI), Y{r}")
    w(f"\tVFMADD231PS Y12, Y{r}, Y{2*i}")
    w(f"\tVFMADD231PS Y13, Y{r}, Y{2*i+1}")
w("\tADDQ $24, SI")
w("\tADDQ $64, DI")
w("\tDECQ CX")
w("\tJNZ k6loop")
w("k6store:")
w("\tMOVBLZX acc+40(FP), AX")
w("\tTESTL AX, AX")
w("\tJEQ k6set")
for i in range(6):
    w(f"\tVADDPS (DX), Y{2*i}, Y{2*i}")
    w(f"\tVADDPS 32(DX), Y{2*i+1}, Y{2*i+1}")
    w(f"\tVMOVUPS Y{2*i}, (DX)")
    w(f"\tVMOVUPS Y{2*i+1}, 32(DX)")
    if i<5: w("\tADDQ R8, DX")
w("\tVZEROUPPER")
w("\tRET")
w("k6set:")
for i in range(6):
    w(f"\tVMOVUPS Y{2*i}, (DX)")
    w(f"\tVMOVUPS Y{2*i+1}, 32(DX)")
    if i<5: w("\tADDQ R8, DX")
w("\tVZEROUPPER")
w("\tRET")
w("")
# ---------- dot4 AVX-512
w("// func dot4AVX512(k int, x, w *float32, ldw int, out *float32)")
w("// out[r] = sum_p x[p]*w[r*ldw+p], r < 4, k a multiple of 16.")
w("TEXT ·dot4AVX512(SB), NOSPLIT, $0-40")
w("\tMOVQ k+0(FP), CX")
w("\tMOVQ x+8(FP), SI")
w("\tMOVQ w+16(FP), DI")
w("\tMOVQ ldw+24(FP), R8")
w("\tSHLQ $2, R8")
w("\tLEAQ (DI)(R8*1), R9")
w("\tLEAQ (DI)(R8*2), R10")
w("\tLEAQ (R9)(R8*2), R11")
w("\tMOVQ out+32(FP), DX")
for i in range(8):
    w(f"\tVPXORD Z{i}, Z{i}, Z{i}")
w("\tXORQ AX, AX")
w("\tCMPQ CX, $32")
w("\tJLT d4tail")
w("d4loop2:")
w("\tVMOVUPS (SI)(AX*4), Z8")
w("\tVMOVUPS 64(SI)(AX*4), Z9")
for r,reg in enumerate(["DI","R9","R10","R11"]):
    w(f"\tVFMADD231PS (({reg}))(AX*4), Z8, Z{r}".replace("((","(").replace("))",")"))
    w(f"\tVFMADD231PS 64({reg})(AX*4), Z9, Z{r+4}")
w("\tADDQ $32, AX")
w("\tLEAQ 32(AX), BX")
w("\tCMPQ BX, CX")
w("\tJLE d4loop2")
w("d4tail:")
w("\tCMPQ AX, CX")
w("\tJGE d4done")
w("\tVMOVUPS (SI)(AX*4), Z8")
for r,reg in enumerate(["DI","R9","R10","R11"]):
    w(f"\tVFMADD231PS ({reg})(AX*4), Z8, Z{r}")
w("\tADDQ $16, AX")
w("\tJMP d4tail")
w("d4done:")
for r in range(4):
    w(f"\tVADDPS Z{r+4}, Z{r}, Z{r}")
    w(f"\tVEXTRACTF64X4 $1, Z{r}, Y8")
    w(f"\tVADDPS Y8, Y{r}, Y{r}")
    w(f"\tVEXTRACTF128 $1, Y{r}, X8")
    w(f"\tVADDPS X8, X{r}, X{r}")
    w(f"\tVMOVHLPS X{r}, X{r}, X8")
    w(f"\tVADDPS X8, X{r}, X{r}")
    w(f"\tVMOVSHDUP X{r}, X8")
    w(f"\tVADDSS X8, X{r}, X{r}")
    w(f"\tVMOVSS X{r}, {4*r}(DX)")
w("\tVZEROUPPER")
w("\tRET")
w("")
# ---------- dot4 AVX2
w("// func dot4AVX2(k int, x, w *float32, ldw int, out *float32)")
w("// out[r] = sum_p x[p]*w[r*ldw+p], r < 4, k a multiple of 8.")
w("TEXT ·dot4AVX2(SB), NOSPLIT, $0-40")
w("\tMOVQ k+0(FP), CX")
w("\tMOVQ x+8(FP), SI")
w("\tMOVQ w+16(FP), DI")
w("\tMOVQ ldw+24(FP), R8")
w("\tSHLQ $2, R8")
w("\tLEAQ (DI)(R8*1), R9")
w("\tLEAQ (DI)(R8*2), R10")
w("\tLEAQ (R9)(R8*2), R11")
w("\tMOVQ out+32(FP), DX")
for i in range(4):
    w(f"\tVXORPS Y{i}, Y{i}, Y{i}")
w("\tXORQ AX, AX")
w("d2loop:")
w("\tCMPQ AX, CX")
w("\tJGE d2done")
w("\tVMOVUPS (SI)(AX*4), Y8")
for r,reg in enumerate(["DI","R9","R10","R11"]):
    w(f"\tVFMADD231PS ({reg})(AX*4), Y8, Y{r}")
w("\tADDQ $8, AX")
w("\tJMP d2loop")
w("d2done:")
for r in range(4):
    w(f"\tVEXTRACTF128 $1, Y{r}, X8")
    w(f"\tVADDPS X8, X{r}, X{r}")
    w(f"\tVMOVHLPS X{r}, X{r}, X8")
    w(f"\tVADDPS X8, X{r}, X{r}")
    w(f"\tVMOVSHDUP X{r}, X8")
    w(f"\tVADDSS X8, X{r}, X{r}")
    w(f"\tVMOVSS X{r}, {4*r}(DX)")
w("\tVZEROUPPER")
w("\tRET")
w("")
# ---------- expSum AVX-512
w("// Constants of the exp kernel: log2(e), -ln2 (hi, lo), Cephes expf polynomial, 1, lower clamp.")
consts=[("log2e","0x3fb8aa3b"),("ln2hi","0x3f318000"),("ln2lo","0xb95e8083"),
 ("c0","0x39506967"),("c1","0x3ab743ce"),("c2","0x3c088908"),("c3","0x3d2aa9c1"),("c4","0x3e2aaaaa"),("c5","0x3f000000"),("one","0x3f800000"),("lo","0xc2cf0000")]
for i,(n,v) in enumerate(consts):
    w(f"DATA expc<>+{4*i}(SB)/4, ${v} // {n}")
w(f"GLOBL expc<>(SB), RODATA|NOPTR, ${4*len(consts)}")
w("")
w("// func expSumAVX512(x *float32, n int, m float32) float32")
w("// x[i] = exp(x[i]-m) for i < n (a multiple of 16); returns the sum.")
w("TEXT ·expSumAVX512(SB), NOSPLIT, $0-28")
w("\tMOVQ x+0(FP), SI")
w("\tMOVQ n+8(FP), CX")
w("\tVBROADCASTSS m+16(FP), Z31")
regs={}
for i,(n,v) in enumerate(consts):
    r=30-i
    regs[n]=r
    w(f"\tVBROADCASTSS expc<>+{4*i}(SB), Z{r}")
w("\tVPXORD Z0, Z0, Z0")
w("\tTESTQ CX, CX")
w("\tJEQ exdone")
w("exloop:")
w("\tVMOVUPS (SI), Z1")
w("\tVSUBPS Z31, Z1, Z1")
w(f"\tVMAXPS Z{regs['lo']}, Z1, Z1")
w(f"\tVMULPS Z{regs['log2e']}, Z1, Z2")
w("\tVRNDSCALEPS $0, Z2, Z2")
w(f"\tVFNMADD231PS Z{regs['ln2hi']}, Z2, Z1")
w(f"\tVFNMADD231PS Z{regs['ln2lo']}, Z2, Z1")
w(f"\tVMOVAPS Z{regs['c0']}, Z3")
for c in ["c1","c2","c3","c4","c5"]:
    w(f"\tVFMADD213PS Z{regs[c]}, Z1, Z3")
w("\tVMULPS Z1, Z1, Z4")
w("\tVFMADD213PS Z1, Z4, Z3")
w(f"\tVADDPS Z{regs['one']}, Z3, Z3")
w("\tVSCALEFPS Z2, Z3, Z3")
w("\tVMOVUPS Z3, (SI)")
w("\tVADDPS Z3, Z0, Z0")
w("\tADDQ $64, SI")
w("\tSUBQ $16, CX")
w("\tJNZ exloop")
w("exdone:")
w("\tVEXTRACTF64X4 $1, Z0, Y8")
w("\tVADDPS Y8, Y0, Y0")
w("\tVEXTRACTF128 $1, Y0, X8")
w("\tVADDPS X8, X0, X0")
w("\tVMOVHLPS X0, X0, X8")
w("\tVADDPS X8, X0, X0")
w("\tVMOVSHDUP X0, X8")
w("\tVADDSS X8, X0, X0")
w("\tVMOVSS X0, ret+24(FP)")
w("\tVZEROUPPER")
w("\tRET")
open("simd_amd64.s","w").write("\n".join(L)+"\n")
L2=[]
w=L2.append
w("")
w("// func maxAVX512(x *float32, n int) float32")
w("// Largest of x[:n], n a positive multiple of 16.")
w("TEXT ·maxAVX512(SB), NOSPLIT, $0-20")
w("\tMOVQ x+0(FP), SI")
w("\tMOVQ n+8(FP), CX")
w("\tVMOVUPS (SI), Z0")
w("\tVMOVAPS Z0, Z1")
w("\tADDQ $64, SI")
w("\tSUBQ $16, CX")
w("mxloop:")
w("\tCMPQ CX, $32")
w("\tJLT mxtail")
w("\tVMAXPS (SI), Z0, Z0")
w("\tVMAXPS 64(SI), Z1, Z1")
w("\tADDQ $128, SI")
w("\tSUBQ $32, CX")
w("\tJMP mxloop")
w("mxtail:")
w("\tTESTQ CX, CX")
w("\tJEQ mxdone")
w("\tVMAXPS (SI), Z0, Z0")
w("mxdone:")
w("\tVMAXPS Z1, Z0, Z0")
w("\tVEXTRACTF64X4 $1, Z0, Y8")
w("\tVMAXPS Y8, Y0, Y0")
w("\tVEXTRACTF128 $1, Y0, X8")
w("\tVMAXPS X8, X0, X0")
w("\tVMOVHLPS X0, X0, X8")
w("\tVMAXPS X8, X0, X0")
w("\tVMOVSHDUP X0, X8")
w("\tVMAXSS X8, X0, X0")
w("\tVMOVSS X0, ret+16(FP)")
w("\tVZEROUPPER")
w("\tRET")
w("")
# gelu constants appended in another table
gc=[("half","0x3f000000"),("absmask","0x7fffffff"),("rsqrt2","0x3f3504f3"),("p","0x3ea7ba05"),
    ("a1","0x3e827906"),("a2","0xbe91a98e"),("a3","0x3fb5f0e3"),("a4","0xbfba00e3"),("a5","0x3f87dc22")]
for i,(n,v) in enumerate(gc):
    w(f"DATA geluc<>+{4*i}(SB)/4, ${v} // {n}")
w(f"GLOBL geluc<>(SB), RODATA|NOPTR, ${4*len(gc)}")
w("")
w("// func geluAVX512(dst, x *float32, n int)")
w("// dst[i] = 0.5 x + 0.5 |x| (1 - P(t) exp(-z^2)), z = |x|/sqrt 2, t = 1/(1 + p z): GELU with the")
w("// Abramowitz-Stegun 7.1.26 erf. n a multiple of 16; dst may equal x.")
w("TEXT ·geluAVX512(SB), NOSPLIT, $0-24")
w("\tMOVQ dst+0(FP), DI")
w("\tMOVQ x+8(FP), SI")
w("\tMOVQ n+16(FP), CX")
er={}
for i,(n,v) in enumerate(consts):
    r=31-i
    er[n]=r
    w(f"\tVBROADCASTSS expc<>+{4*i}(SB), Z{r}")
for i,(n,v) in enumerate(gc):
    r=31-len(consts)-i
    er[n]=r
    w(f"\tVBROADCASTSS geluc<>+{4*i}(SB), Z{r}")
w("\tTESTQ CX, CX")
w("\tJEQ gedone")
w("geloop:")
w("\tVMOVUPS (SI), Z0")
w(f"\tVPANDD Z{er['absmask']}, Z0, Z1")      # |x|
w(f"\tVMULPS Z{er['rsqrt2']}, Z1, Z2")        # z
w(f"\tVMOVAPS Z{er['one']}, Z3")
w(f"\tVFMADD231PS Z{er['p']}, Z2, Z3")        # 1 + p z
w(f"\tVDIVPS Z3, Z{er['one']}, Z3")           # t = 1/(1+pz)
w(f"\tVMOVAPS Z{er['a5']}, Z4")
for c in ["a4","a3","a2","a1"]:
    w(f"\tVFMADD213PS Z{er[c]}, Z3, Z4")     # Z4 = Z4*t + c
w("\tVMULPS Z3, Z4, Z4")                      # poly * t
# e = exp(-z^2)
w("\tVMULPS Z2, Z2, Z5")
w("\tVPXORD Z6, Z6, Z6")
w("\tVSUBPS Z5, Z6, Z5")                      # -z^2
w(f"\tVMAXPS Z{er['lo']}, Z5, Z5")
w(f"\tVMULPS Z{er['log2e']}, Z5, Z6")
w("\tVRNDSCALEPS $0, Z6, Z6")
w(f"\tVFNMADD231PS Z{er['ln2hi']}, Z6, Z5")
w(f"\tVFNMADD231PS Z{er['ln2lo']}, Z6, Z5")
w(f"\tVMOVAPS Z{er['c0']}, Z7")
for c in ["c1","c2","c3","c4","c5"]:
    w(f"\tVFMADD213PS Z{er[c]}, Z5, Z7")
w("\tVMULPS Z5, Z5, Z8")
w("\tVFMADD213PS Z5, Z8, Z7")
w(f"\tVADDPS Z{er['one']}, Z7, Z7")
w("\tVSCALEFPS Z6, Z7, Z7")                  # exp(-z^2)
w("\tVMULPS Z7, Z4, Z4")                      # E' = poly*exp
w(f"\tVSUBPS Z4, Z{er['one']}, Z4")           # 1 - E'
w("\tVMULPS Z1, Z4, Z4")                      # |x| (1 - E')
w("\tVADDPS Z0, Z4, Z4")                      # x + |x|(1-E')
w(f"\tVMULPS Z{er['half']}, Z4, Z4")
w("\tVMOVUPS Z4, (DI)")
w("\tADDQ $64, SI")
w("\tADDQ $64, DI")
w("\tSUBQ $16, CX")
w("\tJNZ geloop")
w("gedone:")
w("\tVZEROUPPER")
w("\tRET")
w("")
w("// func wsumAVX512(out *float32, d int, p *float32, n int, v *float32, ldv int)")
w("// out[:d] = sum_{j<n} p[j] * v[j*ldv : j*ldv+d], d a multiple of 16.")
w("TEXT ·wsumAVX512(SB), NOSPLIT, $0-48")
w("\tMOVQ out+0(FP), DI")
w("\tMOVQ d+8(FP), R9")
w("\tMOVQ p+16(FP), R10")
w("\tMOVQ n+24(FP), R11")
w("\tMOVQ v+32(FP), R12")
w("\tMOVQ ldv+40(FP), R8")
w("\tSHLQ $2, R8")
w("wschunk:")
w("\tCMPQ R9, $64")
w("\tJLT wsone")
# 4 chunks of 16 at once
for i in range(4): w(f"\tVPXORD Z{i}, Z{i}, Z{i}")
w("\tMOVQ R10, SI")
w("\tMOVQ R12, DX")
w("\tMOVQ R11, CX")
w("\tTESTQ CX, CX")
w("\tJEQ ws4store")
w("ws4loop:")
w("\tVBROADCASTSS (SI), Z8")
for i in range(4): w(f"\tVFMADD231PS {64*i}(DX), Z8, Z{i}")
w("\tADDQ $4, SI")
w("\tADDQ R8, DX")
w("\tDECQ CX")
w("\tJNZ ws4loop")
w("ws4store:")
for i in range(4): w(f"\tVMOVUPS Z{i}, {64*i}(DI)")
w("\tADDQ $256, DI")
w("\tADDQ $256, R12")
w("\tSUBQ $64, R9")
w("\tJMP wschunk")
w("wsone:")
w("\tTESTQ R9, R9")
w("\tJEQ wsdone")
w("\tVPXORD Z0, Z0, Z0")
w("\tMOVQ R10, SI")
w("\tMOVQ R12, DX")
w("\tMOVQ R11, CX")
w("\tTESTQ CX, CX")
w("\tJEQ ws1store")
w("ws1loop:")
w("\tVBROADCASTSS (SI), Z8")
w("\tVFMADD231PS (DX), Z8, Z0")
w("\tADDQ $4, SI")
w("\tADDQ R8, DX")
w("\tDECQ CX")
w("\tJNZ ws1loop")
w("ws1store:")
w("\tVMOVUPS Z0, (DI)")
w("\tADDQ $64, DI")
w("\tADDQ $64, R12")
w("\tSUBQ $16, R9")
w("\tJMP wsone")
w("wsdone:")
w("\tVZEROUPPER")
w("\tRET")
open("simd_amd64.s","a").write("\n".join(L2)+"\n")
L3=[]
w=L3.append
w("")
w("// func softmaxCols32AVX512(st *float32, n int, inv *float32)")
w("// Column softmax of an n x 32 row-major block: st[r*32+j] = exp(st[r*32+j] - max_r st[r*32+j]),")
w("// inv[j] = 1 / sum_r of those. n >= 1.")
w("TEXT ·softmaxCols32AVX512(SB), NOSPLIT, $0-24")
w("\tMOVQ st+0(FP), SI")
w("\tMOVQ n+8(FP), CX")
w("\tMOVQ inv+16(FP), DI")
cr={}
for i,(n,v) in enumerate(consts):
    r=31-i
    cr[n]=r
    w(f"\tVBROADCASTSS expc<>+{4*i}(SB), Z{r}")
w("\tMOVQ SI, DX")
w("\tMOVQ CX, BX")
w("\tVMOVUPS (DX), Z0")
w("\tVMOVUPS 64(DX), Z1")
w("scmax:")
w("\tVMAXPS (DX), Z0, Z0")
w("\tVMAXPS 64(DX), Z1, Z1")
w("\tADDQ $128, DX")
w("\tDECQ BX")
w("\tJNZ scmax")
w("\tVPXORD Z2, Z2, Z2")
w("\tVPXORD Z3, Z3, Z3")
w("scexp:")
for half in range(2):
    off = 64*half
    m = half      # Z0 / Z1 max
    acc = 2+half  # sums Z2/Z3
    x,nn,p,r2 = 4+4*half,5+4*half,6+4*half,7+4*half
    w(f"\tVMOVUPS {off}(SI), Z{x}")
    w(f"\tVSUBPS Z{m}, Z{x}, Z{x}")
    w(f"\tVMAXPS Z{cr['lo']}, Z{x}, Z{x}")
    w(f"\tVMULPS Z{cr['log2e']}, Z{x}, Z{nn}")
    w(f"\tVRNDSCALEPS $0, Z{nn}, Z{nn}")
    w(f"\tVFNMADD231PS Z{cr['ln2hi']}, Z{nn}, Z{x}")
    w(f"\tVFNMADD231PS Z{cr['ln2lo']}, Z{nn}, Z{x}")
    w(f"\tVMOVAPS Z{cr['c0']}, Z{p}")
    for c in ["c1","c2","c3","c4","c5"]:
        w(f"\tVFMADD213PS Z{cr[c]}, Z{x}, Z{p}")
    w(f"\tVMULPS Z{x}, Z{x}, Z{r2}")
    w(f"\tVFMADD213PS Z{x}, Z{r2}, Z{p}")
    w(f"\tVADDPS Z{cr['one']}, Z{p}, Z{p}")
    w(f"\tVSCALEFPS Z{nn}, Z{p}, Z{p}")
    w(f"\tVMOVUPS Z{p}, {off}(SI)")
    w(f"\tVADDPS Z{p}, Z{acc}, Z{acc}")
w("\tADDQ $128, SI")
w("\tDECQ CX")
w("\tJNZ scexp")
w(f"\tVDIVPS Z2, Z{cr['one']}, Z2")
w(f"\tVDIVPS Z3, Z{cr['one']}, Z3")
w("\tVMOVUPS Z2, (DI)")
w("\tVMOVUPS Z3, 64(DI)")
w("\tVZEROUPPER")
w("\tRET")
open("simd_amd64.s","a").write("\n".join(L3)+"\n")
L4=[]
w=L4.append
# ---------- f16 weights: dot4 with F16C conversion, and a bulk f16 -> f32 conversion
w("")
w("// func dot4F16AVX512(k int, x *float32, w *uint16, ldw int, out *float32)")
w("// out[r] = sum_p x[p]*f32(w[r*ldw+p]), r < 4, k a multiple of 16; w holds IEEE binary16")
w("// values, widened exactly by VCVTPH2PS.")
w("TEXT ·dot4F16AVX512(SB), NOSPLIT, $0-40")
w("\tMOVQ k+0(FP), CX")
w("\tMOVQ x+8(FP), SI")
w("\tMOVQ w+16(FP), DI")
w("\tMOVQ ldw+24(FP), R8")
w("\tSHLQ $1, R8")
w("\tLEAQ (DI)(R8*1), R9")
w("\tLEAQ (DI)(R8*2), R10")
w("\tLEAQ (R9)(R8*2), R11")
w("\tMOVQ out+32(FP), DX")
# Attention's scores call this on rows of keys 4 at a time, each row a head's slice of a cache
# row (128 bytes at Whisper's head width, rows a whole cache row apart, which the hardware
# prefetcher does not follow): fetch the first 128 bytes of the rows 8 ahead, two calls early.
for reg in ["DI","R9","R10","R11"]:
    w(f"\tPREFETCHT0 ({reg})(R8*8)")
    w(f"\tPREFETCHT0 64({reg})(R8*8)")
for i in range(8):
    w(f"\tVPXORD Z{i}, Z{i}, Z{i}")
w("\tXORQ AX, AX")
w("\tCMPQ CX, $32")
w("\tJLT h4tail")
w("h4loop2:")
w("\tVMOVUPS (SI)(AX*4), Z8")
w("\tVMOVUPS 64(SI)(AX*4), Z9")
for r,reg in enumerate(["DI","R9","R10","R11"]):
    w(f"\tVCVTPH2PS ({reg})(AX*2), Z{10+2*r}")
    w(f"\tVCVTPH2PS 32({reg})(AX*2), Z{11+2*r}")
for r in range(4):
    w(f"\tVFMADD231PS Z{10+2*r}, Z8, Z{r}")
    w(f"\tVFMADD231PS Z{11+2*r}, Z9, Z{r+4}")
w("\tADDQ $32, AX")
w("\tLEAQ 32(AX), BX")
w("\tCMPQ BX, CX")
w("\tJLE h4loop2")
w("h4tail:")
w("\tCMPQ AX, CX")
w("\tJGE h4done")
w("\tVMOVUPS (SI)(AX*4), Z8")
for r,reg in enumerate(["DI","R9","R10","R11"]):
    w(f"\tVCVTPH2PS ({reg})(AX*2), Z{10+r}")
    w(f"\tVFMADD231PS Z{10+r}, Z8, Z{r}")
w("\tADDQ $16, AX")
w("\tJMP h4tail")
w("h4done:")
for r in range(4):
    w(f"\tVADDPS Z{r+4}, Z{r}, Z{r}")
    w(f"\tVEXTRACTF64X4 $1, Z{r}, Y8")
    w(f"\tVADDPS Y8, Y{r}, Y{r}")
    w(f"\tVEXTRACTF128 $1, Y{r}, X8")
    w(f"\tVADDPS X8, X{r}, X{r}")
    w(f"\tVMOVHLPS X{r}, X{r}, X8")
    w(f"\tVADDPS X8, X{r}, X{r}")
    w(f"\tVMOVSHDUP X{r}, X8")
    w(f"\tVADDSS X8, X{r}, X{r}")
    w(f"\tVMOVSS X{r}, {4*r}(DX)")
w("\tVZEROUPPER")
w("\tRET")
w("")
w("// func dot4F16AVX2(k int, x *float32, w *uint16, ldw int, out *float32)")
w("// out[r] = sum_p x[p]*f32(w[r*ldw+p]), r < 4, k a multiple of 8 (AVX2+FMA+F16C).")
w("TEXT ·dot4F16AVX2(SB), NOSPLIT, $0-40")
w("\tMOVQ k+0(FP), CX")
w("\tMOVQ x+8(FP), SI")
w("\tMOVQ w+16(FP), DI")
w("\tMOVQ ldw+24(FP), R8")
w("\tSHLQ $1, R8")
w("\tLEAQ (DI)(R8*1), R9")
w("\tLEAQ (DI)(R8*2), R10")
w("\tLEAQ (R9)(R8*2), R11")
w("\tMOVQ out+32(FP), DX")
for reg in ["DI","R9","R10","R11"]:  # as dot4F16AVX512: the rows 8 ahead
    w(f"\tPREFETCHT0 ({reg})(R8*8)")
    w(f"\tPREFETCHT0 64({reg})(R8*8)")
for i in range(4):
    w(f"\tVXORPS Y{i}, Y{i}, Y{i}")
w("\tXORQ AX, AX")
w("h2loop:")
w("\tCMPQ AX, CX")
w("\tJGE h2done")
w("\tVMOVUPS (SI)(AX*4), Y8")
for r,reg in enumerate(["DI","R9","R10","R11"]):
    w(f"\tVCVTPH2PS ({reg})(AX*2), Y{10+r}")
    w(f"\tVFMADD231PS Y{10+r}, Y8, Y{r}")
w("\tADDQ $8, AX")
w("\tJMP h2loop")
w("h2done:")
for r in range(4):
    w(f"\tVEXTRACTF128 $1, Y{r}, X8")
    w(f"\tVADDPS X8, X{r}, X{r}")
    w(f"\tVMOVHLPS X{r}, X{r}, X8")
    w(f"\tVADDPS X8, X{r}, X{r}")
    w(f"\tVMOVSHDUP X{r}, X8")
    w(f"\tVADDSS X8, X{r}, X{r}")
    w(f"\tVMOVSS X{r}, {4*r}(DX)")
w("\tVZEROUPPER")
w("\tRET")
w("")
w("// func cvtF16AVX512(dst *float32, src *uint16, n int)")
w("// dst[i] = f32(src[i]) for i < n, a multiple of 16.")
w("TEXT ·cvtF16AVX512(SB), NOSPLIT, $0-24")
w("\tMOVQ dst+0(FP), DI")
w("\tMOVQ src+8(FP), SI")
w("\tMOVQ n+16(FP), CX")
w("\tTESTQ CX, CX")
w("\tJEQ cvdone")
w("cvloop:")
w("\tVCVTPH2PS (SI), Z0")
w("\tVMOVUPS Z0, (DI)")
w("\tADDQ $32, SI")
w("\tADDQ $64, DI")
w("\tSUBQ $16, CX")
w("\tJNZ cvloop")
w("cvdone:")
w("\tVZEROUPPER")
w("\tRET")
w("")
w("// func cvtF16AVX2(dst *float32, src *uint16, n int)")
w("// dst[i] = f32(src[i]) for i < n, a multiple of 8 (F16C).")
w("TEXT ·cvtF16AVX2(SB), NOSPLIT, $0-24")
w("\tMOVQ dst+0(FP), DI")
w("\tMOVQ src+8(FP), SI")
w("\tMOVQ n+16(FP), CX")
w("\tTESTQ CX, CX")
w("\tJEQ cv2done")
w("cv2loop:")
w("\tVCVTPH2PS (SI), Y0")
w("\tVMOVUPS Y0, (DI)")
w("\tADDQ $16, SI")
w("\tADDQ $32, DI")
w("\tSUBQ $8, CX")
w("\tJNZ cv2loop")
w("cv2done:")
w("\tVZEROUPPER")
w("\tRET")
open("simd_amd64.s","a").write("\n".join(L4)+"\n")
L5=[]
w=L5.append
# ---------- f16 matrix-vector: many groups of 4 weight rows per call
# PF1: the AVX-512 loop prefetches each weight row this many bytes ahead (about one group of 4
# rows ahead at Whisper's widths; rows are contiguous, so this runs ahead of the stream). With
# weights streamed from L3 or memory (a decoding step reads every weight once, 97 MB for base in
# f16) it took the matrix-vector product from ~22 to ~45 GB/s on the 2-core Xeon VM of issue 19
# (4096 and 6144 alike; 1024 and 8192 worse).
PF1=4096
def gemvh(name, zmm, step):
    V = "Z" if zmm else "Y"
    w("")
    w(f"// func {name}(k int, x *float32, w *uint16, ldw int, out *float32, n int, acc bool)")
    w(f"// out[j] (+)= sum_p x[p]*f32(w[j*ldw+p]) for j < n (a positive multiple of 4), k a positive")
    w(f"// multiple of {step}.")
    w(f"TEXT ·{name}(SB), NOSPLIT, $0-49")
    w("\tMOVQ k+0(FP), CX")
    w("\tMOVQ x+8(FP), SI")
    w("\tMOVQ w+16(FP), DI")
    w("\tMOVQ ldw+24(FP), R8")
    w("\tSHLQ $1, R8")
    w("\tMOVQ out+32(FP), DX")
    w("\tMOVQ n+40(FP), BX")
    w("\tMOVBLZX acc+48(FP), R13")
    w("\tLEAQ (R8)(R8*1), R12")
    w("\tSHLQ $1, R12")
    p = name
    w(f"{p}group:")
    w("\tLEAQ (DI)(R8*1), R9")
    w("\tLEAQ (DI)(R8*2), R10")
    w("\tLEAQ (R9)(R8*2), R11")
    nacc = 8 if zmm else 4
    for i in range(nacc):
        w(f"\tVPXORD Z{i}, Z{i}, Z{i}" if zmm else f"\tVXORPS Y{i}, Y{i}, Y{i}")
    w("\tXORQ AX, AX")
    if zmm:
        w("\tCMPQ CX, $32")
        w(f"\tJLT {p}tail")
        w(f"{p}loop2:")
        if PF1:
            for reg in ["DI","R9","R10","R11"]:
                w(f"\tPREFETCHT0 {PF1}({reg})(AX*2)")
        w("\tVMOVUPS (SI)(AX*4), Z8")
        w("\tVMOVUPS 64(SI)(AX*4), Z9")
        for r,reg in enumerate(["DI","R9","R10","R11"]):
            w(f"\tVCVTPH2PS ({reg})(AX*2), Z{10+2*r}")
            w(f"\tVCVTPH2PS 32({reg})(AX*2), Z{11+2*r}")
        for r in range(4):
            w(f"\tVFMADD231PS Z{10+2*r}, Z8, Z{r}")
            w(f"\tVFMADD231PS Z{11+2*r}, Z9, Z{r+4}")
        w("\tADDQ $32, AX")
        w("\tLEAQ 32(AX), R14")
        w("\tCMPQ R14, CX")
        w(f"\tJLE {p}loop2")
        w(f"{p}tail:")
        w("\tCMPQ AX, CX")
        w(f"\tJGE {p}done")
        w("\tVMOVUPS (SI)(AX*4), Z8")
        for r,reg in enumerate(["DI","R9","R10","R11"]):
            w(f"\tVCVTPH2PS ({reg})(AX*2), Z{10+r}")
            w(f"\tVFMADD231PS Z{10+r}, Z8, Z{r}")
        w("\tADDQ $16, AX")
        w(f"\tJMP {p}tail")
        w(f"{p}done:")
        for r in range(4):
            w(f"\tVADDPS Z{r+4}, Z{r}, Z{r}")
            w(f"\tVEXTRACTF64X4 $1, Z{r}, Y8")
            w(f"\tVADDPS Y8, Y{r}, Y{r}")
    else:
        w(f"{p}loop:")
        w("\tVMOVUPS (SI)(AX*4), Y8")
        for r,reg in enumerate(["DI","R9","R10","R11"]):
            w(f"\tPREFETCHT0 {PF1}({reg})(AX*2)")
            w(f"\tVCVTPH2PS ({reg})(AX*2), Y{10+r}")
            w(f"\tVFMADD231PS Y{10+r}, Y8, Y{r}")
        w("\tADDQ $8, AX")
        w("\tCMPQ AX, CX")
        w(f"\tJLT {p}loop")
    # 4 ymm accumulators -> [a b c d]
    w("\tVHADDPS Y1, Y0, Y0")
    w("\tVHADDPS Y3, Y2, Y2")
    w("\tVHADDPS Y2, Y0, Y0")
    w("\tVEXTRACTF128 $1, Y0, X8")
    w("\tVADDPS X8, X0, X0")
    w("\tTESTQ R13, R13")
    w(f"\tJEQ {p}set")
    w("\tVADDPS (DX), X0, X0")
    w(f"{p}set:")
    w("\tVMOVUPS X0, (DX)")
    w("\tADDQ $16, DX")
    w("\tADDQ R12, DI")
    w("\tSUBQ $4, BX")
    w(f"\tJNZ {p}group")
    w("\tVZEROUPPER")
    w("\tRET")
gemvh("gemvF16AVX512", True, 16)
gemvh("gemvF16AVX2", False, 8)
open("simd_amd64.s","a").write("\n".join(L5)+"\n")
L6=[]
w=L6.append
# ---------- quantized weights: matrix-vector against an activation row quantized to q8 blocks
# Every ggml block holds 32 weights. The kernel rebuilds the 32 weights of a block as bytes in one
# YMM register, multiplies them with the 32 int8 activations by VPMADDUBSW (byte pairs into int16,
# no saturation at these magnitudes) and VPMADDWD (int16 pairs into 8 int32 lanes, each the exact
# sum of 4 products), converts the lanes to float and adds scale*lanes into one of two lane
# accumulators (even and odd blocks, so two add chains run at once). No FMA: a separate multiply
# and add round the same way as the pure-Go kernels, which therefore match bit for bit.
w("")
w("DATA qkc<>+0(SB)/8, $0x0f0f0f0f0f0f0f0f")
w("DATA qkc<>+8(SB)/8, $0x0f0f0f0f0f0f0f0f")
w("DATA qkc<>+16(SB)/8, $0x0f0f0f0f0f0f0f0f")
w("DATA qkc<>+24(SB)/8, $0x0f0f0f0f0f0f0f0f")
w("DATA qkc<>+32(SB)/8, $0x0000000000000000 // byte i of a YMM <- byte i/8 of the 32 high bits")
w("DATA qkc<>+40(SB)/8, $0x0101010101010101")
w("DATA qkc<>+48(SB)/8, $0x0202020202020202")
w("DATA qkc<>+56(SB)/8, $0x0303030303030303")
for o in range(64, 96, 8):
    w(f"DATA qkc<>+{o}(SB)/8, $0x7fbfdfeff7fbfdfe // all bits but bit i%8")
for o in range(96, 128, 8):
    w(f"DATA qkc<>+{o}(SB)/8, $0x0001000100010001 // int16 ones")
for o in range(128, 160, 8):
    w(f"DATA qkc<>+{o}(SB)/8, $0xf0f0f0f0f0f0f0f0")
for o in range(160, 192, 8):
    w(f"DATA qkc<>+{o}(SB)/8, $0x0808080808080808")
for o in range(192, 224, 8):
    w(f"DATA qkc<>+{o}(SB)/8, $0x1010101010101010")
w("GLOBL qkc<>(SB), RODATA|NOPTR, $224")

def avx2_unpack(fmt, y, t, h, c):
    # One block's 32 weights at R10 as signed bytes in Y{y} (q5_1: unsigned, 0 to 31), with X{t}
    # and Y{h} as scratch. c names the constants' operands (registers or memory): mask (0x0f),
    # shuf (byte i <- byte i/8 of the high bits), bits (all bits but bit i%8), ones (an all-ones
    # register, made here from Y{h} when c has none), f0 (0xf0), x10 (0x10), x08 (0x08).
    if fmt == "q8_0":
        w(f"\tVMOVDQU 2(R10), Y{y}")
    else:
        qs = {"q4_0": 2, "q5_0": 6, "q5_1": 8}[fmt]
        w(f"\tVMOVDQU {qs}(R10), X{y}")
        w(f"\tVPSRLW $4, X{y}, X{t}")
        w(f"\tVINSERTI128 $1, X{t}, Y{y}, Y{y}")
        w(f"\tVPAND {c['mask']}, Y{y}, Y{y}")
    if fmt in ("q5_0", "q5_1"):
        qh = 2 if fmt == "q5_0" else 4
        w(f"\tVPBROADCASTD {qh}(R10), Y{h}")
        w(f"\tVPSHUFB {c['shuf']}, Y{h}, Y{h}")
        w(f"\tVPOR {c['bits']}, Y{h}, Y{h}")
        ones = c.get("ones")
        if ones is None:
            ones = c["ones_tmp"]
            w(f"\tVPCMPEQB {ones}, {ones}, {ones}")
        w(f"\tVPCMPEQB {ones}, Y{h}, Y{h}")
        if fmt == "q5_0":
            w(f"\tVPANDN {c['f0']}, Y{h}, Y{h}")  # 0xf0 where the bit is clear: nibble|0xf0 = nibble-16
        else:
            w(f"\tVPAND {c['x10']}, Y{h}, Y{h}")  # 0x10 where the bit is set
        w(f"\tVPOR Y{h}, Y{y}, Y{y}")
    if fmt == "q4_0":
        w(f"\tVPSUBB {c['x08']}, Y{y}, Y{y}")

def gemvq(name, fmt):
    # block layouts (bytes): q8_0 d:f16 qs:int8[32]; q4_0 d qs:[16] nibbles; q5_0 d qh:u32
    # qs:[16]; q5_1 d m:f16 qh:u32 qs:[16]. Nibble j of qs (low, then high) is weight j (j+16).
    bsz = {"q8_0": 34, "q4_0": 18, "q5_0": 22, "q5_1": 24}[fmt]
    p = name
    w("")
    w(f"// func {name}(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, n int)")
    w(f"// out[j] = dot of {fmt} weight row j (nb blocks of {bsz} bytes, rows ldw bytes apart) with the")
    w("// q8 activation row xq (scales xd, xd*sum per block xs) for j < n; nb, n >= 1. AVX2.")
    w(f"TEXT ·{name}(SB), NOSPLIT, $0-72")
    w("\tMOVQ w+40(FP), DI")
    w("\tMOVQ ldw+48(FP), R8")
    w("\tMOVQ out+56(FP), DX")
    w("\tMOVQ n+64(FP), R11")
    w("\tLEAQ qkc<>(SB), AX")
    w("\tVMOVDQU 0(AX), Y15")
    w("\tVMOVDQU 32(AX), Y14")
    w("\tVMOVDQU 64(AX), Y13")
    w("\tVPCMPEQB Y12, Y12, Y12")
    w("\tVMOVDQU 96(AX), Y11")
    w("\tVMOVDQU 128(AX), Y10")
    if fmt == "q4_0":
        w("\tVMOVDQU 160(AX), Y9")
    if fmt == "q5_1":
        w("\tVMOVDQU 192(AX), Y9")
    w(f"{p}row:")
    w("\tMOVQ nb+0(FP), CX")
    w("\tMOVQ xq+8(FP), SI")
    w("\tMOVQ xd+16(FP), BX")
    w("\tMOVQ xs+24(FP), R9")
    w("\tMOVQ DI, R10")
    w("\tVXORPS Y0, Y0, Y0")
    w("\tVXORPS Y1, Y1, Y1")
    w("\tVXORPS X8, X8, X8")
    def block(acc):
        avx2_unpack(fmt, 3, 4, 2, {"mask": "Y15", "shuf": "Y14", "bits": "Y13", "ones": "Y12", "f0": "Y10", "x10": "Y9", "x08": "Y9"})
        w("\tVMOVDQU (SI), Y4")
        if fmt == "q5_1":
            w("\tVPMADDUBSW Y4, Y3, Y5")
        else:
            w("\tVPSIGNB Y3, Y3, Y5")
            w("\tVPSIGNB Y3, Y4, Y4")
            w("\tVPMADDUBSW Y4, Y5, Y5")
        w("\tVPMADDWD Y11, Y5, Y5")
        w("\tVCVTDQ2PS Y5, Y5")
        w("\tVPBROADCASTW (R10), X6")
        w("\tVCVTPH2PS X6, Y6")
        w("\tVBROADCASTSS (BX), Y7")
        w("\tVMULPS Y7, Y6, Y6")
        w("\tVMULPS Y6, Y5, Y5")
        w(f"\tVADDPS Y5, Y{acc}, Y{acc}")
        if fmt == "q5_1":
            w("\tVPBROADCASTW 2(R10), X6")
            w("\tVCVTPH2PS X6, X6")
            w("\tVMULSS (R9), X6, X6")
            w("\tVADDSS X6, X8, X8")
        w(f"\tADDQ ${bsz}, R10")
        w("\tADDQ $32, SI")
        w("\tADDQ $4, BX")
        w("\tADDQ $4, R9")
    w(f"{p}pair:")
    w("\tCMPQ CX, $2")
    w(f"\tJLT {p}single")
    block(0)
    block(1)
    w("\tSUBQ $2, CX")
    w(f"\tJMP {p}pair")
    w(f"{p}single:")
    w("\tTESTQ CX, CX")
    w(f"\tJEQ {p}sum")
    block(0)
    w(f"{p}sum:")
    w("\tVADDPS Y1, Y0, Y0")
    w("\tVEXTRACTF128 $1, Y0, X1")
    w("\tVADDPS X1, X0, X0")  # h[i] = l[i] + l[i+4]
    w("\tVMOVHLPS X0, X0, X1")
    w("\tVADDPS X1, X0, X0")  # g0 = h0 + h2, g1 = h1 + h3
    w("\tVMOVSHDUP X0, X1")
    w("\tVADDSS X1, X0, X0")  # g0 + g1
    if fmt == "q5_1":
        w("\tVADDSS X8, X0, X0")
    w("\tVMOVSS X0, (DX)")
    w("\tADDQ $4, DX")
    w("\tADDQ R8, DI")
    w("\tDECQ R11")
    w(f"\tJNZ {p}row")
    w("\tVZEROUPPER")
    w("\tRET")
gemvq("gemvQ8_0AVX2", "q8_0")
gemvq("gemvQ5_0AVX2", "q5_0")
gemvq("gemvQ5_1AVX2", "q5_1")
gemvq("gemvQ4_0AVX2", "q4_0")
open("simd_amd64.s","a").write("\n".join(L6)+"\n")
L7=[]
w=L7.append
# ---------- quantized weights with AVX-512 VNNI (on YMM registers: one block per register)
# VPDPBUSD multiplies unsigned bytes by signed bytes and adds each group of 4 products into an
# int32 lane without saturating, replacing VPMADDUBSW + VPMADDWD and the sign trick. The weights
# are therefore made unsigned (q8_0: w+128, q4_0: nibble, q5_0: nibble|high<<4) and the lane
# accumulator starts at xl = -offset * (sum of the lane's 4 activations), precomputed per row, so
# the int32 lanes are the same exact sums of w*x as in the AVX2 kernels. The 32 high bits of
# q5_0/q5_1 go straight into a mask register that adds 16 to the selected bytes.
w("")
for o in range(0, 16, 8):
    w(f"DATA qkv<>+{o}(SB)/8, $0x0000000000000000 // dword shifts: low 16 bytes by 0")
for o in range(16, 32, 8):
    w(f"DATA qkv<>+{o}(SB)/8, $0x0000000400000004 // high 16 bytes by 4 (their high nibbles)")
for o in range(32, 64, 8):
    w(f"DATA qkv<>+{o}(SB)/8, $0x8080808080808080")
w("GLOBL qkv<>(SB), RODATA|NOPTR, $64")

def hsum_y(w, a, t):
    # X{a} = the sum of Y{a}'s 8 lanes, as ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)); X{t} is scratch.
    w(f"\tVEXTRACTF128 $1, Y{a}, X{t}")
    w(f"\tVADDPS X{t}, X{a}, X{a}")
    w(f"\tVMOVHLPS X{a}, X{a}, X{t}")
    w(f"\tVADDPS X{t}, X{a}, X{a}")
    w(f"\tVMOVSHDUP X{a}, X{t}")
    w(f"\tVADDSS X{t}, X{a}, X{a}")

def vnni_consts(w):
    # The VNNI kernels' constants: Y15 the low-nibble mask, Y9 16s (q5's high bit), Y8 the dword
    # shifts of the nibble unpacking, Y10 0x80s (q8_0's sign flip).
    w("\tLEAQ qkc<>(SB), AX")
    w("\tVMOVDQU 0(AX), Y15")
    w("\tVMOVDQU 192(AX), Y9")
    w("\tLEAQ qkv<>(SB), AX")
    w("\tVMOVDQU 0(AX), Y8")
    w("\tVMOVDQU 32(AX), Y10")

def vnni_unpack(w, fmt, ptr, y, k):
    # One block's 32 weights at ptr as unsigned bytes in Y{y} (q8_0, q5_0, q4_0), mask K{k}.
    if fmt == "q8_0":
        w(f"\tVPXOR 2({ptr}), Y10, Y{y}")
    else:
        qs = {"q4_0": 2, "q5_0": 6}[fmt]
        w(f"\tVBROADCASTI128 {qs}({ptr}), Y{y}")
        w(f"\tVPSRLVD Y8, Y{y}, Y{y}")
        w(f"\tVPAND Y15, Y{y}, Y{y}")
    if fmt == "q5_0":
        w(f"\tKMOVD 2({ptr}), K{k}")
        w(f"\tVPADDB Y9, Y{y}, K{k}, Y{y}")

def gemvqvnni(name, fmt):
    bsz = {"q8_0": 34, "q4_0": 18, "q5_0": 22, "q5_1": 24}[fmt]
    p = name
    w("")
    w(f"// func {name}(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, n int)")
    w(f"// The {fmt} kernel of gemvQ8_0AVX2's family with AVX-512 VNNI (VL, BW) on YMM registers; xl")
    w("// holds 8 int32 lane offsets per block.")
    w(f"TEXT ·{name}(SB), NOSPLIT, $0-72")
    w("\tMOVQ w+40(FP), DI")
    w("\tMOVQ ldw+48(FP), R8")
    w("\tMOVQ out+56(FP), DX")
    w("\tMOVQ n+64(FP), R11")
    vnni_consts(w)
    w(f"{p}row:")
    w("\tMOVQ nb+0(FP), CX")
    w("\tMOVQ xq+8(FP), SI")
    w("\tMOVQ xd+16(FP), BX")
    w("\tMOVQ xs+24(FP), R9")
    w("\tMOVQ xl+32(FP), R12")
    w("\tMOVQ DI, R10")
    w("\tVXORPS Y0, Y0, Y0")
    w("\tVXORPS Y1, Y1, Y1")
    w("\tVXORPS X4, X4, X4")
    def block(acc):
        if fmt == "q8_0":
            w("\tVPXOR 2(R10), Y10, Y3")
        else:
            qs = {"q4_0": 2, "q5_0": 6, "q5_1": 8}[fmt]
            w(f"\tVBROADCASTI128 {qs}(R10), Y3")
            w("\tVPSRLVD Y8, Y3, Y3")
            w("\tVPAND Y15, Y3, Y3")
        if fmt in ("q5_0", "q5_1"):
            qh = 2 if fmt == "q5_0" else 4
            w(f"\tKMOVD {qh}(R10), K1")
            w("\tVPADDB Y9, Y3, K1, Y3")
        if fmt == "q5_1":
            w("\tVPXOR Y5, Y5, Y5")
        else:
            w("\tVMOVDQU (R12), Y5")
        w("\tVPDPBUSD (SI), Y3, Y5")
        w("\tVCVTDQ2PS Y5, Y5")
        w("\tVPBROADCASTW (R10), X6")
        w("\tVCVTPH2PS X6, Y6")
        w("\tVMULPS.BCST (BX), Y6, Y6")
        w("\tVMULPS Y6, Y5, Y5")
        w(f"\tVADDPS Y5, Y{acc}, Y{acc}")
        if fmt == "q5_1":
            w("\tVPBROADCASTW 2(R10), X6")
            w("\tVCVTPH2PS X6, X6")
            w("\tVMULSS (R9), X6, X6")
            w("\tVADDSS X6, X4, X4")
        w(f"\tADDQ ${bsz}, R10")
        w("\tADDQ $32, SI")
        w("\tADDQ $4, BX")
        w("\tADDQ $4, R9")
        w("\tADDQ $32, R12")
    w(f"{p}pair:")
    w("\tCMPQ CX, $2")
    w(f"\tJLT {p}single")
    block(0)
    block(1)
    w("\tSUBQ $2, CX")
    w(f"\tJMP {p}pair")
    w(f"{p}single:")
    w("\tTESTQ CX, CX")
    w(f"\tJEQ {p}sum")
    block(0)
    w(f"{p}sum:")
    w("\tVADDPS Y1, Y0, Y0")
    hsum_y(w, 0, 1)
    if fmt == "q5_1":
        w("\tVADDSS X4, X0, X0")
    w("\tVMOVSS X0, (DX)")
    w("\tADDQ $4, DX")
    w("\tADDQ R8, DI")
    w("\tDECQ R11")
    w(f"\tJNZ {p}row")
    w("\tVZEROUPPER")
    w("\tRET")
def gemvqvnni2(name, fmt):
    # Two weight rows per pass (q8_0, q5_0, q4_0), sharing the activation and lane-offset loads
    # and the pointer updates; a last odd row takes the one-row loop. Each row's arithmetic is
    # exactly that of gemvqvnni.
    bsz = {"q8_0": 34, "q4_0": 18, "q5_0": 22}[fmt]
    p = name
    w("")
    w(f"// func {name}(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, n int)")
    w(f"// The {fmt} VNNI kernel, two weight rows at a time.")
    w(f"TEXT ·{name}(SB), NOSPLIT, $0-72")
    w("\tMOVQ w+40(FP), DI")
    w("\tMOVQ ldw+48(FP), R8")
    w("\tMOVQ out+56(FP), DX")
    w("\tMOVQ n+64(FP), R11")
    vnni_consts(w)
    def unpack(ptr, y, k):
        vnni_unpack(w, fmt, ptr, y, k)
    def scale(ptr, iv, sc, acc):
        w(f"\tVCVTDQ2PS Y{iv}, Y{iv}")
        w(f"\tVPBROADCASTW ({ptr}), X{sc}")
        w(f"\tVCVTPH2PS X{sc}, Y{sc}")
        w(f"\tVMULPS.BCST (BX), Y{sc}, Y{sc}")
        w(f"\tVMULPS Y{sc}, Y{iv}, Y{iv}")
        w(f"\tVADDPS Y{iv}, Y{acc}, Y{acc}")
    def block2(accA, accB):
        unpack("R10", 3, 1)
        unpack("R14", 4, 2)
        w("\tVMOVDQU (SI), Y7")
        w("\tVMOVDQU (R12), Y5")
        w("\tVMOVDQA Y5, Y12")
        w("\tVPDPBUSD Y7, Y3, Y5")
        w("\tVPDPBUSD Y7, Y4, Y12")
        scale("R10", 5, 6, accA)
        scale("R14", 12, 13, accB)
        w(f"\tADDQ ${bsz}, R10")
        w(f"\tADDQ ${bsz}, R14")
        w("\tADDQ $32, SI")
        w("\tADDQ $4, BX")
        w("\tADDQ $32, R12")
    def block1(acc):
        unpack("R10", 3, 1)
        w("\tVMOVDQU (R12), Y5")
        w("\tVPDPBUSD (SI), Y3, Y5")
        scale("R10", 5, 6, acc)
        w(f"\tADDQ ${bsz}, R10")
        w("\tADDQ $32, SI")
        w("\tADDQ $4, BX")
        w("\tADDQ $32, R12")
    def reduce(a, b, t, off):
        w(f"\tVADDPS Y{b}, Y{a}, Y{a}")
        hsum_y(w, a, t)
        w(f"\tVMOVSS X{a}, {off}(DX)")
    def start():
        w("\tMOVQ nb+0(FP), CX")
        w("\tMOVQ xq+8(FP), SI")
        w("\tMOVQ xd+16(FP), BX")
        w("\tMOVQ xl+32(FP), R12")
        w("\tMOVQ DI, R10")
    w(f"{p}row2:")
    w("\tCMPQ R11, $2")
    w(f"\tJLT {p}row1")
    start()
    w("\tLEAQ (DI)(R8*1), R14")
    for r in (0, 1, 2, 11):
        w(f"\tVXORPS Y{r}, Y{r}, Y{r}")
    w(f"{p}pair2:")
    w("\tCMPQ CX, $2")
    w(f"\tJLT {p}single2")
    block2(0, 2)
    block2(1, 11)
    w("\tSUBQ $2, CX")
    w(f"\tJMP {p}pair2")
    w(f"{p}single2:")
    w("\tTESTQ CX, CX")
    w(f"\tJEQ {p}sum2")
    block2(0, 2)
    w(f"{p}sum2:")
    reduce(0, 1, 3, 0)
    reduce(2, 11, 4, 4)
    w("\tADDQ $8, DX")
    w("\tLEAQ (DI)(R8*2), DI")
    w("\tSUBQ $2, R11")
    w(f"\tJMP {p}row2")
    w(f"{p}row1:")
    w("\tTESTQ R11, R11")
    w(f"\tJEQ {p}done")
    start()
    w("\tVXORPS Y0, Y0, Y0")
    w("\tVXORPS Y1, Y1, Y1")
    w(f"{p}pair1:")
    w("\tCMPQ CX, $2")
    w(f"\tJLT {p}single1")
    block1(0)
    block1(1)
    w("\tSUBQ $2, CX")
    w(f"\tJMP {p}pair1")
    w(f"{p}single1:")
    w("\tTESTQ CX, CX")
    w(f"\tJEQ {p}sum1")
    block1(0)
    w(f"{p}sum1:")
    reduce(0, 1, 3, 0)
    w(f"{p}done:")
    w("\tVZEROUPPER")
    w("\tRET")
gemvqvnni2("gemvQ8_0VNNI", "q8_0")
gemvqvnni2("gemvQ5_0VNNI", "q5_0")
gemvqvnni("gemvQ5_1VNNI", "q5_1")
gemvqvnni2("gemvQ4_0VNNI", "q4_0")
open("simd_amd64.s","a").write("\n".join(L7)+"\n")
L8=[]
w=L8.append
# ---------- quantized weights to float32 (GEMM packing): AVX-512 (BW, VL)
# One block per iteration: its 32 weights as signed bytes in a YMM register (unpacked as in the
# VNNI kernels, then the offset subtracted), sign-extended to two ZMM of int32, converted, and
# multiplied by the block's scale: d*float32(q), the same single rounding as tensor.Dequantize.
def dequantq(name, fmt):
    bsz = {"q8_0": 34, "q4_0": 18, "q5_0": 22}[fmt]
    p = name
    w("")
    w(f"// func {name}(dst *float32, src *byte, nb int)")
    w(f"// dst[:32*nb] = the weights of nb {fmt} blocks at src; nb >= 1. AVX-512 BW+VL.")
    w(f"TEXT ·{name}(SB), NOSPLIT, $0-24")
    w("\tMOVQ dst+0(FP), DI")
    w("\tMOVQ src+8(FP), R10")
    w("\tMOVQ nb+16(FP), CX")
    w("\tLEAQ qkc<>(SB), AX")
    w("\tVMOVDQU 0(AX), Y15")
    w("\tVMOVDQU 192(AX), Y9")
    w("\tVMOVDQU 160(AX), Y10")
    w("\tLEAQ qkv<>(SB), AX")
    w("\tVMOVDQU 0(AX), Y8")
    w(f"{p}loop:")
    if fmt == "q8_0":
        w("\tVMOVDQU 2(R10), Y3")
    else:
        qs = {"q4_0": 2, "q5_0": 6}[fmt]
        w(f"\tVBROADCASTI128 {qs}(R10), Y3")
        w("\tVPSRLVD Y8, Y3, Y3")
        w("\tVPAND Y15, Y3, Y3")
    if fmt == "q5_0":
        w("\tKMOVD 2(R10), K1")
        w("\tVPADDB Y9, Y3, K1, Y3")
        w("\tVPSUBB Y9, Y3, Y3")
    if fmt == "q4_0":
        w("\tVPSUBB Y10, Y3, Y3")
    w("\tVPMOVSXBD X3, Z4")
    w("\tVEXTRACTI128 $1, Y3, X5")
    w("\tVPMOVSXBD X5, Z5")
    w("\tVCVTDQ2PS Z4, Z4")
    w("\tVCVTDQ2PS Z5, Z5")
    w("\tVPBROADCASTW (R10), Y6")
    w("\tVCVTPH2PS Y6, Z6")
    w("\tVMULPS Z6, Z4, Z4")
    w("\tVMULPS Z6, Z5, Z5")
    w("\tVMOVUPS Z4, (DI)")
    w("\tVMOVUPS Z5, 64(DI)")
    w(f"\tADDQ ${bsz}, R10")
    w("\tADDQ $128, DI")
    w("\tDECQ CX")
    w(f"\tJNZ {p}loop")
    w("\tVZEROUPPER")
    w("\tRET")
dequantq("dequantQ8_0AVX512", "q8_0")
dequantq("dequantQ5_0AVX512", "q5_0")
dequantq("dequantQ4_0AVX512", "q4_0")
open("simd_amd64.s","a").write("\n".join(L8)+"\n")
# ---------- f16 attention caches: weighted sums of f16 value rows, and f32 -> f16 rounding
# wsumF16 is wsum with binary16 rows v (converted as they load, F16C); cvtF32F16 rounds to
# nearest even (VCVTPS2PH imm 0), as tensor.F32ToF16 does.
L9=[]
w=L9.append
def wsumh(name, zmm):
    R = "Z" if zmm else "Y"
    lanes = 16 if zmm else 8
    p = name
    w("")
    w(f"// func {name}(out *float32, d int, p *float32, n int, v *uint16, ldv int)")
    w(f"// out[:d] = sum_{{j<n}} p[j] * f32(v[j*ldv : j*ldv+d]), d a multiple of {lanes}.")
    w(f"TEXT ·{name}(SB), NOSPLIT, $0-48")
    w("\tMOVQ out+0(FP), DI")
    w("\tMOVQ d+8(FP), R9")
    w("\tMOVQ p+16(FP), R10")
    w("\tMOVQ n+24(FP), R11")
    w("\tMOVQ v+32(FP), R12")
    w("\tMOVQ ldv+40(FP), R8")
    w("\tSHLQ $1, R8")
    w(f"{p}chunk:")
    w(f"\tCMPQ R9, ${4*lanes}")
    w(f"\tJLT {p}one")
    for i in range(4): w(f"\tVXORPS {R}{i}, {R}{i}, {R}{i}")
    w("\tMOVQ R10, SI")
    w("\tMOVQ R12, DX")
    w("\tMOVQ R11, CX")
    w("\tTESTQ CX, CX")
    w(f"\tJEQ {p}4store")
    w(f"{p}4loop:")
    # value rows are a cache row apart: fetch this chunk of the row 8 ahead
    w("\tPREFETCHT0 (DX)(R8*8)")
    if zmm:
        w("\tPREFETCHT0 64(DX)(R8*8)")
    w(f"\tVBROADCASTSS (SI), {R}8")
    for i in range(4): w(f"\tVCVTPH2PS {2*lanes*i}(DX), {R}{4+i}")
    for i in range(4): w(f"\tVFMADD231PS {R}{4+i}, {R}8, {R}{i}")
    w("\tADDQ $4, SI")
    w("\tADDQ R8, DX")
    w("\tDECQ CX")
    w(f"\tJNZ {p}4loop")
    w(f"{p}4store:")
    for i in range(4): w(f"\tVMOVUPS {R}{i}, {4*lanes*i}(DI)")
    w(f"\tADDQ ${16*lanes}, DI")
    w(f"\tADDQ ${8*lanes}, R12")
    w(f"\tSUBQ ${4*lanes}, R9")
    w(f"\tJMP {p}chunk")
    w(f"{p}one:")
    w("\tTESTQ R9, R9")
    w(f"\tJEQ {p}done")
    w(f"\tVXORPS {R}0, {R}0, {R}0")
    w("\tMOVQ R10, SI")
    w("\tMOVQ R12, DX")
    w("\tMOVQ R11, CX")
    w("\tTESTQ CX, CX")
    w(f"\tJEQ {p}1store")
    w(f"{p}1loop:")
    w(f"\tVBROADCASTSS (SI), {R}8")
    w(f"\tVCVTPH2PS (DX), {R}4")
    w(f"\tVFMADD231PS {R}4, {R}8, {R}0")
    w("\tADDQ $4, SI")
    w("\tADDQ R8, DX")
    w("\tDECQ CX")
    w(f"\tJNZ {p}1loop")
    w(f"{p}1store:")
    w(f"\tVMOVUPS {R}0, (DI)")
    w(f"\tADDQ ${4*lanes}, DI")
    w(f"\tADDQ ${2*lanes}, R12")
    w(f"\tSUBQ ${lanes}, R9")
    w(f"\tJMP {p}one")
    w(f"{p}done:")
    w("\tVZEROUPPER")
    w("\tRET")
def cvth(name, zmm):
    R = "Z" if zmm else "Y"
    lanes = 16 if zmm else 8
    p = name
    w("")
    w(f"// func {name}(dst *uint16, src *float32, n int)")
    w(f"// dst[i] = f16(src[i]) rounded to nearest even, for i < n, a multiple of {lanes}.")
    w(f"TEXT ·{name}(SB), NOSPLIT, $0-24")
    w("\tMOVQ dst+0(FP), DI")
    w("\tMOVQ src+8(FP), SI")
    w("\tMOVQ n+16(FP), CX")
    w("\tTESTQ CX, CX")
    w(f"\tJEQ {p}done")
    w(f"{p}loop:")
    w(f"\tVMOVUPS (SI), {R}0")
    w(f"\tVCVTPS2PH $0, {R}0, (DI)")
    w(f"\tADDQ ${4*lanes}, SI")
    w(f"\tADDQ ${2*lanes}, DI")
    w(f"\tSUBQ ${lanes}, CX")
    w(f"\tJNZ {p}loop")
    w(f"{p}done:")
    w("\tVZEROUPPER")
    w("\tRET")
wsumh("wsumF16AVX512", True)
wsumh("wsumF16AVX2", False)
cvth("cvtF32F16AVX512", True)
cvth("cvtF32F16AVX2", False)
open("simd_amd64.s","a").write("\n".join(L9)+"\n")
# ---------- spin-wait hint for the worker pool
L10=[]
w=L10.append
w("")
w("// func pause(n int)")
w("// Runs PAUSE n times (n >= 1): a polling loop's hint that leaves the core to the other")
w("// hardware thread and avoids the memory-order flush when the polled value changes.")
w("TEXT ·pause(SB), NOSPLIT, $0-8")
w("\tMOVQ n+0(FP), CX")
w("pauseloop:")
w("\tPAUSE")
w("\tDECQ CX")
w("\tJNZ pauseloop")
w("\tRET")
open("simd_amd64.s","a").write("\n".join(L10)+"\n")
# ---------- f16 matrix-vector for a few activation rows at once
# gemvF16R{m}AVX512 multiplies m activation rows (2 <= m <= 5) by pairs of binary16 weight rows:
# each weight chunk is widened once (VCVTPH2PS) for all m rows instead of once per row, as
# gemvF16AVX512 called per row does. Each output keeps that kernel's arithmetic exactly: an
# even and an odd accumulator over alternate 16-value chunks (a last odd chunk into the even
# one), FMA with the activation from memory, then the same reduction tree (even+odd, the two
# 256-bit halves, then two horizontal adds and the two 128-bit halves), so the results are the
# same bits as gemvF16AVX512's for every row.
# PF: prefetch distance in bytes, as PF1 (here the loop is heavier in arithmetic, and without
# it the kernel ran at half the memory stream's rate).
PF=4096
L11=[]
w=L11.append
def gemvhrows(m, dot=False):
    name = f"dotF16R{m}AVX512" if dot else f"gemvF16R{m}AVX512"
    p = name
    xs = ["SI", "R10", "R11", "R12", "R13"][:m]
    acc = lambda i, r, eo: 4*i + 2*r + eo
    W = 24  # Z24..Z27: widened weights (row r, even/odd)
    w("")
    w(f"// func {name}(k int, x *float32, ldx int, w *uint16, ldw int, out *float32, ldo int, n int, acc bool)")
    w(f"// out[i*ldo+j] (+)= sum_p x[i*ldx+p]*f32(w[j*ldw+p]) for i < {m} and j < n (a positive even")
    if dot:
        w(f"// number), k a positive multiple of 16; the same bits as dot4F16AVX512 row by row.")
    else:
        w(f"// number), k a positive multiple of 16; the same bits as gemvF16AVX512 row by row.")
    w(f"TEXT ·{name}(SB), NOSPLIT, $0-65")
    w("\tMOVQ k+0(FP), CX")
    w("\tMOVQ x+8(FP), SI")
    w("\tMOVQ ldx+16(FP), AX")
    w("\tSHLQ $2, AX")
    for i in range(1, m):
        w(f"\tLEAQ ({xs[i-1]})(AX*1), {xs[i]}")
    w("\tMOVQ w+24(FP), DI")
    w("\tMOVQ ldw+32(FP), R8")
    w("\tSHLQ $1, R8")
    w("\tMOVQ out+40(FP), DX")
    w("\tMOVQ n+56(FP), BX")
    w(f"{p}group:")
    w("\tLEAQ (DI)(R8*1), R9")
    for i in range(4*m):
        w(f"\tVPXORD Z{i}, Z{i}, Z{i}")
    w("\tXORQ AX, AX")
    w("\tCMPQ CX, $32")
    w(f"\tJLT {p}tail")
    w(f"{p}loop2:")
    if PF:
        for reg in ["DI", "R9"]:
            w(f"\tPREFETCHT0 {PF}({reg})(AX*2)")
    for r, reg in enumerate(["DI", "R9"]):
        w(f"\tVCVTPH2PS ({reg})(AX*2), Z{W+2*r}")
        w(f"\tVCVTPH2PS 32({reg})(AX*2), Z{W+2*r+1}")
    for i in range(m):
        for r in range(2):
            w(f"\tVFMADD231PS ({xs[i]})(AX*4), Z{W+2*r}, Z{acc(i, r, 0)}")
            w(f"\tVFMADD231PS 64({xs[i]})(AX*4), Z{W+2*r+1}, Z{acc(i, r, 1)}")
    w("\tADDQ $32, AX")
    w("\tLEAQ 32(AX), R14")
    w("\tCMPQ R14, CX")
    w(f"\tJLE {p}loop2")
    w(f"{p}tail:")
    w("\tCMPQ AX, CX")
    w(f"\tJGE {p}reduce")
    for r, reg in enumerate(["DI", "R9"]):
        w(f"\tVCVTPH2PS ({reg})(AX*2), Z{W+2*r}")
    for i in range(m):
        for r in range(2):
            w(f"\tVFMADD231PS ({xs[i]})(AX*4), Z{W+2*r}, Z{acc(i, r, 0)}")
    w("\tADDQ $16, AX")
    w(f"\tJMP {p}tail")
    w(f"{p}reduce:")
    # out row pointers walk in R9 (w row 1 is recomputed next group); AX = ldo bytes
    w("\tMOVQ ldo+48(FP), AX")
    w("\tSHLQ $2, AX")
    w("\tMOVQ DX, R9")
    for i in range(0, m, 2):
        rows = [i, i+1] if i+1 < m else [i]
        # the 256-bit sums of rows i, i+1 into Y0..Y3 (VHADDPS has only VEX forms: Y0-Y15);
        # Y4 (row 1's, free by then) is the temporary
        for q, (ii, r) in enumerate((ii, r) for ii in rows for r in range(2)):
            e, o = acc(ii, r, 0), acc(ii, r, 1)
            w(f"\tVADDPS Z{o}, Z{e}, Z{e}")
            w(f"\tVEXTRACTF64X4 $1, Z{e}, Y28")
            if dot:
                w(f"\tVADDPS Y28, Y{e}, Y{e}")
                w(f"\tVEXTRACTF32X4 $1, Y{e}, X28")
                w(f"\tVADDPS X28, X{e}, X{q}")
            else:
                w(f"\tVADDPS Y28, Y{e}, Y{q}")
        if dot:
            # dot4F16AVX512 ends each output u (4 lanes) as (u0+u2) + (u1+u3): the same sums
            # for 4 outputs at once on the transposed [a b c d] (a lone row: [a b a b]).
            if len(rows) == 1:
                w("\tVMOVAPS X0, X2")
                w("\tVMOVAPS X1, X3")
            w("\tVUNPCKLPS X1, X0, X4")
            w("\tVUNPCKHPS X1, X0, X5")
            w("\tVUNPCKLPS X3, X2, X6")
            w("\tVUNPCKHPS X3, X2, X7")
            w("\tVMOVLHPS X6, X4, X0")
            w("\tVMOVHLPS X4, X6, X1")
            w("\tVMOVLHPS X7, X5, X2")
            w("\tVMOVHLPS X5, X7, X3")
            w("\tVADDPS X2, X0, X0")
            w("\tVADDPS X3, X1, X1")
            w("\tVADDPS X1, X0, X0")
        elif len(rows) == 2:
            w("\tVHADDPS Y1, Y0, Y0")
            w("\tVHADDPS Y3, Y2, Y2")
            w("\tVHADDPS Y2, Y0, Y0")
        else:
            w("\tVHADDPS Y1, Y0, Y0")
            w("\tVHADDPS Y0, Y0, Y0")
        if not dot:
            w("\tVEXTRACTF128 $1, Y0, X4")
            w("\tVADDPS X4, X0, X0")
        # X0 = [out(i,0), out(i,1), out(i+1,0), out(i+1,1)]
        w("\tCMPB acc+64(FP), $0")
        w(f"\tJEQ {p}set{i}")
        w("\tVMOVSD (R9), X4")
        if len(rows) == 2:
            w("\tVMOVHPS (R9)(AX*1), X4, X4")
        w("\tVADDPS X4, X0, X0")
        w(f"{p}set{i}:")
        w("\tVMOVSD X0, (R9)")
        if len(rows) == 2:
            w("\tVMOVHPS X0, (R9)(AX*1)")
            w("\tLEAQ (R9)(AX*2), R9")
    w("\tADDQ $8, DX")
    w("\tLEAQ (DI)(R8*2), DI")
    w("\tSUBQ $2, BX")
    w(f"\tJNZ {p}group")
    w("\tVZEROUPPER")
    w("\tRET")
for m in range(2, 6):
    gemvhrows(m)
for m in range(2, 6):
    gemvhrows(m, dot=True)
open("simd_amd64.s","a").write("\n".join(L11)+"\n")
# ---------- f16 attention values: weighted sums for a few queries at once
# wsumF16R{m}AVX512 is wsumF16AVX512 for m query rows of probabilities against the same value
# rows: each value row is widened once for all m queries, and the m*4 accumulators are
# independent chains (one query's 4 wait on the FMA latency). Each output lane is the same
# chain of FMAs over j as in wsumF16AVX512, so the results are the same bits.
L12=[]
w=L12.append
def wsumhrows(m):
    name = f"wsumF16R{m}AVX512"
    p = name
    ps = ["R10", "R13", "R14", "CX", "BX"][:m]  # CX holds ldp until the last is set
    w("")
    w(f"// func {name}(out *float32, ldo, d int, p *float32, ldp, n int, v *uint16, ldv int)")
    w(f"// out[i*ldo:][:d] = sum_{{j<n}} p[i*ldp+j] * f32(v[j*ldv : j*ldv+d]) for i < {m}, d a multiple")
    w(f"// of 16, n >= 1.")
    w(f"TEXT ·{name}(SB), NOSPLIT, $0-64")
    w("\tMOVQ out+0(FP), DI")
    w("\tMOVQ ldo+8(FP), AX")
    w("\tSHLQ $2, AX")
    w("\tMOVQ d+16(FP), R9")
    w("\tMOVQ p+24(FP), R10")
    w("\tMOVQ ldp+32(FP), CX")
    w("\tSHLQ $2, CX")
    for i in range(1, min(m, 3)):
        w(f"\tLEAQ ({ps[i-1]})(CX*1), {ps[i]}")
    if m == 5:
        w("\tLEAQ (R14)(CX*2), BX")
    if m >= 4:
        w("\tLEAQ (R14)(CX*1), CX")
    w("\tMOVQ n+40(FP), R11")
    w("\tMOVQ v+48(FP), R12")
    w("\tMOVQ ldv+56(FP), R8")
    w("\tSHLQ $1, R8")
    # chunks of 64 lanes (4 ZMM per query), then of 16
    for chunks, label in ((4, "c4"), (1, "c1")):
        w(f"{p}{label}:")
        w(f"\tCMPQ R9, ${16*chunks}")
        w(f"\tJLT {p}{label}end")
        for i in range(m*chunks):
            w(f"\tVPXORD Z{i}, Z{i}, Z{i}")
        w("\tMOVQ R12, DX")
        w("\tXORQ SI, SI")
        w(f"{p}{label}loop:")
        if chunks == 4:  # as wsumF16AVX512: the value row 8 ahead
            w("\tPREFETCHT0 (DX)(R8*8)")
            w("\tPREFETCHT0 64(DX)(R8*8)")
        for c in range(chunks):
            w(f"\tVCVTPH2PS {32*c}(DX), Z{24+c}")
        for i in range(m):
            w(f"\tVBROADCASTSS ({ps[i]})(SI*4), Z28")
            for c in range(chunks):
                w(f"\tVFMADD231PS Z{24+c}, Z28, Z{i*chunks+c}")
        w("\tINCQ SI")
        w("\tADDQ R8, DX")
        w("\tCMPQ SI, R11")
        w(f"\tJLT {p}{label}loop")
        # store: out row i at DI + i*AX
        w("\tMOVQ DI, DX")
        for i in range(m):
            for c in range(chunks):
                w(f"\tVMOVUPS Z{i*chunks+c}, {64*c}(DX)")
            if i < m-1:
                w("\tADDQ AX, DX")
        w(f"\tADDQ ${64*chunks}, DI")
        w(f"\tADDQ ${32*chunks}, R12")
        w(f"\tSUBQ ${16*chunks}, R9")
        w(f"\tJMP {p}{label}")
        w(f"{p}{label}end:")
    w("\tVZEROUPPER")
    w("\tRET")
for m in range(2, 6):
    wsumhrows(m)
open("simd_amd64.s","a").write("\n".join(L12)+"\n")
L13=[]
w=L13.append
# ---------- quantized matrix-vector, several activation rows at once: AVX-512 VNNI on YMM
# gemvqvnni's arithmetic for mr activation rows (2..5: the beams of a window), each weight block
# unpacked and its scale converted once for all of them. The activations are interleaved by the
# caller: xq [nb][mr][32] int8, xd [nb][mr] float32, xl [nb][mr][8] int32; out row i (ldo floats
# apart) gets activation row i's n sums. Every
# (weight row, activation row) sum is made as gemvqvnni makes it: even blocks into one
# accumulator, odd blocks into another, the two added, then the same horizontal sum.
def rows_head(name, doc):
    # A several-row kernel's declaration and its loop-invariant arguments: weights DI, ldw R8,
    # out DX, ldo R9 (bytes), n R11.
    w("")
    w(f"// func {name}(nb int, xq *int8, xd, xs *float32, xl *int32, w *byte, ldw int, out *float32, ldo int, n int)")
    w(f"// {doc}")
    w(f"TEXT ·{name}(SB), NOSPLIT, $0-80")
    w("\tMOVQ w+40(FP), DI")
    w("\tMOVQ ldw+48(FP), R8")
    w("\tMOVQ out+56(FP), DX")
    w("\tMOVQ ldo+64(FP), R9")
    w("\tSHLQ $2, R9")
    w("\tMOVQ n+72(FP), R11")
def rows_loop(p, fmt, block, acc0, acc1, xs, xl, zero, mn, a, t, out):
    # The several-row kernels' loop over weight rows: the row's pointers (the interleaved sums
    # in register xs, the lane offsets in xl unless None) and its accumulators zeroed with zero
    # (q5_1's minimum vector Y{mn} too), blocks in pairs (even into acc0, odd into acc1) then a
    # last odd one, then per activation row i its sum in X{a} (scratch X{t}; q5_1's lane i of
    # Y{mn} added) stored at out, ldo (R9) apart.
    w(f"{p}row:")
    w("\tTESTQ R11, R11")
    w(f"\tJEQ {p}done")
    w("\tMOVQ nb+0(FP), CX")
    w("\tMOVQ xq+8(FP), SI")
    w("\tMOVQ xd+16(FP), BX")
    w(f"\tMOVQ xs+24(FP), {xs}")
    if xl:
        w(f"\tMOVQ xl+32(FP), {xl}")
    w("\tMOVQ DI, R10")
    for r in acc0 + acc1:
        w(f"\t{zero} Y{r}, Y{r}, Y{r}")
    if fmt == "q5_1":
        w(f"\tVXORPS Y{mn}, Y{mn}, Y{mn}")
    w(f"{p}pair:")
    w("\tCMPQ CX, $2")
    w(f"\tJLT {p}single")
    block(acc0)
    block(acc1)
    w("\tSUBQ $2, CX")
    w(f"\tJMP {p}pair")
    w(f"{p}single:")
    w("\tTESTQ CX, CX")
    w(f"\tJEQ {p}sum")
    block(acc0)
    w(f"{p}sum:")
    w(f"\tMOVQ DX, {out}")
    mr = len(acc0)
    for i in range(mr):
        w(f"\tVADDPS Y{acc1[i]}, Y{acc0[i]}, Y{a}")
        hsum_y(w, a, t)
        if fmt == "q5_1":
            min_lane(w, mn, i, t)
            w(f"\tVADDSS X{t}, X{a}, X{a}")
        w(f"\tVMOVSS X{a}, ({out})")
        if i < mr - 1:
            w(f"\tADDQ R9, {out}")
    w("\tADDQ $4, DX")
    w("\tADDQ R8, DI")
    w("\tDECQ R11")
    w(f"\tJMP {p}row")
    w(f"{p}done:")
    w("\tVZEROUPPER")
    w("\tRET")
def gemvqvnnim(name, fmt, mr):
    # q5_1 (weights already unsigned: the lanes start at zero, xl is not read) adds its minimum
    # term m*xs of each block into one vector whose lane i is row i's, in block order: the
    # one-row kernel's scalar chain, lane by lane.
    bsz = {"q8_0": 34, "q4_0": 18, "q5_0": 22, "q5_1": 24}[fmt]
    p = name
    acc0 = [16 + i for i in range(mr)]
    acc1 = [16 + mr + i for i in range(mr)]
    tmp = [26 + i for i in range(mr)]
    sc = [11, 12, 13, 14, 7][:mr]
    rows_head(name, f"The {fmt} VNNI kernel for {mr} interleaved activation rows (gemvqvnnim).")
    vnni_consts(w)
    def block(accs):
        if fmt == "q5_1":
            w("\tVBROADCASTI128 8(R10), Y3")
            w("\tVPSRLVD Y8, Y3, Y3")
            w("\tVPAND Y15, Y3, Y3")
            w("\tKMOVD 4(R10), K1")
            w("\tVPADDB Y9, Y3, K1, Y3")
        else:
            vnni_unpack(w, fmt, "R10", 3, 1)
        w("\tVPBROADCASTW (R10), X6")
        w("\tVCVTPH2PS X6, Y6")
        for i in range(mr):
            if fmt == "q5_1":
                w(f"\tVPXORD Y{tmp[i]}, Y{tmp[i]}, Y{tmp[i]}")
            else:
                w(f"\tVMOVDQU32 {32*i}(R12), Y{tmp[i]}")
            w(f"\tVPDPBUSD {32*i}(SI), Y3, Y{tmp[i]}")
            w(f"\tVCVTDQ2PS Y{tmp[i]}, Y{tmp[i]}")
            w(f"\tVMULPS.BCST {4*i}(BX), Y6, Y{sc[i]}")
            w(f"\tVMULPS Y{sc[i]}, Y{tmp[i]}, Y{tmp[i]}")
            w(f"\tVADDPS Y{tmp[i]}, Y{accs[i]}, Y{accs[i]}")
        if fmt == "q5_1":
            w("\tVPBROADCASTW 2(R10), X5")
            w("\tVCVTPH2PS X5, Y5")
            w("\tVMULPS (R13), Y5, Y4")
            w("\tVADDPS Y4, Y2, Y2")
            w(f"\tADDQ ${4*mr}, R13")
        w(f"\tADDQ ${bsz}, R10")
        w(f"\tADDQ ${32*mr}, SI")
        w(f"\tADDQ ${4*mr}, BX")
        if fmt != "q5_1":
            w(f"\tADDQ ${32*mr}, R12")
    rows_loop(p, fmt, block, acc0, acc1, "R13", "R12", "VPXORD", 2, 0, 1, "AX")
def min_lane(w, y, i, t):
    # X{t} lane 0 = lane i (0..7) of Y{y}.
    if i >= 4:
        w(f"\tVEXTRACTF128 $1, Y{y}, X{t}")
        if i > 4:
            w(f"\tVPERMILPS ${i-4}, X{t}, X{t}")
    else:
        w(f"\tVPERMILPS ${i}, X{y}, X{t}")
for fmt, fn in (("q8_0", "Q8_0"), ("q5_0", "Q5_0"), ("q4_0", "Q4_0"), ("q5_1", "Q5_1")):
    for mr in range(2, 6):
        gemvqvnnim(f"gemv{fn}VNNI{mr}", fmt, mr)
open("simd_amd64.s","a").write("\n".join(L13)+"\n")
L14=[]
w=L14.append
# ---------- quantized weights, AVX2, several activation rows (beam search's rows) at once
# gemvq's arithmetic for mr interleaved activation rows (interleaveQ's layout, as gemvqvnnim): a
# weight block is unpacked once and its sign taken once, then each row's bytes get the weights'
# signs, VPMADDUBSW/VPMADDWD, the conversion, the scale d*xd and the add, into that row's even- or
# odd-block accumulator, the same operations in the same order as the one-row kernel, so every
# output has its bits. With 5 rows the ten accumulators and six working registers take all 16 YMM
# registers: the constants are read from memory.
def gemvqavx2m(name, fmt, mr):
    # q5_1's weights are unsigned already (no sign taken: Y1 is free), and its minimum term m*xs
    # of each block goes into Y1, lane i row i's, in block order: the one-row kernel's scalar
    # chain, lane by lane.
    bsz = {"q8_0": 34, "q4_0": 18, "q5_0": 22, "q5_1": 24}[fmt]
    p = name
    acc0 = [6 + i for i in range(mr)]
    acc1 = [6 + mr + i for i in range(mr)]
    rows_head(name, f"The {fmt} AVX2 kernel for {mr} interleaved activation rows (gemvqavx2m); xl is not read.")
    w("\tLEAQ qkc<>(SB), AX")
    def block(accs):
        avx2_unpack(fmt, 0, 3, 3, {"mask": "0(AX)", "shuf": "32(AX)", "bits": "64(AX)", "ones_tmp": "Y5", "f0": "128(AX)",
                                   "x10": "192(AX)", "x08": "160(AX)"})
        if fmt != "q5_1":
            w("\tVPSIGNB Y0, Y0, Y1")
        w("\tVPBROADCASTW (R10), X2")
        w("\tVCVTPH2PS X2, Y2")
        for i in range(mr):
            w(f"\tVMOVDQU {32*i}(SI), Y3")
            if fmt == "q5_1":
                w("\tVPMADDUBSW Y3, Y0, Y3")
            else:
                w("\tVPSIGNB Y0, Y3, Y3")
                w("\tVPMADDUBSW Y3, Y1, Y3")
            w("\tVPMADDWD 96(AX), Y3, Y3")
            w("\tVCVTDQ2PS Y3, Y3")
            w(f"\tVBROADCASTSS {4*i}(BX), Y4")
            w("\tVMULPS Y4, Y2, Y4")
            w("\tVMULPS Y4, Y3, Y3")
            w(f"\tVADDPS Y3, Y{accs[i]}, Y{accs[i]}")
        if fmt == "q5_1":
            w("\tVPBROADCASTW 2(R10), X5")
            w("\tVCVTPH2PS X5, Y5")
            w("\tVMULPS (R12), Y5, Y5")
            w("\tVADDPS Y5, Y1, Y1")
            w(f"\tADDQ ${4*mr}, R12")
        w(f"\tADDQ ${bsz}, R10")
        w(f"\tADDQ ${32*mr}, SI")
        w(f"\tADDQ ${4*mr}, BX")
    rows_loop(p, fmt, block, acc0, acc1, "R12", None, "VXORPS", 1, 3, 4, "R13")
for fmt, fn in (("q8_0", "Q8_0"), ("q5_0", "Q5_0"), ("q4_0", "Q4_0"), ("q5_1", "Q5_1")):
    for mr in range(2, 6):
        gemvqavx2m(f"gemv{fn}AVX2M{mr}", fmt, mr)
open("simd_amd64.s","a").write("\n".join(L14)+"\n")

//go:build amd64 && !purego

#include "textflag.h"

// func sumExpNegAVX512(x *float32, n int, m float32, c *[16]float64, tab *[32]float64) (sum float64, nan bool)
// sumExpNeg's terms, 8 at a time (n a positive multiple of 8), each made as expNeg makes it (no
// fused multiply-adds; the constants from c, the table from tab), added into 8 lane sums and then
// reduced; nan reports a NaN among the differences. AVX-512F.
TEXT ·sumExpNegAVX512(SB), NOSPLIT, $0-49
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSS m+16(FP), Y1
	MOVQ c+24(FP), AX
	VBROADCASTSD 0(AX), Z24  // 32/ln2
	VBROADCASTSD 8(AX), Z25  // 0.5
	VBROADCASTSD 16(AX), Z26 // ln2/32, high part
	VBROADCASTSD 24(AX), Z27 // low part
	VBROADCASTSD 32(AX), Z28 // 1/720
	VBROADCASTSD 40(AX), Z29 // 1/120
	VBROADCASTSD 48(AX), Z30 // 1/24
	VBROADCASTSD 56(AX), Z31 // 1/6
	VBROADCASTSD 64(AX), Z15 // 1
	VBROADCASTSD 72(AX), Z16 // -708
	MOVQ tab+32(FP), AX
	VMOVUPD 0(AX), Z20
	VMOVUPD 64(AX), Z21
	VMOVUPD 128(AX), Z22
	VMOVUPD 192(AX), Z23
	MOVQ $31, AX
	VPBROADCASTQ AX, Z17
	MOVQ $16, AX
	VPBROADCASTQ AX, Z18
	VPXORQ Z0, Z0, Z0
	KXORW K3, K3, K3

loop:
	VMOVUPS (SI), Y2
	VSUBPS Y1, Y2, Y2
	VCVTPS2PD Y2, Z2            // d = float64(v - m)
	VCMPPD $0x1e, Z16, Z2, K1   // d > -708 (ordered)
	VCMPPD $3, Z2, Z2, K2       // NaN
	KORW K2, K3, K3
	VMULPD Z24, Z2, Z3
	VSUBPD Z25, Z3, Z3
	VCVTTPD2DQ Z3, Y4           // n = int(d*(32/ln2) - 0.5)
	VCVTDQ2PD Y4, Z5            // fn
	VMULPD Z26, Z5, Z6
	VSUBPD Z6, Z2, Z6
	VMULPD Z27, Z5, Z7
	VSUBPD Z7, Z6, Z6           // r = (d - fn*hi) - fn*lo
	VMULPD Z28, Z6, Z7          // p = 1 + r*(1 + r*(1/2 + r*(1/6 + r*(1/24 + r*(1/120 + r/720)))))
	VADDPD Z29, Z7, Z7
	VMULPD Z6, Z7, Z7
	VADDPD Z30, Z7, Z7
	VMULPD Z6, Z7, Z7
	VADDPD Z31, Z7, Z7
	VMULPD Z6, Z7, Z7
	VADDPD Z25, Z7, Z7
	VMULPD Z6, Z7, Z7
	VADDPD Z15, Z7, Z7
	VMULPD Z6, Z7, Z7
	VADDPD Z15, Z7, Z7
	VPMOVSXDQ Y4, Z8            // n as int64
	VPANDQ Z17, Z8, Z9          // n & 31
	VMOVAPD Z20, Z10
	VPERMT2PD Z21, Z9, Z10      // tab[n&31] for n&31 < 16
	VMOVAPD Z22, Z11
	VPERMT2PD Z23, Z9, Z11      // and for the others
	VPTESTMQ Z18, Z9, K4
	VBLENDMPD Z11, Z10, K4, Z12
	VMULPD Z7, Z12, Z12         // tab[n&31] * p
	VPSRAQ $5, Z8, Z13
	VPSLLQ $52, Z13, Z13
	VPADDQ Z13, Z12, Z12        // times 2^(n>>5), in the exponent bits
	VADDPD Z12, Z0, K1, Z0
	ADDQ $32, SI
	SUBQ $8, CX
	JNZ loop

	VEXTRACTF64X4 $1, Z0, Y1
	VADDPD Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPD X1, X0, X0
	VPERMILPD $1, X0, X1
	VADDSD X1, X0, X0
	MOVSD X0, sum+40(FP)
	KMOVW K3, AX
	TESTW AX, AX
	SETNE nan+48(FP)
	VZEROUPPER
	RET

// func maxAVX512(x *float32, n int) (m float32, nan bool)
// The largest of x[:n] (n a positive multiple of 16), and whether a NaN is among them (then m is
// not meaningful). AVX-512F.
TEXT ·maxAVX512(SB), NOSPLIT, $0-21
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VMOVUPS (SI), Z0
	KXORW K3, K3, K3

maxloop:
	VMOVUPS (SI), Z1
	VCMPPS $3, Z1, Z1, K2
	KORW K2, K3, K3
	VMAXPS Z1, Z0, Z0
	ADDQ $64, SI
	SUBQ $16, CX
	JNZ maxloop

	VEXTRACTF32X8 $1, Z0, Y1
	VMAXPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VMAXPS X1, X0, X0
	VPERMILPS $0x4e, X0, X1
	VMAXPS X1, X0, X0
	VPERMILPS $0xb1, X0, X1
	VMAXPS X1, X0, X0
	MOVSS X0, m+16(FP)
	KMOVW K3, AX
	TESTW AX, AX
	SETNE nan+20(FP)
	VZEROUPPER
	RET

// func expScaledAVX512(dst *float64, x *float32, n int, m, t float64, c *[16]float64)
// dst[i] = math.Exp((float64(x[i]) - m) / t) for n a positive multiple of 8, 8 at a time, with
// the operations of the Go runtime's amd64 Exp where the processor has FMA (its avxfma path) in
// their order, so each value has math.Exp's bits; a lane whose result is not a normal number
// times 2^k with 0 < k+1023 < 2047 (an infinite or NaN argument, an underflow, an overflow)
// gets -1 for the caller to compute with math.Exp. The constants from c. AVX-512F.
TEXT ·expScaledAVX512(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSD m+24(FP), Z1
	VBROADCASTSD t+32(FP), Z2
	MOVQ c+40(FP), AX
	VBROADCASTSD 0(AX), Z10   // log2(e)
	VBROADCASTSD 8(AX), Z11   // ln2, upper part
	VBROADCASTSD 16(AX), Z12  // lower part
	VBROADCASTSD 24(AX), Z13  // 1/16
	VBROADCASTSD 32(AX), Z14  // the Taylor coefficients, highest first
	VBROADCASTSD 40(AX), Z15
	VBROADCASTSD 48(AX), Z16
	VBROADCASTSD 56(AX), Z17
	VBROADCASTSD 64(AX), Z18
	VBROADCASTSD 72(AX), Z19
	VBROADCASTSD 80(AX), Z20  // 1/2
	VBROADCASTSD 88(AX), Z21  // 1
	VBROADCASTSD 96(AX), Z22  // 2
	VBROADCASTSD 104(AX), Z23 // -1, the mark
	MOVQ $0x3ff, AX
	VPBROADCASTQ AX, Z24
	MOVQ $0x7ff, AX
	VPBROADCASTQ AX, Z26
	VPXORQ Z25, Z25, Z25

exploop:
	VCVTPS2PD (SI), Z0
	VSUBPD Z1, Z0, Z0
	VDIVPD Z2, Z0, Z0           // x = (v - m) / t
	VMULPD Z10, Z0, Z3
	VCVTPD2DQ Z3, Y4            // k = round(x * log2(e)), the current rounding mode
	VCVTDQ2PD Y4, Z5
	VFNMADD231PD Z11, Z5, Z0    // x -= k*ln2 (upper), fused
	VFNMADD231PD Z12, Z5, Z0    // x -= k*ln2 (lower), fused
	VMULPD Z13, Z0, Z0
	VMOVAPD Z14, Z6
	VFMADD213PD Z15, Z0, Z6     // p = p*x + c, down to 1
	VFMADD213PD Z16, Z0, Z6
	VFMADD213PD Z17, Z0, Z6
	VFMADD213PD Z18, Z0, Z6
	VFMADD213PD Z19, Z0, Z6
	VFMADD213PD Z20, Z0, Z6
	VFMADD213PD Z21, Z0, Z6
	VMULPD Z6, Z0, Z0           // x *= p, then squared up four times: x = x*(x+2)
	VADDPD Z22, Z0, Z6
	VMULPD Z6, Z0, Z0
	VADDPD Z22, Z0, Z6
	VMULPD Z6, Z0, Z0
	VADDPD Z22, Z0, Z6
	VMULPD Z6, Z0, Z0
	VADDPD Z22, Z0, Z6
	VFMADD213PD Z21, Z6, Z0     // the last one plus 1, fused
	VPMOVSXDQ Y4, Z8
	VPADDQ Z24, Z8, Z8          // the biased exponent k + 1023
	VPCMPQ $6, Z25, Z8, K1      // > 0
	VPCMPQ $1, Z26, Z8, K1, K2  // and < 2047
	VPSLLQ $52, Z8, Z8
	VMULPD Z8, Z0, Z0           // times 2^k
	VBLENDMPD Z0, Z23, K2, Z9
	VMOVUPD Z9, (DI)
	ADDQ $32, SI
	ADDQ $64, DI
	SUBQ $8, CX
	JNZ exploop
	VZEROUPPER
	RET

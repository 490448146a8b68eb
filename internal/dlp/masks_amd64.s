//go:build amd64 && !purego

#include "textflag.h"

// NIBBLES looks up the byte at off(SI) of each of the 32 positions, folded
// with |0x20, in the nibble tables of one position: the first group's
// (registers alo and ahi) into ra, the second's (at blo and bhi from DX)
// into rb. Y1 to Y3 are its own.
#define NIBBLES(off, alo, ahi, blo, bhi, ra, rb) \
	VMOVDQU off(SI), Y1; \
	VPOR Y14, Y1, Y1; \
	VPAND Y15, Y1, Y2; \
	VPSRLW $4, Y1, Y3; \
	VPAND Y15, Y3, Y3; \
	VMOVDQU bhi(DX), Y1; \
	VPSHUFB Y3, Y1, Y1; \
	VMOVDQU blo(DX), rb; \
	VPSHUFB Y2, rb, rb; \
	VPAND Y1, rb, rb; \
	VPSHUFB Y2, alo, ra; \
	VPSHUFB Y3, ahi, Y1; \
	VPAND Y1, ra, ra

// func markAVX2(p *byte, blocks int, tab *teddyTables, out *blockMarks, carry uint32) uint32
TEXT ·markAVX2(SB), NOSPLIT, $0-44
	MOVQ p+0(FP), SI
	MOVQ blocks+8(FP), CX
	MOVQ tab+16(FP), DX
	MOVQ out+24(FP), DI
	MOVL carry+32(FP), R9
	VMOVDQU 0(DX), Y8
	VMOVDQU 32(DX), Y9
	VMOVDQU 64(DX), Y10
	VMOVDQU 96(DX), Y11
	VMOVDQU 128(DX), Y12
	VMOVDQU 160(DX), Y13
	VMOVDQU c20<>(SB), Y14
	VMOVDQU c0f<>(SB), Y15
	TESTQ CX, CX
	JZ done

loop:
	// Keyword starts: the three bytes at each position, folded, looked
	// up by nibble in two groups of eight buckets; a bucket's bit
	// survives when every lookup has it. The first group's tables stay
	// in registers, the second's are read from tab.
	VMOVDQU 0(SI), Y0
	NIBBLES(0, Y8, Y9, 192, 224, Y4, Y5)
	NIBBLES(1, Y10, Y11, 256, 288, Y6, Y7)
	VPAND Y6, Y4, Y4
	VPAND Y7, Y5, Y5
	NIBBLES(2, Y12, Y13, 320, 352, Y6, Y7)
	VPAND Y6, Y4, Y4
	VPAND Y7, Y5, Y5
	VPOR Y4, Y5, Y4
	VPXOR Y5, Y5, Y5
	VPCMPEQB Y5, Y4, Y4
	VPMOVMSKB Y4, AX
	NOTL AX
	MOVL AX, 0(DI)

	// Personal data. Signed comparisons: bytes from 0x80 are negative,
	// so no range takes them.
	VPCMPGTB c2f<>(SB), Y0, Y1
	VPCMPGTB c39<>(SB), Y0, Y2
	VPANDN Y1, Y2, Y1          // digits
	VPCMPGTB c40<>(SB), Y0, Y2
	VPCMPGTB c5a<>(SB), Y0, Y3
	VPANDN Y2, Y3, Y2          // capitals
	VPCMPGTB c60<>(SB), Y0, Y3
	VPCMPGTB c7a<>(SB), Y0, Y4
	VPANDN Y3, Y4, Y3          // small letters
	VPOR Y1, Y2, Y4            // digits and capitals
	VPOR Y4, Y3, Y3            // letters and digits
	VPMOVMSKB Y3, BX
	// Capitals start identifiers only before a capital, or as X, Y or Z
	// (a NIE).
	VMOVDQU 1(SI), Y5
	VPCMPGTB c40<>(SB), Y5, Y6
	VPCMPGTB c5a<>(SB), Y5, Y7
	VPANDN Y6, Y7, Y6          // capitals after them
	VPCMPGTB c57<>(SB), Y0, Y7
	VPOR Y6, Y7, Y6
	VPAND Y6, Y2, Y2
	VPOR Y1, Y2, Y4            // digits, and capitals that may start one
	VPCMPEQB c2b<>(SB), Y0, Y3 // '+'
	VPOR Y3, Y4, Y4
	VPCMPEQB c28<>(SB), Y0, Y3 // '('
	VPOR Y3, Y4, Y4
	VPMOVMSKB Y4, R10          // what starts a number or an identifier
	VPCMPEQB c3a<>(SB), Y0, Y3 // ':'
	VPMOVMSKB Y3, R12
	VPOR Y14, Y0, Y5
	VPCMPGTB c60<>(SB), Y5, Y6
	VPCMPGTB c66<>(SB), Y5, Y7
	VPANDN Y6, Y7, Y6          // a to f, either case
	VPOR Y6, Y1, Y6            // hex digits
	VPOR Y6, Y3, Y6            // and ':'
	VPMOVMSKB Y6, R13

	// Base64: letters, digits and + / - _ =.
	VPCMPEQB c2b<>(SB), Y0, Y5
	VPCMPEQB c2f<>(SB), Y0, Y6
	VPOR Y5, Y6, Y5
	VPCMPEQB c2d<>(SB), Y0, Y6
	VPOR Y5, Y6, Y5
	VPCMPEQB c5f<>(SB), Y0, Y6
	VPOR Y5, Y6, Y5
	VPCMPEQB c3d<>(SB), Y0, Y6
	VPOR Y5, Y6, Y5
	VPMOVMSKB Y5, AX
	ORL BX, AX
	MOVL AX, 8(DI)

	// Starts after no letter or digit; every '@'; colons after a hex
	// digit or ':'.
	MOVL R9, AX
	ANDL $1, AX
	MOVL BX, R11
	SHLL $1, R11
	ORL AX, R11
	NOTL R11
	ANDL R11, R10
	VPCMPEQB c40<>(SB), Y0, Y3 // '@'
	VPMOVMSKB Y3, R11
	ORL R11, R10
	MOVL R9, AX
	SHRL $1, AX
	MOVL R13, R11
	SHLL $1, R11
	ORL AX, R11
	ANDL R11, R12
	ORL R12, R10
	MOVL R10, 4(DI)
	SHRL $31, BX
	SHRL $31, R13
	SHLL $1, R13
	ORL BX, R13
	MOVL R13, R9

	ADDQ $32, SI
	ADDQ $12, DI
	DECQ CX
	JNZ loop

done:
	VZEROUPPER
	MOVL R9, ret+40(FP)
	RET

// func byteMarksAVX2(p *byte, blocks int, c1, c2 byte, high uint32, out *uint32)
TEXT ·byteMarksAVX2(SB), NOSPLIT, $0-32
	MOVQ p+0(FP), SI
	MOVQ blocks+8(FP), CX
	VPBROADCASTB c1+16(FP), Y1
	VPBROADCASTB c2+17(FP), Y2
	MOVL high+20(FP), R8
	MOVQ out+24(FP), DI
	TESTQ CX, CX
	JZ bdone

bloop:
	VMOVDQU 0(SI), Y0
	VPCMPEQB Y1, Y0, Y3
	VPCMPEQB Y2, Y0, Y4
	VPOR Y3, Y4, Y3
	VPMOVMSKB Y3, AX
	VPMOVMSKB Y0, BX
	ANDL R8, BX
	ORL BX, AX
	MOVL AX, 0(DI)
	ADDQ $32, SI
	ADDQ $4, DI
	DECQ CX
	JNZ bloop

bdone:
	VZEROUPPER
	RET

// func unescapeAVX2(dst, src *byte, blocks int, marks *uint32) uint32
TEXT ·unescapeAVX2(SB), NOSPLIT, $0-36
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ blocks+16(FP), CX
	MOVQ marks+24(FP), R8
	XORL R9, R9
	VMOVDQU c5c<>(SB), Y10
	VMOVDQU c22<>(SB), Y11
	TESTQ CX, CX
	JZ udone

uloop:
	VMOVDQU 0(SI), Y0
	VMOVDQU -1(SI), Y1
	VMOVDQU 1(SI), Y2
	VPCMPEQB Y10, Y0, Y3 // backslashes
	VPCMPEQB Y10, Y1, Y4 // bytes after a backslash
	VPCMPEQB Y11, Y2, Y5 // bytes before a quote
	VPAND Y3, Y5, Y5
	VPANDN Y5, Y4, Y5    // backslashes alone before a quote
	VPANDN Y0, Y5, Y6    // become the filler, 0
	VMOVDQU Y6, 0(DI)
	VPANDN Y3, Y5, Y3    // the other backslashes
	VPMOVMSKB Y3, AX
	VPMOVMSKB Y0, BX     // bytes from 0x80
	ORL BX, AX
	MOVL AX, 0(R8)
	VPMOVMSKB Y5, BX
	ORL BX, R9
	ADDQ $32, SI
	ADDQ $32, DI
	ADDQ $4, R8
	DECQ CX
	JNZ uloop

udone:
	VZEROUPPER
	MOVL R9, ret+32(FP)
	RET

// Thirty-two copies of a byte, for comparisons with a memory operand.
#define BYTES32(name, value) \
	DATA name+0(SB)/8, value; \
	DATA name+8(SB)/8, value; \
	DATA name+16(SB)/8, value; \
	DATA name+24(SB)/8, value; \
	GLOBL name(SB), RODATA|NOPTR, $32

BYTES32(c20<>, $0x2020202020202020)
BYTES32(c0f<>, $0x0f0f0f0f0f0f0f0f)
BYTES32(c2f<>, $0x2f2f2f2f2f2f2f2f)
BYTES32(c39<>, $0x3939393939393939)
BYTES32(c40<>, $0x4040404040404040)
BYTES32(c5a<>, $0x5a5a5a5a5a5a5a5a)
BYTES32(c60<>, $0x6060606060606060)
BYTES32(c66<>, $0x6666666666666666)
BYTES32(c7a<>, $0x7a7a7a7a7a7a7a7a)
BYTES32(c2b<>, $0x2b2b2b2b2b2b2b2b)
BYTES32(c28<>, $0x2828282828282828)
BYTES32(c3a<>, $0x3a3a3a3a3a3a3a3a)
BYTES32(c5c<>, $0x5c5c5c5c5c5c5c5c)
BYTES32(c22<>, $0x2222222222222222)
BYTES32(c2d<>, $0x2d2d2d2d2d2d2d2d)
BYTES32(c5f<>, $0x5f5f5f5f5f5f5f5f)
BYTES32(c3d<>, $0x3d3d3d3d3d3d3d3d)
BYTES32(c57<>, $0x5757575757575757)

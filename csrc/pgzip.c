/* pgzip core: segment entropy and CRC-32 combination (see pgzip.h). */
#include "pgzip.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Four histograms break the store-to-load dependency a single table has on
 * runs of equal bytes. */
static double
rfn_pgz_segment_entropy(const unsigned char *p, size_t n)
{
    uint32_t c[4][256];
    memset(c, 0, sizeof c);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        c[0][p[i]]++;
        c[1][p[i + 1]]++;
        c[2][p[i + 2]]++;
        c[3][p[i + 3]]++;
    }
    for (; i < n; i++) {
        c[0][p[i]]++;
    }
    /* H = log2(n) - sum(k * log2(k)) / n over the byte counts k. */
    double sum = 0.0;
    for (int b = 0; b < 256; b++) {
        uint32_t k = c[0][b] + c[1][b] + c[2][b] + c[3][b];
        if (k > 1) {
            sum += (double)k * log2((double)k);
        }
    }
    double h = log2((double)n) - sum / (double)n;
    return h < 0.0 ? 0.0 : h;
}

void
rfn_pgz_entropy(const unsigned char *buf, size_t len, size_t segment_size, double *out)
{
    for (size_t off = 0, i = 0; off < len; off += segment_size, i++) {
        size_t n = len - off < segment_size ? len - off : segment_size;
        out[i] = rfn_pgz_segment_entropy(buf + off, n);
    }
}

#define RFN_PGZ_HASH_BITS 15

static uint32_t
rfn_pgz_load32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static uint32_t
rfn_pgz_hash(uint32_t v)
{
    return (v * 2654435761u) >> (32 - RFN_PGZ_HASH_BITS);
}

/* The table keeps the last position (+1; 0 is empty) of each hash of 4
 * bytes: a candidate is verified, so the count has no false positives; a
 * match whose slot was overwritten by a colliding position is missed, which
 * only makes a segment look less compressible than deflate would find it
 * (callers bound what that costs). The history before start is only
 * inserted; each segment's loop counts without a branch on the candidate
 * (on incompressible data it is unpredictable, and that branch was most of
 * the scan's time: 3.3x slower). */
int
rfn_pgz_matches(const unsigned char *buf, size_t len, size_t start, size_t segment_size, uint64_t *out)
{
    size_t segments = (len - start) / segment_size + ((len - start) % segment_size != 0);
    memset(out, 0, sizeof *out * segments);
    if (len < 4) {
        return 0;
    }
    uint32_t *table = calloc((size_t)1 << RFN_PGZ_HASH_BITS, sizeof *table);
    if (table == NULL) {
        return -1;
    }
    const size_t from = start > RFN_PGZ_DISTANCE ? start - RFN_PGZ_DISTANCE : 0;
    const size_t last = len - 3;    /* positions with 4 bytes: [0, last) */
    size_t i = from;
    for (; i < start && i < last; i++) {
        table[rfn_pgz_hash(rfn_pgz_load32(buf + i))] = (uint32_t)(i - from + 1);
    }
    for (size_t s = 0; s < segments; s++) {
        size_t end = start + (s + 1) * segment_size;
        end = end < last ? end : last;
        uint64_t count = 0;
        for (; i < end; i++) {
            uint32_t v = rfn_pgz_load32(buf + i);
            uint32_t h = rfn_pgz_hash(v);
            uint32_t cand = table[h];
            table[h] = (uint32_t)(i - from + 1);
            /* cand - 1 + from is the earlier position; i itself when empty
             * (never counted, and always readable). */
            size_t j = cand != 0 ? from + cand - 1 : i;
            count += (cand != 0) & (i - j <= RFN_PGZ_DISTANCE) & (rfn_pgz_load32(buf + j) == v);
        }
        out[s] = count;
    }
    free(table);
    return 0;
}

/* CRC-32 as a linear map over GF(2): appending len2 zero bytes to A is
 * multiplying crc1 by x^(8*len2) modulo the (reflected) polynomial, so the
 * combination is crc1 * x^(8*len2) mod P, xor crc2. x^(2^k) are found by
 * repeated squaring. */
#define RFN_PGZ_POLY 0xedb88320u   /* reflected 0x04c11db7 */

/* a * b modulo P, both reflected (bit 31 is x^0); a must not be 0. */
static uint32_t
rfn_pgz_multmodp(uint32_t a, uint32_t b)
{
    uint32_t m = 1u << 31, p = 0;
    for (;;) {
        if (a & m) {
            p ^= b;
            if ((a & (m - 1)) == 0) {
                break;
            }
        }
        m >>= 1;
        b = b & 1 ? (b >> 1) ^ RFN_PGZ_POLY : b >> 1;
    }
    return p;
}

/* x^(8 * n) modulo P: x^8 squared once per bit of n. */
static uint32_t
rfn_pgz_x8nmodp(uint64_t n)
{
    uint32_t result = 1u << 31;     /* x^0 */
    uint32_t sq = 1u << 23;         /* x^8 */
    while (n) {
        if (n & 1) {
            result = rfn_pgz_multmodp(sq, result);
        }
        n >>= 1;
        sq = rfn_pgz_multmodp(sq, sq);
    }
    return result;
}

uint32_t
rfn_pgz_crc32_combine(uint32_t crc1, uint32_t crc2, uint64_t len2)
{
    return rfn_pgz_multmodp(rfn_pgz_x8nmodp(len2), crc1) ^ crc2;
}

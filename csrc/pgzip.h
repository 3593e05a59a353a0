/* pgzip: the byte-level helpers of the parallel gzip writer
 * (runpod_flash_native/_pgzip.py). Compiles without Python.h.
 *
 * rfn_pgz_entropy() and rfn_pgz_matches() are the cheap prefilters that spot
 * incompressible segments (order-0 byte entropy, LZ77 match candidates); rfn_pgz_crc32_combine() joins the CRC-32s
 * of blocks compressed on different threads into the one gzip trailer. */
#ifndef RFN_PGZIP_H
#define RFN_PGZIP_H

#include <stddef.h>
#include <stdint.h>

/* Order-0 entropy, in bits per byte (0.0 to 8.0), of each segment of
 * segment_size bytes of buf (the last one may be shorter): out[i] for
 * segment i; out must hold ceil(len / segment_size) values. segment_size > 0. */
void rfn_pgz_entropy(const unsigned char *buf, size_t len, size_t segment_size, double *out);

/* For each segment of segment_size bytes of buf[start, len), the number of
 * its positions where the 4 bytes there also stand at most RFN_PGZ_DISTANCE
 * bytes earlier in buf (buf[0, start) being the history before it), as seen
 * through a one-entry-per-hash table: a cheap, slightly low count of the
 * places LZ77 could match. out[i] for segment i; out must hold
 * ceil((len - start) / segment_size) values. Returns -1 when out of memory,
 * else 0. start <= len, segment_size > 0. */
#define RFN_PGZ_DISTANCE 32768
int rfn_pgz_matches(const unsigned char *buf, size_t len, size_t start, size_t segment_size,
                    uint64_t *out);

/* CRC-32 (gzip's polynomial) of A || B, from crc1 = crc32(A), crc2 = crc32(B)
 * and len2 = len(B). */
uint32_t rfn_pgz_crc32_combine(uint32_t crc1, uint32_t crc2, uint64_t len2);

#endif

/* pgzip: the byte-level helpers of the parallel gzip writer
 * (runpod_flash_native/_pgzip.py). Compiles without Python.h.
 *
 * rfn_pgz_entropy() is the cheap prefilter that spots incompressible
 * segments (order-0 byte entropy); rfn_pgz_crc32_combine() joins the CRC-32s
 * of blocks compressed on different threads into the one gzip trailer. */
#ifndef RFN_PGZIP_H
#define RFN_PGZIP_H

#include <stddef.h>
#include <stdint.h>

/* Order-0 entropy, in bits per byte (0.0 to 8.0), of each segment of
 * segment_size bytes of buf (the last one may be shorter): out[i] for
 * segment i; out must hold ceil(len / segment_size) values. segment_size > 0. */
void rfn_pgz_entropy(const unsigned char *buf, size_t len, size_t segment_size, double *out);

/* CRC-32 (gzip's polynomial) of A || B, from crc1 = crc32(A), crc2 = crc32(B)
 * and len2 = len(B). */
uint32_t rfn_pgz_crc32_combine(uint32_t crc1, uint32_t crc2, uint64_t len2);

#endif

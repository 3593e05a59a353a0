/* The one UTF-8 codec of the extension, between bytes and code points
 * (uint32_t). Core: no Python.h. */
#ifndef RFN_UTF8_H
#define RFN_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Decode bytes as Python's os.fsdecode (UTF-8, surrogateescape) would, into
 * out (capacity >= len). Returns the number of code points. */
size_t rfn_fsdecode_cps(const unsigned char *s, size_t len, uint32_t *out);

/* Encode code points as UTF-8, surrogates passed through (Python's
 * "surrogatepass"), into out (capacity >= 4 * n). Returns the byte count. */
size_t rfn_utf8_encode_cps(const uint32_t *cps, size_t n, char *out);

/* The surrogate (U+D800..U+DFFF) encoded "surrogatepass" at s[0..3) (avail
 * bytes readable at s), or 0 when s does not start with one. */
uint32_t rfn_utf8_surrogate(const unsigned char *s, size_t avail);

#endif /* RFN_UTF8_H */

/* The compiled gitwildmatch matcher: pattern lists compiled the way the
 * installed pathspec compiles them, matched against paths given as code
 * points. Core: no Python.h (the IgnoreSpec type that owns a matcher is in
 * ignore.c). */
#ifndef RFN_MATCH_H
#define RFN_MATCH_H

#include <stddef.h>
#include <stdint.h>

typedef struct rfn_matcher rfn_matcher;

/* Match a normalized relative path given as code points (surrogateescape for
 * undecodable bytes, exactly as Python's str of the path). Returns 1 when the
 * last matching pattern excludes the path (flash ignores it), else 0. Never
 * touches Python objects: safe without the GIL. Scratch for paths of up to
 * ~900 code points is on the stack; longer ones take PyMem_RawMalloc, and
 * only if that fails the result is -1 (treat as out of memory). */
int rfn_matcher_ignores(const rfn_matcher *m, const uint32_t *cps, size_t n);

/* Matching during a walk, one directory level at a time (see ignore.c): a
 * directory carries rfn_matcher_bits_len() bytes of bits its entries inherit.
 * rfn_matcher_walk_entry() decides the entry at cps[0..n) (its whole path
 * relative to the base, its name last, no "/" in the name) under a directory
 * with parent_bits (NULL for an entry directly in the base), returning 1
 * (ignored), 0 (kept) or -1 (out of memory); with child_bits non-NULL it also
 * fills the bits the entry passes on if it is a directory. Safe without the
 * GIL. rfn_matcher_prefix_bits() fills the bits of a walk root whose path
 * relative to the base is cps[0..n) (n > 0). */
size_t rfn_matcher_bits_len(const rfn_matcher *m);
int rfn_matcher_walk_entry(const rfn_matcher *m, const uint32_t *cps, size_t n,
                           const unsigned char *parent_bits, unsigned char *child_bits);
int rfn_matcher_prefix_bits(const rfn_matcher *m, const uint32_t *cps, size_t n,
                            unsigned char *bits);

/* Decode bytes as Python's os.fsdecode (UTF-8, surrogateescape) would, into
 * out (capacity >= len). Returns the number of code points. */
size_t rfn_fsdecode_cps(const unsigned char *s, size_t len, uint32_t *out);

/* Encode code points as UTF-8, surrogates passed through (Python's
 * "surrogatepass"), into out (capacity >= 4 * n). Returns the byte count. */
size_t rfn_utf8_encode_cps(const uint32_t *cps, size_t n, char *out);

#endif /* RFN_MATCH_H */

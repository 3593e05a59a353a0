/* The compiled gitwildmatch matcher: pattern lists compiled the way the
 * installed pathspec compiles them (match_compile.c), matched against paths
 * given as code points (match.c). Core: no Python.h (the IgnoreSpec type that
 * owns a matcher is in ignore.c). */
#ifndef RFN_MATCH_H
#define RFN_MATCH_H

#include <stddef.h>
#include <stdint.h>
#include "utf8.h"

typedef struct rfn_matcher rfn_matcher;

/* ---- compiling (match_compile.c) ---------------------------------------- */

/* The pathspec release line a matcher answers like (see match_compile.c). */
enum rfn_dialect {
    RFN_DIALECT_0_11,   /* pathspec 0.11.0 - 0.12.x */
    RFN_DIALECT_1_0,    /* pathspec 1.0.x */
    RFN_DIALECT_1_1,    /* pathspec >= 1.1.0 */
};

/* What became of one pattern. */
enum rfn_verdict {
    RFN_V_OK,
    RFN_V_NOOP,         /* blank, comment, "/", or discarded (unterminated "[") */
    RFN_V_INVALID,      /* pathspec raises GitIgnorePatternError */
    RFN_V_BAD_RANGE,    /* pathspec's regex fails: re.error("bad character range") */
    RFN_V_NOMEM,
};

typedef struct {
    enum rfn_verdict v;
    const char *why;        /* INVALID: pathspec's reason */
    int bad_range;          /* a reversed range was seen; reported only if the */
    uint32_t lo, hi;        /* rest of the pattern translates (re.compile is last) */
} rfn_outcome;

typedef struct rfn_match_builder rfn_match_builder;

/* A builder for a matcher of dialect d (malloc'd), or NULL (out of memory). */
rfn_match_builder *rfn_match_builder_new(enum rfn_dialect d);

/* Compile the pattern s[0..len) (code points; one non-empty line) into b.
 * out->v says what became of it; on anything but RFN_V_OK, b is unchanged. */
void rfn_match_builder_add(rfn_match_builder *b, const uint32_t *s, size_t len,
                           rfn_outcome *out);

/* The matcher of the patterns added so far, taking b's arrays (b is left
 * empty, still to be freed), or NULL (out of memory). */
rfn_matcher *rfn_match_builder_finish(rfn_match_builder *b);

void rfn_match_builder_free(rfn_match_builder *b);   /* NULL is fine */
void rfn_matcher_free(rfn_matcher *m);                /* NULL is fine */

enum rfn_dialect rfn_matcher_dialect(const rfn_matcher *m);

/* ---- matching (match.c) -------------------------------------------------- */

/* Match a normalized relative path given as code points (surrogateescape for
 * undecodable bytes, exactly as Python's str of the path). Returns 1 when the
 * last matching pattern excludes the path (flash ignores it), else 0. Never
 * touches Python objects: safe without the GIL. Scratch for paths of up to
 * ~900 code points is on the stack; longer ones take malloc, and only if
 * that fails the result is -1 (treat as out of memory). */
int rfn_matcher_ignores(const rfn_matcher *m, const uint32_t *cps, size_t n);

/* Matching during a walk, one directory level at a time (see match.c): a
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

#endif /* RFN_MATCH_H */

/* The compiled form shared by the compiler (match_compile.c) and the matcher
 * (match.c); nothing else looks inside a matcher. Core: no Python.h.
 *
 * pathspec turns each pattern into a Python regular expression and applies it
 * with re.search() to the path's code points. We translate the same pattern
 * into a small program of tokens instead and run it with a set-based DP over
 * (token, position): for every token, the sorted set of path positions the
 * regex could have reached before it. No backtracking, no recursion; each token
 * costs O(path length). The tokens reproduce the regex pieces pathspec emits:
 *
 *   LEAD     ^(?:.+/)?        leading "**" (only ever the first token)
 *   INNER    (?:/.+)?         inner "**"
 *   STR      literal code points (re.escape'd characters)
 *   ANY      [^/]             "?"  (matches "\n" too)
 *   STAR     [^/]*            "*" inside a segment
 *   PLUS     [^/]+            a segment that is exactly "*"
 *   CLASS    [...]            bracket expression, parsed as sre_parse does
 *   END_OPT  (?:/|$)          after the last plain segment; "$" also matches
 *                             just before a final "\n"
 *   END_DIR  /                trailing "**" (the regex is unanchored after it)
 *
 * Patterns built from segments always start at "^" (no MULTILINE), so search
 * only succeeds at position 0. The override regexes pathspec uses for "**",
 * "*", "*" + "/" and friends ("." and "/") are unanchored and kept as two
 * special kinds.
 */
#ifndef RFN_MATCH_IMPL_H
#define RFN_MATCH_IMPL_H

#include "match.h"

enum rfn_op {
    RFN_OP_LEAD,
    RFN_OP_INNER,
    RFN_OP_STR,
    RFN_OP_ANY,
    RFN_OP_STAR,
    RFN_OP_PLUS,
    RFN_OP_CLASS,
    RFN_OP_END_OPT,
    RFN_OP_END_DIR,
    RFN_OP_END_OLD_OPT,     /* 0.11: (?:/.*)?$  the end, or a "/" with no "\n" after it but a final one */
    RFN_OP_END_OLD_DIR,     /* 0.11: /.*$       a "/" with no "\n" after it but a final one */
};

typedef struct {
    uint8_t op;
    uint8_t negate;     /* CLASS */
    size_t off;         /* STR: first code point in pool; CLASS: first (lo, hi) pair */
    size_t len;         /* STR: code points; CLASS: ranges */
} rfn_tok;

enum rfn_kind {
    RFN_KIND_PROGRAM,   /* anchored token program */
    RFN_KIND_ANY_CHAR,  /* regex "." : any code point but "\n", anywhere */
    RFN_KIND_SLASH,     /* regex "/" or "(?P<ps_d>/)": a "/" anywhere */
    RFN_KIND_OLD_DIRS,  /* 0.11's "**" + "/": ^.+/.*$ */
};

typedef struct {
    uint8_t kind;
    uint8_t include;    /* 1: a match ignores the path; 0: negated pattern */
    size_t tok_off;
    size_t ntok;
} rfn_pat;

/* Only patterns that can match are kept; no-ops are dropped at compile time.
 * The arrays are malloc'd. */
struct rfn_matcher {
    rfn_pat *pats;
    size_t npats;
    rfn_tok *toks;
    uint32_t *pool;
    enum rfn_dialect dialect;
};

static inline int
rfn_is_old_end(uint8_t op)
{
    return op == RFN_OP_END_OLD_OPT || op == RFN_OP_END_OLD_DIR;
}

#endif /* RFN_MATCH_IMPL_H */

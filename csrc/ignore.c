/* gitwildmatch patterns compiled the way pathspec compiles them, and
 * IgnoreSpec, answering match_file() exactly like pathspec.PathSpec. Three
 * dialects, found by differential testing of every release flash accepts:
 *
 *   1.1   pathspec >= 1.1.0: GitIgnoreSpecPattern (registered as
 *         "gitwildmatch"); a pattern with an unterminated "[" is discarded.
 *   1.0   pathspec 1.0.x: the same, but an unterminated "[" is a literal "["
 *         (so "[\" ends in a lone escape: an invalid pattern).
 *   0.11  pathspec 0.11.0 - 0.12.x: GitWildMatchPattern, as 1.0 for "[",
 *         and its own translation: the pattern is stripped on both sides (only
 *         on the left when it ends in "\ "); "**" runs are collapsed before the
 *         leading/trailing "/" rules; every program is anchored at both ends
 *         ("(?:/.*)?$" after the last segment, "/.*$" for a trailing "**", so
 *         a "\n" after the matched part fails unless it is the path's last
 *         code point); "**" alone is "^[^/]+(?:/.*)?$", "**" + "/" is
 *         "^.+/.*$", and "*", "*" + "/" are not special-cased.
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
#include "rfn.h"

#include <string.h>

/* Per-call scratch up to this size lives on the stack: paths of up to ~900
 * code points, i.e. every path a walk normally meets. */
#define RFN_MATCH_STACK_BYTES 16384

/* ---- compiled form ---------------------------------------------------------- */

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

/* The pathspec release line a matcher answers like (see the top). */
enum rfn_dialect {
    RFN_DIALECT_0_11,
    RFN_DIALECT_1_0,
    RFN_DIALECT_1_1,
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

/* Only patterns that can match are kept; no-ops are dropped at compile time. */
struct rfn_matcher {
    rfn_pat *pats;
    size_t npats;
    rfn_tok *toks;
    uint32_t *pool;
    int dialect;
};

static int
rfn_is_old_end(uint8_t op)
{
    return op == RFN_OP_END_OLD_OPT || op == RFN_OP_END_OLD_DIR;
}


/* ---- UTF-8 like os.fsdecode ------------------------------------------------- */

static int
rfn_is_cont(unsigned char b)
{
    return (b & 0xC0) == 0x80;
}

/* Length of the well-formed UTF-8 sequence at s (Python's decoder rules:
 * no overlongs, no surrogates, nothing above U+10FFFF), or 0. */
static size_t
rfn_utf8_seq(const unsigned char *s, size_t avail, uint32_t *cp)
{
    unsigned char b = s[0];
    if (b >= 0xC2 && b <= 0xDF && avail >= 2 && rfn_is_cont(s[1])) {
        *cp = ((uint32_t)(b & 0x1F) << 6) | (s[1] & 0x3F);
        return 2;
    }
    if (b >= 0xE0 && b <= 0xEF && avail >= 3 && rfn_is_cont(s[1]) && rfn_is_cont(s[2])) {
        if ((b == 0xE0 && s[1] < 0xA0) || (b == 0xED && s[1] > 0x9F)) {
            return 0;
        }
        *cp = ((uint32_t)(b & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        return 3;
    }
    if (b >= 0xF0 && b <= 0xF4 && avail >= 4 && rfn_is_cont(s[1]) && rfn_is_cont(s[2])
        && rfn_is_cont(s[3])) {
        if ((b == 0xF0 && s[1] < 0x90) || (b == 0xF4 && s[1] > 0x8F)) {
            return 0;
        }
        *cp = ((uint32_t)(b & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12)
              | ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
        return 4;
    }
    return 0;
}

size_t
rfn_fsdecode_cps(const unsigned char *s, size_t len, uint32_t *out)
{
    size_t i = 0, o = 0;
    while (i < len) {
        uint32_t cp;
        size_t k;
        if (s[i] < 0x80) {
            out[o++] = s[i++];
        } else if ((k = rfn_utf8_seq(s + i, len - i, &cp)) != 0) {
            out[o++] = cp;
            i += k;
        } else {
            /* Python's decoder reports the maximal ill-formed subpart; its bytes
             * are lead or continuation bytes that cannot start a sequence of
             * their own, so escaping one byte at a time gives the same str. */
            out[o++] = 0xDC00u + s[i++];
        }
    }
    return o;
}

size_t
rfn_utf8_encode_cps(const uint32_t *cps, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = cps[i];
        if (c < 0x80) {
            out[o++] = (char)c;
        }
        else if (c < 0x800) {
            out[o++] = (char)(0xC0 | (c >> 6));
            out[o++] = (char)(0x80 | (c & 0x3F));
        }
        else if (c < 0x10000) {
            out[o++] = (char)(0xE0 | (c >> 12));
            out[o++] = (char)(0x80 | ((c >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (c & 0x3F));
        }
        else {
            out[o++] = (char)(0xF0 | (c >> 18));
            out[o++] = (char)(0x80 | ((c >> 12) & 0x3F));
            out[o++] = (char)(0x80 | ((c >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (c & 0x3F));
        }
    }
    return o;
}

/* ---- matching --------------------------------------------------------------- */

/* Position sets are sorted arrays of distinct positions 0..n. */
typedef struct {
    size_t *a;
    size_t *b;
    size_t *ends;       /* where a final token can succeed: each "/", n, and n-1 */
    size_t nends;       /* when the path ends in "\n"; sorted */
    size_t nl_stop;     /* 1 + the last "\n" before the final code point, or 0 */
    unsigned char *mark;
} rfn_scratch;

/* 1 + the index of the last "\n" in cps[0..n-1) (the final code point
 * excluded), or 0: ".*$" from q succeeds iff q >= this. */
static size_t
rfn_nl_stop(const uint32_t *cps, size_t n)
{
    for (size_t i = n >= 1 ? n - 1 : 0; i-- > 0;) {
        if (cps[i] == '\n') {
            return i + 1;
        }
    }
    return 0;
}

/* 0.11's "^.+/.*$": no "\n" but a final one, and a "/" after the first code point. */
static int
rfn_old_dirs_match(const uint32_t *cps, size_t n, size_t nl_stop)
{
    if (nl_stop != 0) {
        return 0;
    }
    for (size_t k = 1; k < n; k++) {
        if (cps[k] == '/') {
            return 1;
        }
    }
    return 0;
}

static int
rfn_class_has(const rfn_matcher *m, const rfn_tok *t, uint32_t c)
{
    const uint32_t *r = m->pool + t->off;
    for (size_t i = 0; i < t->len; i++) {
        if (r[2 * i] <= c && c <= r[2 * i + 1]) {
            return !t->negate;
        }
    }
    return t->negate;
}

/* One code point consumed by STR/ANY/CLASS at every position of in. */
static size_t
rfn_step_fixed(const rfn_matcher *m, const rfn_tok *t, const uint32_t *cps, size_t n,
               const size_t *in, size_t nin, size_t *out)
{
    size_t nout = 0;
    for (size_t i = 0; i < nin; i++) {
        size_t p = in[i];
        int ok;
        if (t->op == RFN_OP_STR) {
            ok = t->len <= n - p
                 && memcmp(cps + p, m->pool + t->off, t->len * sizeof(uint32_t)) == 0;
            if (ok) {
                out[nout++] = p + t->len;
            }
            continue;
        }
        ok = p < n && (t->op == RFN_OP_ANY ? cps[p] != '/' : rfn_class_has(m, t, cps[p]));
        if (ok) {
            out[nout++] = p + 1;
        }
    }
    return nout;
}

/* [^/]* (plus = 0) or [^/]+ (plus = 1) after every position of in. Each run of
 * non-slash code points is walked once. */
static size_t
rfn_step_run(const uint32_t *cps, size_t n, const size_t *in, size_t nin, size_t *out, int plus)
{
    size_t nout = 0, stop = 0;
    int have = 0;
    for (size_t i = 0; i < nin; i++) {
        size_t q = in[i];
        if (have && q <= stop) {
            continue;   /* inside the run already walked: nothing new */
        }
        if (!plus) {
            out[nout++] = q;
        }
        while (q < n && cps[q] != '/') {
            out[nout++] = ++q;
        }
        stop = q;
        have = 1;
    }
    return nout;
}

/* ^(?:.+/)? from position 0: 0, and every q >= 2 right after a "/" with no
 * "\n" before it. */
static size_t
rfn_step_lead(const uint32_t *cps, size_t n, size_t *out)
{
    size_t nout = 0;
    out[nout++] = 0;
    for (size_t k = 0; k < n && cps[k] != '\n'; k++) {
        if (cps[k] == '/' && k >= 1) {
            out[nout++] = k + 1;
        }
    }
    return nout;
}

/* (?:/.+)? : in itself, plus p+2..(next "\n" or n) for every p in in at a "/". */
static size_t
rfn_step_inner(const uint32_t *cps, size_t n, const size_t *in, size_t nin, size_t *out,
               unsigned char *mark)
{
    size_t lo = in[0], nout = 0, reach = 0;
    memset(mark + lo, 0, n + 1 - lo);
    for (size_t i = 0; i < nin; i++) {
        size_t p = in[i];
        mark[p] = 1;
        if (p >= n || cps[p] != '/') {
            continue;
        }
        size_t q = p + 1 > reach ? p + 1 : reach;
        while (q < n && cps[q] != '\n') {
            q++;
            mark[q] = 1;
        }
        reach = q;
    }
    for (size_t q = lo; q <= n; q++) {
        if (mark[q]) {
            out[nout++] = q;
        }
    }
    return nout;
}

static int
rfn_final(const rfn_tok *t, const uint32_t *cps, size_t n, const size_t *in, size_t nin,
          size_t nl_stop)
{
    int old = rfn_is_old_end(t->op);
    int opt = t->op == RFN_OP_END_OPT || t->op == RFN_OP_END_OLD_OPT;
    for (size_t i = 0; i < nin; i++) {
        size_t p = in[i];
        if (p < n && cps[p] == '/' && (!old || p + 1 >= nl_stop)) {
            return 1;
        }
        if (opt && (p == n || (p + 1 == n && cps[p] == '\n'))) {
            return 1;
        }
    }
    return 0;
}

/* Quick reject for programs ending in a literal and the final token (most
 * real patterns: "*.pyc", "__pycache__/", "docs/"...): the literal must sit
 * right before a place where the final token succeeds. */
static int
rfn_tail_possible(const rfn_matcher *m, const rfn_pat *pat, const uint32_t *cps, size_t n,
                  const rfn_scratch *sc)
{
    if (pat->ntok < 2) {
        return 1;
    }
    const rfn_tok *last = &m->toks[pat->tok_off + pat->ntok - 1];
    const rfn_tok *lit = last - 1;
    if (lit->op != RFN_OP_STR) {
        return 1;
    }
    for (size_t i = 0; i < sc->nends; i++) {
        size_t e = sc->ends[i];
        if ((last->op == RFN_OP_END_DIR || last->op == RFN_OP_END_OLD_DIR) && (e == n || cps[e] != '/')) {
            continue;
        }
        if (e >= lit->len
            && memcmp(cps + e - lit->len, m->pool + lit->off, lit->len * sizeof(uint32_t)) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Runs a program's tokens up to its final END_OPT/END_DIR and returns that
 * token, with *set (*nset entries) the sorted positions reaching it; NULL once
 * no position survives. */
static const rfn_tok *
rfn_run_body(const rfn_matcher *m, const rfn_pat *pat, const uint32_t *cps, size_t n,
             const rfn_scratch *sc, const size_t **set, size_t *nset)
{
    size_t *in = sc->a, *out = sc->b, nin = 1;
    in[0] = 0;
    for (size_t k = 0; k < pat->ntok; k++) {
        const rfn_tok *t = &m->toks[pat->tok_off + k];
        size_t nout;
        switch (t->op) {
        case RFN_OP_END_OPT:
        case RFN_OP_END_DIR:
        case RFN_OP_END_OLD_OPT:
        case RFN_OP_END_OLD_DIR:
            *set = in;
            *nset = nin;
            return t;
        case RFN_OP_LEAD:
            nout = rfn_step_lead(cps, n, out);
            break;
        case RFN_OP_INNER:
            nout = rfn_step_inner(cps, n, in, nin, out, sc->mark);
            break;
        case RFN_OP_STAR:
        case RFN_OP_PLUS:
            nout = rfn_step_run(cps, n, in, nin, out, t->op == RFN_OP_PLUS);
            break;
        default:
            nout = rfn_step_fixed(m, t, cps, n, in, nin, out);
            break;
        }
        if (nout == 0) {
            return NULL;
        }
        size_t *tmp = in;
        in = out;
        out = tmp;
        nin = nout;
    }
    return NULL;   /* unreachable: every program ends with END_OPT or END_DIR */
}

static int
rfn_run_program(const rfn_matcher *m, const rfn_pat *pat, const uint32_t *cps, size_t n,
                const rfn_scratch *sc)
{
    const size_t *in;
    size_t nin;
    if (!rfn_tail_possible(m, pat, cps, n, sc)) {
        return 0;
    }
    const rfn_tok *end = rfn_run_body(m, pat, cps, n, sc, &in, &nin);
    return end != NULL && rfn_final(end, cps, n, in, nin, sc->nl_stop);
}

/* What the final token of a program is asked. */
enum rfn_final_mode {
    RFN_FINAL_FULL,     /* match_file(): a "/" anywhere, or (END_OPT) the end */
    RFN_FINAL_TAIL,     /* the walk: only the entry's own end, see rfn_matcher_walk_entry */
};

/* RFN_FINAL_TAIL: the program's final in-set, read at the entry's end only.
 * *at_end: the path itself matches there (END_OPT: at n, or at n-1 before a
 * final "\n"); *slash_after: it would match with a "/" appended at n (what a
 * directory passes on to everything below it). Quick reject: a program ending
 * in a literal needs that literal to end at n, or at n-1 before a "\n". */
static void
rfn_run_tail(const rfn_matcher *m, const rfn_pat *pat, const uint32_t *cps, size_t n,
             const rfn_scratch *sc, int *at_end, int *slash_after)
{
    *at_end = *slash_after = 0;
    const rfn_tok *last = &m->toks[pat->tok_off + pat->ntok - 1];
    int opt = last->op == RFN_OP_END_OPT || last->op == RFN_OP_END_OLD_OPT;
    int nl_end = opt && n >= 1 && cps[n - 1] == '\n';
    if (pat->ntok >= 2 && last[-1].op == RFN_OP_STR) {
        const rfn_tok *lit = last - 1;
        size_t k = lit->len;
        int ok = k <= n && memcmp(cps + n - k, m->pool + lit->off, k * sizeof(uint32_t)) == 0;
        if (!ok && nl_end) {
            ok = k <= n - 1
                 && memcmp(cps + n - 1 - k, m->pool + lit->off, k * sizeof(uint32_t)) == 0;
        }
        if (!ok) {
            return;
        }
    }
    const size_t *in;
    size_t nin;
    const rfn_tok *end = rfn_run_body(m, pat, cps, n, sc, &in, &nin);
    if (end == NULL) {
        return;
    }
    /* in is sorted and holds positions <= n */
    int has_n = in[nin - 1] == n;
    int has_n1 = nl_end && (in[nin - 1] == n - 1 || (nin >= 2 && in[nin - 2] == n - 1));
    *slash_after = has_n;
    *at_end = opt && (has_n || has_n1);
}

static int
rfn_pat_matches(const rfn_matcher *m, const rfn_pat *pat, const uint32_t *cps, size_t n,
                const rfn_scratch *sc)
{
    switch (pat->kind) {
    case RFN_KIND_ANY_CHAR:
        for (size_t i = 0; i < n; i++) {
            if (cps[i] != '\n') {
                return 1;
            }
        }
        return 0;
    case RFN_KIND_SLASH:
        for (size_t i = 0; i < n; i++) {
            if (cps[i] == '/') {
                return 1;
            }
        }
        return 0;
    case RFN_KIND_OLD_DIRS:
        return rfn_old_dirs_match(cps, n, sc->nl_stop);
    default:
        return rfn_run_program(m, pat, cps, n, sc);
    }
}

static void
rfn_find_ends(const uint32_t *cps, size_t n, rfn_scratch *sc)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (cps[i] == '/') {
            sc->ends[k++] = i;
        }
    }
    if (n >= 1 && cps[n - 1] == '\n') {
        sc->ends[k++] = n - 1;
    }
    sc->ends[k++] = n;
    sc->nends = k;
    sc->nl_stop = rfn_nl_stop(cps, n);
}

/* The last pattern that matches decides. */
static int
rfn_matcher_eval(const rfn_matcher *m, const uint32_t *cps, size_t n, rfn_scratch *sc)
{
    rfn_find_ends(cps, n, sc);
    for (size_t i = m->npats; i-- > 0;) {
        if (rfn_pat_matches(m, &m->pats[i], cps, n, sc)) {
            return m->pats[i].include;
        }
    }
    return 0;
}

static size_t
rfn_scratch_bytes(size_t n)
{
    return (n + 1) * (3 * sizeof(size_t) + 1) + sizeof(size_t);
}

/* Whether the scratch for n code points (plus a code point copy) can be sized
 * without overflowing size_t. */
static int
rfn_scratch_fits(size_t n)
{
    return n < (SIZE_MAX / 2) / (3 * sizeof(size_t) + 1 + sizeof(uint32_t)) - 2;
}

/* mem: rfn_scratch_bytes(n), aligned for size_t. */
static void
rfn_scratch_init(rfn_scratch *sc, void *mem, size_t n)
{
    sc->a = mem;
    sc->b = sc->a + (n + 1);
    sc->ends = sc->b + (n + 1);
    sc->mark = (unsigned char *)(sc->ends + (n + 2));
}

int
rfn_matcher_ignores(const rfn_matcher *m, const uint32_t *cps, size_t n)
{
    size_t stack_mem[RFN_MATCH_STACK_BYTES / sizeof(size_t)];
    void *mem = stack_mem;
    rfn_scratch sc;
    if (!rfn_scratch_fits(n)) {
        return -1;
    }
    if (rfn_scratch_bytes(n) > sizeof(stack_mem)
        && (mem = PyMem_RawMalloc(rfn_scratch_bytes(n))) == NULL) {
        return -1;
    }
    rfn_scratch_init(&sc, mem, n);
    int r = rfn_matcher_eval(m, cps, n, &sc);
    if (mem != stack_mem) {
        PyMem_RawFree(mem);
    }
    return r;
}

/* ---- matching during a walk, one level at a time ------------------------------
 *
 * A program's in-set at position q depends only on cps[0..q): every step reads
 * the path left to right. So "pattern i matches with its final token at a "/"
 * inside P" is a property of the directory P alone, inherited by everything
 * below it. A directory keeps one bit per pattern,
 *
 *   bits_i(P) = pattern i succeeds at some "/" of P + "/",
 *
 * and an entry E = P/name (names hold no "/") matches pattern i exactly when
 * bits_i(P) is set or pattern i succeeds at E's own end. Only that end is
 * examined, in O(1) for a program ending in a literal (every built-in
 * pattern): a walk over a tree 10,000 directories deep costs what its
 * entries cost, not their depth squared. */

size_t
rfn_matcher_bits_len(const rfn_matcher *m)
{
    return (m->npats + 7) / 8;
}

static int
rfn_bit(const unsigned char *bits, size_t i)
{
    return bits != NULL && (bits[i / 8] >> (i % 8)) & 1;
}

static void
rfn_set_bit(unsigned char *bits, size_t i)
{
    bits[i / 8] = (unsigned char)(bits[i / 8] | (1u << (i % 8)));
}

/* Per-call scratch for n code points: on the stack, or PyMem_RawMalloc'd. */
typedef struct {
    size_t stack_mem[RFN_MATCH_STACK_BYTES / sizeof(size_t)];
    void *mem;
    rfn_scratch sc;
} rfn_scratch_holder;

static int
rfn_scratch_open(rfn_scratch_holder *h, size_t n)
{
    h->mem = h->stack_mem;
    if (!rfn_scratch_fits(n)) {
        return -1;
    }
    if (rfn_scratch_bytes(n) > sizeof(h->stack_mem)
        && (h->mem = PyMem_RawMalloc(rfn_scratch_bytes(n))) == NULL) {
        return -1;
    }
    rfn_scratch_init(&h->sc, h->mem, n);
    return 0;
}

static void
rfn_scratch_close(rfn_scratch_holder *h)
{
    if (h->mem != h->stack_mem) {
        PyMem_RawFree(h->mem);
    }
}

int
rfn_matcher_walk_entry(const rfn_matcher *m, const uint32_t *cps, size_t n,
                       const unsigned char *parent_bits, unsigned char *child_bits)
{
    rfn_scratch_holder h;
    if (rfn_scratch_open(&h, n) < 0) {
        return -1;
    }
    if (child_bits != NULL) {
        memset(child_bits, 0, rfn_matcher_bits_len(m));
    }
    int result = -2;    /* undecided */
    /* 0.11's programs end in ".*$": a bit inherited from the directory means
     * the pattern matched at a "/" with no "\n" after it in the directory's
     * path; it holds for this entry when its name has no "\n" but a final
     * one, and passes on when the name has none. */
    size_t name = n;
    while (name > 0 && cps[name - 1] != '/') {
        name--;
    }
    int name_nl_inner = 0, name_nl_last = n > name && cps[n - 1] == '\n';
    for (size_t k = name; k + 1 < n && !name_nl_inner; k++) {
        name_nl_inner = cps[k] == '\n';
    }
    for (size_t i = m->npats; i-- > 0;) {
        const rfn_pat *pat = &m->pats[i];
        int matched, below;
        int old = pat->kind == RFN_KIND_PROGRAM && rfn_is_old_end(m->toks[pat->tok_off + pat->ntok - 1].op);
        int bit = rfn_bit(parent_bits, i);
        if (bit && (!old || (!name_nl_inner && !name_nl_last))) {
            matched = below = 1;
        } else if (pat->kind == RFN_KIND_PROGRAM) {
            rfn_run_tail(m, pat, cps, n, &h.sc, &matched, &below);
            if (bit) {   /* old, and the name holds a "\n" */
                matched = matched || !name_nl_inner;
            }
        } else if (pat->kind == RFN_KIND_OLD_DIRS) {
            /* decided on the whole path every time; nothing inherited */
            matched = rfn_old_dirs_match(cps, n, rfn_nl_stop(cps, n));
            below = 0;
        } else {
            /* "." and "/" anywhere: P + "/" holds a "/" (not "\n"), so the
             * bit is always set below the base; at the base, E is the name. */
            matched = 0;
            for (size_t k = 0; k < n && !matched; k++) {
                matched = pat->kind == RFN_KIND_ANY_CHAR ? cps[k] != '\n' : cps[k] == '/';
            }
            below = 1;
        }
        if (matched && result == -2) {
            result = pat->include;
            if (child_bits == NULL) {
                break;
            }
        }
        if (below && child_bits != NULL) {
            rfn_set_bit(child_bits, i);
        }
    }
    rfn_scratch_close(&h);
    return result == -2 ? 0 : result;
}

int
rfn_matcher_prefix_bits(const rfn_matcher *m, const uint32_t *cps, size_t n,
                        unsigned char *bits)
{
    /* Level by level: each "/"-separated part of cps is an entry under the
     * parts before it. Quadratic in the number of parts, but run once per
     * walk, on the walk root's own path. */
    size_t len = rfn_matcher_bits_len(m);
    unsigned char *parent = PyMem_RawMalloc(len ? len : 1);
    if (parent == NULL) {
        return -1;
    }
    int have_parent = 0, rc = 0;
    for (size_t end = 0; end <= n && rc == 0; end++) {
        if (end < n && cps[end] != '/') {
            continue;
        }
        if (rfn_matcher_walk_entry(m, cps, end, have_parent ? parent : NULL, bits) < 0) {
            rc = -1;
        }
        memcpy(parent, bits, len);
        have_parent = 1;
    }
    PyMem_RawFree(parent);
    return rc;
}

/* ---- compiling ---------------------------------------------------------------- */

typedef struct {
    rfn_tok *toks;
    size_t ntoks, cap_toks;
    uint32_t *pool;
    size_t npool, cap_pool;
    rfn_pat *pats;
    size_t npats, cap_pats;
    int dialect;
} rfn_builder;

/* Why one pattern did not compile. */
enum rfn_verdict {
    RFN_V_OK,
    RFN_V_NOOP,         /* blank, comment, "/", or discarded (unterminated "[") */
    RFN_V_INVALID,      /* pathspec raises GitIgnorePatternError */
    RFN_V_BAD_RANGE,    /* pathspec's regex fails: re.error("bad character range") */
    RFN_V_NOMEM,
};

typedef struct {
    enum rfn_verdict v;
    const char *why;        /* INVALID */
    int bad_range;          /* a reversed range was seen; reported only if the */
    uint32_t lo, hi;        /* rest of the pattern translates (re.compile is last) */
} rfn_outcome;

static int
rfn_grow(void **buf, size_t *cap, size_t need, size_t item)
{
    return rfn_vec_grow_with(buf, cap, need, item, 16, PyMem_Realloc);  /* os.c */
}

static int
rfn_emit(rfn_builder *b, uint8_t op)
{
    /* Two stars in a row ("a**b" inside a segment) are one star. */
    if (op == RFN_OP_STAR && b->ntoks > 0 && b->toks[b->ntoks - 1].op == RFN_OP_STAR) {
        return 0;
    }
    if (rfn_grow((void **)&b->toks, &b->cap_toks, b->ntoks + 1, sizeof(rfn_tok)) < 0) {
        return -1;
    }
    rfn_tok *t = &b->toks[b->ntoks++];
    t->op = op;
    t->negate = 0;
    t->off = b->npool;
    t->len = 0;
    return 0;
}

static int
rfn_pool_put(rfn_builder *b, uint32_t cp)
{
    if (rfn_grow((void **)&b->pool, &b->cap_pool, b->npool + 1, sizeof(uint32_t)) < 0) {
        return -1;
    }
    b->pool[b->npool++] = cp;
    return 0;
}

/* A literal code point, appended to the previous STR token when it is the
 * last thing in the pool. */
static int
rfn_emit_lit(rfn_builder *b, uint32_t cp)
{
    rfn_tok *last = b->ntoks > 0 ? &b->toks[b->ntoks - 1] : NULL;
    if (last == NULL || last->op != RFN_OP_STR || last->off + last->len != b->npool) {
        if (rfn_emit(b, RFN_OP_STR) < 0) {
            return -1;
        }
    }
    if (rfn_pool_put(b, cp) < 0) {
        return -1;
    }
    b->toks[b->ntoks - 1].len++;
    return 0;
}

static int
rfn_class_add(rfn_builder *b, uint32_t lo, uint32_t hi)
{
    if (rfn_pool_put(b, lo) < 0 || rfn_pool_put(b, hi) < 0) {
        return -1;
    }
    b->toks[b->ntoks - 1].len++;
    return 0;
}

/* The bracket expression body c[0:k] (the closing "]" excluded), read as
 * sre_parse reads "[" + body + "]" once pathspec has doubled every backslash:
 * each code point is a literal; "x-y" is a range; "x-" right before the "]"
 * is x and "-". pathspec only ever hands over a body whose first "]" (if any)
 * is its first code point, which sre also takes literally. */
static int
rfn_compile_class(rfn_builder *b, const Py_UCS4 *c, size_t k, int negate, rfn_outcome *out)
{
    if (rfn_emit(b, RFN_OP_CLASS) < 0) {
        return -1;
    }
    b->toks[b->ntoks - 1].negate = (uint8_t)negate;
    size_t i = 0;
    while (i < k) {
        uint32_t lo = c[i++];
        uint32_t hi = lo;
        if (i < k && c[i] == '-') {
            i++;
            if (i == k) {
                if (rfn_class_add(b, lo, lo) < 0) {
                    return -1;
                }
                hi = '-';
                lo = '-';
            } else {
                hi = c[i++];
                if (hi < lo && !out->bad_range) {
                    out->bad_range = 1;
                    out->lo = lo;
                    out->hi = hi;
                }
            }
        }
        if (rfn_class_add(b, lo, hi) < 0) {
            return -1;
        }
    }
    return 0;
}

/* Where the bracket expression opened at s[i-1] closes, as pathspec scans
 * it, or end when it never does. */
static size_t
rfn_bracket_end(const Py_UCS4 *s, size_t i, size_t end)
{
    size_t j = i;
    if (j < end && (s[j] == '!' || s[j] == '^')) {
        j++;
    }
    if (j < end && s[j] == ']') {
        j++;
    }
    while (j < end && s[j] != ']') {
        j++;
    }
    return j;
}

/* One path segment that is neither "**" nor "*". Returns 0, or -1 with
 * out->v set (NOMEM when left at OK). */
static int
rfn_compile_glob(rfn_builder *b, const Py_UCS4 *s, size_t end, rfn_outcome *out)
{
    size_t i = 0;
    int escape = 0, rc = 0;
    while (i < end && rc == 0) {
        Py_UCS4 ch = s[i++];
        if (escape) {
            escape = 0;
            rc = rfn_emit_lit(b, ch);
        } else if (ch == '\\') {
            escape = 1;
        } else if (ch == '*') {
            rc = rfn_emit(b, RFN_OP_STAR);
        } else if (ch == '?') {
            rc = rfn_emit(b, RFN_OP_ANY);
        } else if (ch == '[') {
            size_t j = rfn_bracket_end(s, i, end);
            if (j >= end && b->dialect != RFN_DIALECT_1_1) {
                rc = rfn_emit_lit(b, '[');  /* before 1.1: a literal "[" */
                continue;
            }
            if (j >= end) {
                out->v = RFN_V_NOOP;    /* pathspec 1.1 drops the whole pattern */
                return -1;
            }
            int negate = s[i] == '!' || s[i] == '^';
            i += (size_t)negate;
            rc = rfn_compile_class(b, s + i, j - i, negate, out);
            i = j + 1;
        } else {
            rc = rfn_emit_lit(b, ch);
        }
    }
    if (rc == 0 && escape) {
        out->v = RFN_V_INVALID;
        out->why = "escape character with nothing to escape";
        return -1;
    }
    return rc;
}

/* ---- segments ------------------------------------------------------------------ */

typedef struct {
    size_t start;
    size_t len;
    int dstar;          /* the segment text is "**" */
} rfn_seg;

static int
rfn_is_text(const Py_UCS4 *s, const rfn_seg *g, const char *text)
{
    size_t k = strlen(text);
    if (g->dstar) {
        return strcmp(text, "**") == 0;
    }
    if (g->len != k) {
        return 0;
    }
    for (size_t i = 0; i < k; i++) {
        if (s[g->start + i] != (Py_UCS4)(unsigned char)text[i]) {
            return 0;
        }
    }
    return 1;
}

/* Split s on "/" into segs (capacity: number of "/" + 2, one slot left free in
 * front for an inserted "**"). Returns the first used index; *count set. */
static size_t
rfn_split(const Py_UCS4 *s, size_t len, rfn_seg *segs, size_t *count)
{
    size_t n = 1, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '/') {
            rfn_seg *g = &segs[n++];
            g->start = start;
            g->len = i - start;
            g->dstar = g->len == 2 && s[start] == '*' && s[start + 1] == '*';
            start = i + 1;
        }
    }
    *count = n - 1;
    return 1;
}

/* pathspec's segment normalization. Returns the kind; for a program, *first
 * and *count describe the normalized segments. */
static int
rfn_normalize(const Py_UCS4 *s, rfn_seg *segs, size_t *first, size_t *count, int is_dir,
              rfn_outcome *out)
{
    size_t f = *first, c = *count;
    static const rfn_seg dstar = {0, 2, 1};
    if (segs[f].len == 0) {
        f++;
        c--;
    } else if ((c == 1 || (c == 2 && segs[f + 1].len == 0)) && !segs[f].dstar) {
        segs[--f] = dstar;
        c++;
    }
    if (c == 0) {
        out->v = RFN_V_INVALID;
        out->why = "pattern normalized to nothing";
        return -1;
    }
    if (segs[f + c - 1].len == 0) {
        segs[f + c - 1] = dstar;
    }
    size_t w = f + 1;
    for (size_t r = f + 1; r < f + c; r++) {
        if (!(segs[r].dstar && segs[w - 1].dstar)) {
            segs[w++] = segs[r];
        }
    }
    c = w - f;
    *first = f;
    *count = c;
    if (c == 1 && segs[f].dstar) {
        return is_dir ? RFN_KIND_SLASH : RFN_KIND_ANY_CHAR;
    }
    if (c == 2 && segs[f].dstar && rfn_is_text(s, &segs[f + 1], "*")) {
        return RFN_KIND_ANY_CHAR;
    }
    if (c == 3 && segs[f].dstar && rfn_is_text(s, &segs[f + 1], "*") && segs[f + 2].dstar) {
        return RFN_KIND_SLASH;
    }
    return RFN_KIND_PROGRAM;
}

static int
rfn_translate(rfn_builder *b, const Py_UCS4 *s, const rfn_seg *segs, size_t count,
              rfn_outcome *out)
{
    int need_slash = 0;
    for (size_t i = 0; i < count; i++) {
        const rfn_seg *g = &segs[i];
        int rc;
        if (g->dstar) {
            rc = rfn_emit(b, i == 0 ? RFN_OP_LEAD : i + 1 < count ? RFN_OP_INNER : RFN_OP_END_DIR);
            need_slash = need_slash || (i > 0 && i + 1 < count);
        } else {
            rc = need_slash ? rfn_emit_lit(b, '/') : 0;
            if (rc == 0 && g->len == 1 && s[g->start] == '*') {
                rc = rfn_emit(b, RFN_OP_PLUS);
            } else if (rc == 0) {
                rc = rfn_compile_glob(b, s + g->start, g->len, out);
            }
            if (rc == 0 && i + 1 == count) {
                rc = rfn_emit(b, RFN_OP_END_OPT);
            }
            need_slash = 1;
        }
        if (rc < 0) {
            return -1;
        }
    }
    return 0;
}

/* pathspec 0.11/0.12's segment normalization (GitWildMatchPattern). */
static int
rfn_normalize_old(rfn_seg *segs, size_t *first, size_t *count, rfn_outcome *out)
{
    size_t f = *first, c = *count;
    static const rfn_seg dstar = {0, 2, 1};
    size_t w = f + 1;
    for (size_t r = f + 1; r < f + c; r++) {
        if (!(segs[r].dstar && segs[w - 1].dstar)) {
            segs[w++] = segs[r];
        }
    }
    c = w - f;
    if (c == 2 && segs[f].dstar && segs[f + 1].len == 0) {
        return RFN_KIND_OLD_DIRS;
    }
    if (segs[f].len == 0) {
        f++;
        c--;
    } else if ((c == 1 || (c == 2 && segs[f + 1].len == 0)) && !segs[f].dstar) {
        segs[--f] = dstar;
        c++;
    }
    if (c == 0) {
        out->v = RFN_V_INVALID;
        out->why = "pattern normalized to nothing";
        return -1;
    }
    if (c > 1 && segs[f + c - 1].len == 0) {
        segs[f + c - 1] = dstar;
    }
    *first = f;
    *count = c;
    return RFN_KIND_PROGRAM;
}

static int
rfn_translate_old(rfn_builder *b, const Py_UCS4 *s, const rfn_seg *segs, size_t count,
                  rfn_outcome *out)
{
    int need_slash = 0;
    for (size_t i = 0; i < count; i++) {
        const rfn_seg *g = &segs[i];
        int last = i + 1 == count, rc;
        if (g->dstar && i == 0 && last) {
            rc = rfn_emit(b, RFN_OP_PLUS) < 0 ? -1 : rfn_emit(b, RFN_OP_END_OLD_OPT);
        } else if (g->dstar) {
            rc = rfn_emit(b, i == 0 ? RFN_OP_LEAD : last ? RFN_OP_END_OLD_DIR : RFN_OP_INNER);
            need_slash = i > 0 && !last ? 1 : need_slash;
        } else {
            rc = need_slash ? rfn_emit_lit(b, '/') : 0;
            if (rc == 0 && g->len == 1 && s[g->start] == '*') {
                rc = rfn_emit(b, RFN_OP_PLUS);
            } else if (rc == 0) {
                rc = rfn_compile_glob(b, s + g->start, g->len, out);
            }
            if (rc == 0 && last) {
                rc = rfn_emit(b, RFN_OP_END_OLD_OPT);
            }
            need_slash = 1;
        }
        if (rc < 0) {
            return -1;
        }
    }
    return 0;
}

static int
rfn_add_pat(rfn_builder *b, int kind, int include, size_t tok_off)
{
    if (rfn_grow((void **)&b->pats, &b->cap_pats, b->npats + 1, sizeof(rfn_pat)) < 0) {
        return -1;
    }
    rfn_pat *p = &b->pats[b->npats++];
    p->kind = (uint8_t)kind;
    p->include = (uint8_t)include;
    p->tok_off = tok_off;
    p->ntok = b->ntoks - tok_off;
    return 0;
}

/* Split, normalize and translate the body of a pattern (after "!"). */
static int
rfn_compile_body(rfn_builder *b, const Py_UCS4 *s, size_t len, int include, rfn_outcome *out)
{
    size_t nslash = 0;
    for (size_t i = 0; i < len; i++) {
        nslash += s[i] == '/';
    }
    rfn_seg *segs = PyMem_New(rfn_seg, nslash + 2);
    if (segs == NULL) {
        return -1;
    }
    size_t count, first = rfn_split(s, len, segs, &count);
    int is_dir = segs[first + count - 1].len == 0;
    size_t tok_off = b->ntoks;
    int old = b->dialect == RFN_DIALECT_0_11;
    int kind = old ? rfn_normalize_old(segs, &first, &count, out)
                   : rfn_normalize(s, segs, &first, &count, is_dir, out);
    int rc = kind < 0 ? -1 : 0;
    if (rc == 0 && kind == RFN_KIND_PROGRAM) {
        rc = old ? rfn_translate_old(b, s, segs + first, count, out)
                 : rfn_translate(b, s, segs + first, count, out);
    }
    PyMem_Free(segs);
    if (rc == 0 && out->bad_range) {
        out->v = RFN_V_BAD_RANGE;
        return -1;
    }
    if (rc == 0) {
        rc = rfn_add_pat(b, kind, include, tok_off);
    }
    return rc;
}

/* rstrip() with str.isspace semantics, unless the pattern ends with "\ ". */
static size_t
rfn_strip_len(const Py_UCS4 *s, size_t len)
{
    if (len >= 2 && s[len - 1] == ' ' && s[len - 2] == '\\') {
        return len;
    }
    while (len > 0 && Py_UNICODE_ISSPACE(s[len - 1])) {
        len--;
    }
    return len;
}

/* Compile one pattern into b. On anything but OK, b is rolled back. */
static void
rfn_compile_pattern(rfn_builder *b, const Py_UCS4 *s, size_t len, rfn_outcome *out)
{
    size_t ntoks = b->ntoks, npool = b->npool;
    out->v = RFN_V_OK;
    out->bad_range = 0;
    if (b->dialect == RFN_DIALECT_0_11) {
        /* str.strip(), or str.lstrip() when the pattern ends in "\ " */
        size_t lead = 0;
        while (lead < len && Py_UNICODE_ISSPACE(s[lead])) {
            lead++;
        }
        s += lead;
        len -= lead;
    }
    len = rfn_strip_len(s, len);
    if (len == 0 || s[0] == '#' || (len == 1 && s[0] == '/')) {
        out->v = RFN_V_NOOP;
        return;
    }
    int include = s[0] != '!';
    if (rfn_compile_body(b, s + !include, len - !include, include, out) < 0) {
        if (out->v == RFN_V_OK) {
            out->v = RFN_V_NOMEM;
        }
        b->ntoks = ntoks;
        b->npool = npool;
    }
}

static void
rfn_builder_free(rfn_builder *b)
{
    PyMem_Free(b->toks);
    PyMem_Free(b->pool);
    PyMem_Free(b->pats);
    memset(b, 0, sizeof(*b));
}

static void
rfn_matcher_free(rfn_matcher *m)
{
    if (m != NULL) {
        PyMem_Free(m->pats);
        PyMem_Free(m->toks);
        PyMem_Free(m->pool);
        PyMem_Free(m);
    }
}

/* Hand the builder's arrays over to a new matcher. */
static rfn_matcher *
rfn_builder_finish(rfn_builder *b)
{
    rfn_matcher *m = PyMem_New(rfn_matcher, 1);
    if (m == NULL) {
        PyErr_NoMemory();
        rfn_builder_free(b);
        return NULL;
    }
    m->pats = b->pats;
    m->npats = b->npats;
    m->toks = b->toks;
    m->pool = b->pool;
    m->dialect = b->dialect;
    memset(b, 0, sizeof(*b));
    return m;
}

/* ---- Python errors ---------------------------------------------------------- */

static void
rfn_raise_pattern_error(rfn_state *st, const rfn_outcome *out, PyObject *pattern,
                        PyObject *origin)
{
    PyObject *where = origin != NULL ? PyUnicode_FromFormat(" (%U)", origin)
                                     : PyUnicode_FromString("");
    if (where == NULL) {
        return;
    }
    if (out->v == RFN_V_INVALID) {
        PyErr_Format(st->InvalidPatternError, "Invalid git pattern: %R%U: %s", pattern, where,
                     out->why);
    } else if (out->v == RFN_V_BAD_RANGE) {
        PyErr_Format(st->PatternRegexError,
                     "Invalid git pattern: %R%U: bad character range %c-%c", pattern, where,
                     (int)out->lo, (int)out->hi);
    } else {
        PyErr_NoMemory();
    }
    Py_DECREF(where);
}

/* ---- IgnoreSpec --------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    rfn_matcher *matcher;
    PyObject *patterns;     /* tuple of exact str: no reference cycles, so no GC */
} rfn_ignorespec;

static void
rfn_ignorespec_dealloc(PyObject *self)
{
    rfn_ignorespec *spec = (rfn_ignorespec *)self;
    PyTypeObject *tp = Py_TYPE(self);
    rfn_matcher_free(spec->matcher);
    Py_XDECREF(spec->patterns);
    tp->tp_free(self);
    Py_DECREF(tp);
}

const rfn_matcher *
rfn_ignorespec_matcher(PyObject *spec)
{
    /* The type is neither subclassable nor instantiable from Python, and its
     * dealloc is ours alone: this identifies it in any interpreter. */
    if (Py_TYPE(spec)->tp_dealloc != rfn_ignorespec_dealloc) {
        PyErr_Format(PyExc_TypeError, "expected an IgnoreSpec, not %.200s",
                     Py_TYPE(spec)->tp_name);
        return NULL;
    }
    return ((rfn_ignorespec *)spec)->matcher;
}

/* pathspec's normalize_file() on POSIX: os.fspath, then drop one leading "/"
 * or else a leading "./". Returns a new reference to the str to match. */
static PyObject *
rfn_normalize_path(PyObject *path)
{
    PyObject *s = PyOS_FSPath(path);
    if (s == NULL) {
        return NULL;
    }
    if (!PyUnicode_Check(s)) {
        PyErr_Format(PyExc_TypeError, "path must be str or a PathLike giving str, not %.200s",
                     Py_TYPE(s)->tp_name);
        Py_DECREF(s);
        return NULL;
    }
    Py_ssize_t len = PyUnicode_GET_LENGTH(s), skip = 0;
    if (len >= 1 && PyUnicode_READ_CHAR(s, 0) == '/') {
        skip = 1;
    } else if (len >= 2 && PyUnicode_READ_CHAR(s, 0) == '.' && PyUnicode_READ_CHAR(s, 1) == '/') {
        skip = 2;
    }
    if (skip == 0) {
        return s;
    }
    PyObject *tail = PyUnicode_Substring(s, skip, len);
    Py_DECREF(s);
    return tail;
}

/* Match the code points of str s; -1 with MemoryError set. A str that is not
 * UCS4 already is widened into a copy placed in front of the scratch. */
static int
rfn_match_str(const rfn_matcher *m, PyObject *s)
{
    size_t n = (size_t)PyUnicode_GET_LENGTH(s);
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    size_t words = kind == PyUnicode_4BYTE_KIND ? 0 : (n * sizeof(uint32_t) + sizeof(size_t) - 1) / sizeof(size_t);
    size_t stack_mem[RFN_MATCH_STACK_BYTES / sizeof(size_t)];
    size_t *mem = stack_mem;
    if (!rfn_scratch_fits(n)) {
        PyErr_NoMemory();
        return -1;
    }
    size_t need = words * sizeof(size_t) + rfn_scratch_bytes(n);
    if (need > sizeof(stack_mem) && (mem = PyMem_Malloc(need)) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    const uint32_t *cps = data;
    if (words > 0) {
        uint32_t *conv = (uint32_t *)mem;
        for (size_t i = 0; i < n; i++) {
            conv[i] = PyUnicode_READ(kind, data, i);
        }
        cps = conv;
    }
    rfn_scratch sc;
    rfn_scratch_init(&sc, mem + words, n);
    int r = rfn_matcher_eval(m, cps, n, &sc);
    if (mem != stack_mem) {
        PyMem_Free(mem);
    }
    return r;
}

static PyObject *
rfn_ignorespec_match_file(PyObject *self, PyObject *path)
{
    PyObject *s = rfn_normalize_path(path);
    if (s == NULL) {
        return NULL;
    }
    int r = rfn_match_str(((rfn_ignorespec *)self)->matcher, s);
    Py_DECREF(s);
    if (r < 0) {
        return NULL;
    }
    return PyBool_FromLong(r);
}

static PyObject *
rfn_ignorespec_get_patterns(PyObject *self, void *closure)
{
    (void)closure;
    return Py_NewRef(((rfn_ignorespec *)self)->patterns);
}

static const char *const rfn_dialect_names[] = {"0.11", "1.0", "1.1"};

static PyObject *
rfn_ignorespec_get_dialect(PyObject *self, void *closure)
{
    (void)closure;
    return PyUnicode_FromString(rfn_dialect_names[((rfn_ignorespec *)self)->matcher->dialect]);
}

static Py_ssize_t
rfn_ignorespec_len(PyObject *self)
{
    return PyTuple_GET_SIZE(((rfn_ignorespec *)self)->patterns);
}

static PyObject *
rfn_ignorespec_repr(PyObject *self)
{
    return PyUnicode_FromFormat("IgnoreSpec(patterns=%R)", ((rfn_ignorespec *)self)->patterns);
}

static PyMethodDef rfn_ignorespec_methods[] = {
    {"match_file", rfn_ignorespec_match_file, METH_O,
     "match_file($self, path, /)\n--\n\n"
     "True when the last pattern matching path ignores it, exactly like\n"
     "pathspec.PathSpec.from_lines('gitwildmatch', patterns).match_file(path)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef rfn_ignorespec_getset[] = {
    {"patterns", rfn_ignorespec_get_patterns, NULL,
     "The pattern strings, in order (empty strings are skipped, as pathspec does).", NULL},
    {"dialect", rfn_ignorespec_get_dialect, NULL,
     "The pathspec release line answered like: '0.11' (0.11.0-0.12.x), '1.0' (1.0.x) or '1.1' (1.1+).",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot rfn_ignorespec_slots[] = {
    {Py_tp_dealloc, rfn_ignorespec_dealloc},
    {Py_tp_repr, rfn_ignorespec_repr},
    {Py_tp_methods, rfn_ignorespec_methods},
    {Py_tp_getset, rfn_ignorespec_getset},
    {Py_sq_length, rfn_ignorespec_len},
    {Py_tp_doc, "Compiled gitwildmatch patterns; build with compile_ignore_patterns()."},
    {0, NULL},
};

static PyType_Spec rfn_ignorespec_spec = {
    .name = RFN_MODULE_NAME ".IgnoreSpec",
    .basicsize = sizeof(rfn_ignorespec),
    .flags = Py_TPFLAGS_DEFAULT
#ifdef Py_TPFLAGS_IMMUTABLETYPE
             | Py_TPFLAGS_IMMUTABLETYPE
#endif
#ifdef Py_TPFLAGS_DISALLOW_INSTANTIATION
             | Py_TPFLAGS_DISALLOW_INSTANTIATION
#endif
    ,
    .slots = rfn_ignorespec_slots,
};

/* ---- compile_ignore_patterns() ------------------------------------------------ */

/* Compile every pattern of seq (a list from PySequence_Fast) into b; fill the
 * kept str objects into kept. Returns 0 or -1 with an exception set. */
static int
rfn_compile_all(rfn_state *st, rfn_builder *b, PyObject *seq, PyObject *origins,
                PyObject *kept)
{
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyUnicode_Check(item)) {
            PyErr_Format(PyExc_TypeError, "pattern %zd must be str, not %.200s", i,
                         Py_TYPE(item)->tp_name);
            return -1;
        }
        if (PyUnicode_GET_LENGTH(item) == 0) {
            continue;   /* PathSpec.from_lines() skips empty lines entirely */
        }
        Py_UCS4 *s = PyUnicode_AsUCS4Copy(item);
        if (s == NULL) {
            return -1;
        }
        rfn_outcome out;
        rfn_compile_pattern(b, s, (size_t)PyUnicode_GET_LENGTH(item), &out);
        PyMem_Free(s);
        if (out.v != RFN_V_OK && out.v != RFN_V_NOOP) {
            PyObject *origin = origins ? PySequence_Fast_GET_ITEM(origins, i) : NULL;
            rfn_raise_pattern_error(st, &out, item, origin);
            return -1;
        }
        PyObject *exact = PyUnicode_FromObject(item);
        if (exact == NULL || PyList_Append(kept, exact) < 0) {
            Py_XDECREF(exact);
            return -1;
        }
        Py_DECREF(exact);
    }
    return 0;
}

static PyObject *
rfn_fast_origins(PyObject *origins, Py_ssize_t n)
{
    PyObject *fast = PySequence_Fast(origins, "origins must be a sequence of str");
    if (fast == NULL) {
        return NULL;
    }
    if (PySequence_Fast_GET_SIZE(fast) != n) {
        PyErr_Format(PyExc_ValueError, "origins has %zd items for %zd patterns",
                     PySequence_Fast_GET_SIZE(fast), n);
        Py_DECREF(fast);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *o = PySequence_Fast_GET_ITEM(fast, i);
        if (!PyUnicode_Check(o)) {
            PyErr_Format(PyExc_TypeError, "origin %zd must be str, not %.200s", i,
                         Py_TYPE(o)->tp_name);
            Py_DECREF(fast);
            return NULL;
        }
    }
    return fast;
}

static PyObject *
rfn_new_ignorespec(rfn_state *st, rfn_matcher *m, PyObject *kept)
{
    PyObject *tuple = PyList_AsTuple(kept);
    if (tuple == NULL) {
        rfn_matcher_free(m);
        return NULL;
    }
    rfn_ignorespec *spec = (rfn_ignorespec *)st->IgnoreSpecType->tp_alloc(st->IgnoreSpecType, 0);
    if (spec == NULL) {
        rfn_matcher_free(m);
        Py_DECREF(tuple);
        return NULL;
    }
    spec->matcher = m;
    spec->patterns = tuple;
    return (PyObject *)spec;
}

static PyObject *
rfn_compile_ignore_patterns(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"patterns", "origins", "dialect", NULL};
    PyObject *patterns, *origins = Py_None;
    const char *dialect_name = "1.1";
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O$s:compile_ignore_patterns", kwlist,
                                     &patterns, &origins, &dialect_name)) {
        return NULL;
    }
    int dialect = -1;
    for (int i = 0; i < (int)(sizeof(rfn_dialect_names) / sizeof(rfn_dialect_names[0])); i++) {
        if (strcmp(dialect_name, rfn_dialect_names[i]) == 0) {
            dialect = i;
        }
    }
    if (dialect < 0) {
        PyErr_Format(PyExc_ValueError, "dialect must be '0.11', '1.0' or '1.1', not '%s'", dialect_name);
        return NULL;
    }
    if (PyUnicode_Check(patterns) || PyBytes_Check(patterns)) {
        /* pathspec does not take a single string for its lines either */
        PyErr_SetString(PyExc_TypeError, "patterns must be an iterable of str, not a string");
        return NULL;
    }
    rfn_state *st = rfn_get_state(module);
    PyObject *seq = PySequence_Fast(patterns, "patterns must be an iterable of str");
    PyObject *ofast = NULL, *kept = NULL, *result = NULL;
    rfn_builder b = {0};
    b.dialect = dialect;
    if (seq == NULL) {
        return NULL;
    }
    if (origins != Py_None
        && (ofast = rfn_fast_origins(origins, PySequence_Fast_GET_SIZE(seq))) == NULL) {
        goto done;
    }
    if ((kept = PyList_New(0)) == NULL || rfn_compile_all(st, &b, seq, ofast, kept) < 0) {
        goto done;
    }
    rfn_matcher *m = rfn_builder_finish(&b);
    if (m != NULL) {
        result = rfn_new_ignorespec(st, m, kept);
    }
done:
    rfn_builder_free(&b);
    Py_XDECREF(kept);
    Py_XDECREF(ofast);
    Py_DECREF(seq);
    return result;
}

/* Test hooks for the GIL-free entry points the walker uses. */

static PyObject *
rfn_fsdecode_py(PyObject *module, PyObject *arg)
{
    (void)module;
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "_fsdecode() takes bytes");
        return NULL;
    }
    size_t len = (size_t)PyBytes_GET_SIZE(arg);
    uint32_t *cps = PyMem_New(uint32_t, len + 1);
    if (cps == NULL) {
        return PyErr_NoMemory();
    }
    size_t n = rfn_fsdecode_cps((const unsigned char *)PyBytes_AS_STRING(arg), len, cps);
    PyObject *s = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, cps, (Py_ssize_t)n);
    PyMem_Free(cps);
    return s;
}

static PyObject *
rfn_match_fsbytes_py(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2 || !PyBytes_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "_match_fsbytes(spec, raw: bytes)");
        return NULL;
    }
    const rfn_matcher *m = rfn_ignorespec_matcher(args[0]);
    if (m == NULL) {
        return NULL;
    }
    size_t len = (size_t)PyBytes_GET_SIZE(args[1]);
    const unsigned char *raw = (const unsigned char *)PyBytes_AS_STRING(args[1]);
    uint32_t *cps = PyMem_RawMalloc((len + 1) * sizeof(uint32_t));
    if (cps == NULL) {
        return PyErr_NoMemory();
    }
    int r;
    Py_BEGIN_ALLOW_THREADS
    r = rfn_matcher_ignores(m, cps, rfn_fsdecode_cps(raw, len, cps));
    Py_END_ALLOW_THREADS
    PyMem_RawFree(cps);
    if (r < 0) {
        return PyErr_NoMemory();
    }
    return PyBool_FromLong(r);
}

/* _match_walk(spec, prefix, parts): the walk's level-by-level decisions for
 * prefix/parts[0], prefix/parts[0]/parts[1], ... (parts are raw names). */
static PyObject *
rfn_match_walk_py(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3 || !PyUnicode_Check(args[1]) || !PyList_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "_match_walk(spec, prefix: str, parts: list[bytes])");
        return NULL;
    }
    const rfn_matcher *m = rfn_ignorespec_matcher(args[0]);
    if (m == NULL) {
        return NULL;
    }
    PyObject *parts = args[2];
    Py_ssize_t nparts = PyList_GET_SIZE(parts);
    size_t total = (size_t)PyUnicode_GET_LENGTH(args[1]) + 1;
    for (Py_ssize_t i = 0; i < nparts; i++) {
        PyObject *b = PyList_GET_ITEM(parts, i);
        if (!PyBytes_Check(b) || memchr(PyBytes_AS_STRING(b), '/', (size_t)PyBytes_GET_SIZE(b))) {
            PyErr_SetString(PyExc_ValueError, "parts must be bytes without '/'");
            return NULL;
        }
        total += (size_t)PyBytes_GET_SIZE(b) + 1;
    }
    size_t blen = rfn_matcher_bits_len(m) ? rfn_matcher_bits_len(m) : 1;
    uint32_t *cps = PyMem_New(uint32_t, total);
    unsigned char *bits = PyMem_Malloc(2 * blen);
    PyObject *out = PyList_New(0);
    if (cps == NULL || bits == NULL || out == NULL) {
        PyMem_Free(cps);
        PyMem_Free(bits);
        Py_XDECREF(out);
        return PyErr_NoMemory();
    }
    unsigned char *parent = NULL, *child = bits;
    size_t n = 0;
    for (Py_ssize_t i = 0; i < PyUnicode_GET_LENGTH(args[1]); i++) {
        cps[n++] = PyUnicode_READ_CHAR(args[1], i);
    }
    if (n > 0) {
        if (rfn_matcher_prefix_bits(m, cps, n, child) < 0) {
            goto nomem;
        }
        parent = child;
        child = bits + blen;
    }
    for (Py_ssize_t i = 0; i < nparts; i++) {
        PyObject *b = PyList_GET_ITEM(parts, i);
        if (n > 0) {
            cps[n++] = '/';
        }
        n += rfn_fsdecode_cps((const unsigned char *)PyBytes_AS_STRING(b),
                              (size_t)PyBytes_GET_SIZE(b), cps + n);
        int r = rfn_matcher_walk_entry(m, cps, n, parent, NULL);
        if (r < 0 || rfn_matcher_walk_entry(m, cps, n, parent, child) < 0) {
            goto nomem;
        }
        if (PyList_Append(out, r ? Py_True : Py_False) < 0) {
            goto error;
        }
        parent = child;
        child = parent == bits ? bits + blen : bits;
    }
    PyMem_Free(cps);
    PyMem_Free(bits);
    return out;
nomem:
    PyErr_NoMemory();
error:
    PyMem_Free(cps);
    PyMem_Free(bits);
    Py_DECREF(out);
    return NULL;
}

static PyMethodDef rfn_ignore_functions[] = {
    {"_fsdecode", rfn_fsdecode_py, METH_O,
     "_fsdecode(raw, /)\n--\n\nTest hook: rfn_fsdecode_cps() (os.fsdecode) as a str."},
    {"_match_fsbytes", (PyCFunction)(void (*)(void))rfn_match_fsbytes_py, METH_FASTCALL,
     "_match_fsbytes(spec, raw, /)\n--\n\n"
     "Test hook: rfn_fsdecode_cps() then rfn_matcher_ignores() without the GIL."},
    {"_match_walk", (PyCFunction)(void (*)(void))rfn_match_walk_py, METH_FASTCALL,
     "_match_walk(spec, prefix, parts, /)\n--\n\n"
     "Test hook: the walk's level-by-level decisions (rfn_matcher_walk_entry) for\n"
     "prefix/parts[0], prefix/parts[0]/parts[1], ..."},
    {"compile_ignore_patterns", (PyCFunction)(void (*)(void))rfn_compile_ignore_patterns,
     METH_VARARGS | METH_KEYWORDS,
     "compile_ignore_patterns(patterns, origins=None, *, dialect='1.1')\n--\n\n"
     "Compile gitignore lines the way PathSpec.from_lines('gitwildmatch', ...)\n"
     "does. origins[i] names where patterns[i] came from, for error messages.\n"
     "Raises InvalidPatternError (a ValueError) where pathspec raises\n"
     "GitIgnorePatternError, and PatternRegexError (an re.error) where pathspec's\n"
     "regex fails to compile."},
    {NULL, NULL, 0, NULL},
};

/* ---- module exec -------------------------------------------------------------- */

static PyObject *
rfn_re_error(void)
{
    PyObject *re = PyImport_ImportModule("re");
    if (re == NULL) {
        return NULL;
    }
    PyObject *err = PyObject_GetAttrString(re, "error");
    Py_DECREF(re);
    return err;
}

int
rfn_ignore_exec(PyObject *module)
{
    rfn_state *st = rfn_get_state(module);
    st->InvalidPatternError = PyErr_NewExceptionWithDoc(
        RFN_MODULE_NAME ".InvalidPatternError",
        "A gitignore pattern pathspec rejects (its GitIgnorePatternError).",
        PyExc_ValueError, NULL);
    if (st->InvalidPatternError == NULL
        || PyModule_AddObjectRef(module, "InvalidPatternError", st->InvalidPatternError) < 0) {
        return -1;
    }
    PyObject *re_error = rfn_re_error();
    if (re_error == NULL) {
        return -1;
    }
    st->PatternRegexError = PyErr_NewExceptionWithDoc(
        RFN_MODULE_NAME ".PatternRegexError",
        "A gitignore pattern whose regex pathspec cannot compile (re.error).", re_error, NULL);
    Py_DECREF(re_error);
    if (st->PatternRegexError == NULL
        || PyModule_AddObjectRef(module, "PatternRegexError", st->PatternRegexError) < 0) {
        return -1;
    }
    st->IgnoreSpecType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &rfn_ignorespec_spec,
                                                                   NULL);
    if (st->IgnoreSpecType == NULL
        || PyModule_AddObjectRef(module, "IgnoreSpec", (PyObject *)st->IgnoreSpecType) < 0) {
        return -1;
    }
    return PyModule_AddFunctions(module, rfn_ignore_functions);
}

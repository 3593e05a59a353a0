/* Matching paths against a compiled matcher (match_impl.h describes the
 * token programs), whole paths or one walk level at a time. Core: no
 * Python.h; safe without the GIL. */
#include "match_impl.h"

#include <stdlib.h>
#include <string.h>

/* Per-call scratch up to this size lives on the stack: paths of up to ~900
 * code points, i.e. every path a walk normally meets. */
#define RFN_MATCH_STACK_BYTES 16384

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

/* Per-call scratch for n code points: on the stack, or malloc'd. */
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
        && (h->mem = malloc(rfn_scratch_bytes(n))) == NULL) {
        return -1;
    }
    rfn_scratch_init(&h->sc, h->mem, n);
    return 0;
}

static void
rfn_scratch_close(rfn_scratch_holder *h)
{
    if (h->mem != h->stack_mem) {
        free(h->mem);
    }
}

int
rfn_matcher_ignores(const rfn_matcher *m, const uint32_t *cps, size_t n)
{
    rfn_scratch_holder h;
    if (rfn_scratch_open(&h, n) < 0) {
        return -1;
    }
    int r = rfn_matcher_eval(m, cps, n, &h.sc);
    rfn_scratch_close(&h);
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

/* Where the entry's name (after the last "/") holds a "\n". */
typedef struct {
    int inner;          /* before its last code point */
    int last;           /* as its last code point */
} rfn_name_nl;

static rfn_name_nl
rfn_name_newlines(const uint32_t *cps, size_t n)
{
    rfn_name_nl nl = {0, 0};
    size_t name = n;
    while (name > 0 && cps[name - 1] != '/') {
        name--;
    }
    nl.last = n > name && cps[n - 1] == '\n';
    for (size_t k = name; k + 1 < n && !nl.inner; k++) {
        nl.inner = cps[k] == '\n';
    }
    return nl;
}

/* Pattern i for the entry cps[0..n): *matched, and *below (the bit it passes
 * on as a directory). bit: the parent directory's bit i. */
static void
rfn_walk_pattern(const rfn_matcher *m, size_t i, const uint32_t *cps, size_t n, int bit,
                 rfn_name_nl nl, const rfn_scratch *sc, int *matched, int *below)
{
    const rfn_pat *pat = &m->pats[i];
    int old = pat->kind == RFN_KIND_PROGRAM && rfn_is_old_end(m->toks[pat->tok_off + pat->ntok - 1].op);
    /* 0.11's programs end in ".*$": a bit inherited from the directory means
     * the pattern matched at a "/" with no "\n" after it in the directory's
     * path; it holds for this entry when its name has no "\n" but a final
     * one, and passes on when the name has none. */
    if (bit && (!old || (!nl.inner && !nl.last))) {
        *matched = *below = 1;
    } else if (pat->kind == RFN_KIND_PROGRAM) {
        rfn_run_tail(m, pat, cps, n, sc, matched, below);
        if (bit) {   /* old, and the name holds a "\n" */
            *matched = *matched || !nl.inner;
        }
    } else if (pat->kind == RFN_KIND_OLD_DIRS) {
        /* decided on the whole path every time; nothing inherited */
        *matched = rfn_old_dirs_match(cps, n, rfn_nl_stop(cps, n));
        *below = 0;
    } else {
        /* "." and "/" anywhere: P + "/" holds a "/" (not "\n"), so the
         * bit is always set below the base; at the base, E is the name. */
        *matched = 0;
        for (size_t k = 0; k < n && !*matched; k++) {
            *matched = pat->kind == RFN_KIND_ANY_CHAR ? cps[k] != '\n' : cps[k] == '/';
        }
        *below = 1;
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
    rfn_name_nl nl = rfn_name_newlines(cps, n);
    for (size_t i = m->npats; i-- > 0;) {
        int matched, below;
        rfn_walk_pattern(m, i, cps, n, rfn_bit(parent_bits, i), nl, &h.sc, &matched, &below);
        if (matched && result == -2) {
            result = m->pats[i].include;
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
    unsigned char *parent = malloc(len ? len : 1);
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
    free(parent);
    return rc;
}


/* ---- the matcher object -------------------------------------------------------- */

void
rfn_matcher_free(rfn_matcher *m)
{
    if (m != NULL) {
        free(m->pats);
        free(m->toks);
        free(m->pool);
        free(m);
    }
}

enum rfn_dialect
rfn_matcher_dialect(const rfn_matcher *m)
{
    return m->dialect;
}

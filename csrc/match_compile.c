/* gitwildmatch patterns compiled the way pathspec compiles them, into the
 * token programs of match_impl.h. Three dialects, found by differential
 * testing of every release flash accepts:
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
 * Core: no Python.h; memory from malloc.
 */
#include "match_impl.h"
#include "os.h"

#include <stdlib.h>
#include <string.h>

struct rfn_match_builder {
    rfn_tok *toks;
    size_t ntoks, cap_toks;
    uint32_t *pool;
    size_t npool, cap_pool;
    rfn_pat *pats;
    size_t npats, cap_pats;
    enum rfn_dialect dialect;
};

typedef struct rfn_match_builder rfn_builder;

static int
rfn_grow(void **buf, size_t *cap, size_t need, size_t item)
{
    return rfn_vec_grow_with(buf, cap, need, item, 16, realloc);  /* os.c */
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
rfn_compile_class(rfn_builder *b, const uint32_t *c, size_t k, int negate, rfn_outcome *out)
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
rfn_bracket_end(const uint32_t *s, size_t i, size_t end)
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
rfn_compile_glob(rfn_builder *b, const uint32_t *s, size_t end, rfn_outcome *out)
{
    size_t i = 0;
    int escape = 0, rc = 0;
    while (i < end && rc == 0) {
        uint32_t ch = s[i++];
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
rfn_is_text(const uint32_t *s, const rfn_seg *g, const char *text)
{
    size_t k = strlen(text);
    if (g->dstar) {
        return strcmp(text, "**") == 0;
    }
    if (g->len != k) {
        return 0;
    }
    for (size_t i = 0; i < k; i++) {
        if (s[g->start + i] != (uint32_t)(unsigned char)text[i]) {
            return 0;
        }
    }
    return 1;
}

/* Split s on "/" into segs (capacity: number of "/" + 2, one slot left free in
 * front for an inserted "**"). Returns the first used index; *count set. */
static size_t
rfn_split(const uint32_t *s, size_t len, rfn_seg *segs, size_t *count)
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

static const rfn_seg rfn_dstar_seg = {0, 2, 1};

/* Keep one "**" of every run of them in segs[f..f+c). Returns the new count. */
static size_t
rfn_collapse_dstars(rfn_seg *segs, size_t f, size_t c)
{
    size_t w = f + 1;
    for (size_t r = f + 1; r < f + c; r++) {
        if (!(segs[r].dstar && segs[w - 1].dstar)) {
            segs[w++] = segs[r];
        }
    }
    return w - f;
}

/* The leading rules: a leading "/" anchors the pattern (its empty segment
 * goes); one segment (a trailing "/" aside) other than "**" matches at any
 * depth (a "**" goes in the free slot in front). -1 when nothing is left. */
static int
rfn_anchor(rfn_seg *segs, size_t *first, size_t *count, rfn_outcome *out)
{
    size_t f = *first, c = *count;
    if (segs[f].len == 0) {
        f++;
        c--;
    } else if ((c == 1 || (c == 2 && segs[f + 1].len == 0)) && !segs[f].dstar) {
        segs[--f] = rfn_dstar_seg;
        c++;
    }
    if (c == 0) {
        out->v = RFN_V_INVALID;
        out->why = "pattern normalized to nothing";
        return -1;
    }
    *first = f;
    *count = c;
    return 0;
}

/* pathspec's segment normalization (1.0 and later). Returns the kind; for a
 * program, *first and *count describe the normalized segments. */
static int
rfn_normalize(const uint32_t *s, rfn_seg *segs, size_t *first, size_t *count, int is_dir,
              rfn_outcome *out)
{
    if (rfn_anchor(segs, first, count, out) < 0) {
        return -1;
    }
    size_t f = *first;
    if (segs[f + *count - 1].len == 0) {
        segs[f + *count - 1] = rfn_dstar_seg;
    }
    size_t c = *count = rfn_collapse_dstars(segs, f, *count);
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

/* pathspec 0.11/0.12's segment normalization (GitWildMatchPattern): "**"
 * runs collapse before the leading and trailing rules. */
static int
rfn_normalize_old(rfn_seg *segs, size_t *first, size_t *count, rfn_outcome *out)
{
    *count = rfn_collapse_dstars(segs, *first, *count);
    if (*count == 2 && segs[*first].dstar && segs[*first + 1].len == 0) {
        return RFN_KIND_OLD_DIRS;
    }
    if (rfn_anchor(segs, first, count, out) < 0) {
        return -1;
    }
    if (*count > 1 && segs[*first + *count - 1].len == 0) {
        segs[*first + *count - 1] = rfn_dstar_seg;
    }
    return RFN_KIND_PROGRAM;
}

/* A segment other than "**": a "/" first unless it leads, then "*" alone or
 * its glob, then end_op when it is the last (end_op < 0: not the last). */
static int
rfn_translate_plain(rfn_builder *b, const uint32_t *s, const rfn_seg *g, int need_slash,
                    int end_op, rfn_outcome *out)
{
    int rc = need_slash ? rfn_emit_lit(b, '/') : 0;
    if (rc == 0 && g->len == 1 && s[g->start] == '*') {
        rc = rfn_emit(b, RFN_OP_PLUS);
    } else if (rc == 0) {
        rc = rfn_compile_glob(b, s + g->start, g->len, out);
    }
    if (rc == 0 && end_op >= 0) {
        rc = rfn_emit(b, (uint8_t)end_op);
    }
    return rc;
}

/* The normalized segments into tokens; 0.11 ends in its own ".*$" tokens and
 * turns "**" alone into ^[^/]+(?:/.*)?$. */
static int
rfn_translate(rfn_builder *b, const uint32_t *s, const rfn_seg *segs, size_t count,
              rfn_outcome *out)
{
    int old = b->dialect == RFN_DIALECT_0_11;
    int end_opt = old ? RFN_OP_END_OLD_OPT : RFN_OP_END_OPT;
    uint8_t end_dir = old ? RFN_OP_END_OLD_DIR : RFN_OP_END_DIR;
    int need_slash = 0;
    for (size_t i = 0; i < count; i++) {
        const rfn_seg *g = &segs[i];
        int last = i + 1 == count, rc;
        if (g->dstar && old && i == 0 && last) {
            rc = rfn_emit(b, RFN_OP_PLUS) < 0 ? -1 : rfn_emit(b, RFN_OP_END_OLD_OPT);
        } else if (g->dstar) {
            rc = rfn_emit(b, i == 0 ? RFN_OP_LEAD : last ? end_dir : RFN_OP_INNER);
            need_slash = need_slash || (i > 0 && !last);
        } else {
            rc = rfn_translate_plain(b, s, g, need_slash, last ? end_opt : -1, out);
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
rfn_compile_body(rfn_builder *b, const uint32_t *s, size_t len, int include, rfn_outcome *out)
{
    size_t nslash = 0;
    for (size_t i = 0; i < len; i++) {
        nslash += s[i] == '/';
    }
    rfn_seg *segs = malloc((nslash + 2) * sizeof(rfn_seg));
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
        rc = rfn_translate(b, s, segs + first, count, out);
    }
    free(segs);
    if (rc == 0 && out->bad_range) {
        out->v = RFN_V_BAD_RANGE;
        return -1;
    }
    if (rc == 0) {
        rc = rfn_add_pat(b, kind, include, tok_off);
    }
    return rc;
}

/* str.isspace() of one code point (Python's _PyUnicode_IsWhitespace: bidi
 * classes WS, B, S and category Zs). */
static int
rfn_cp_isspace(uint32_t c)
{
    if (c < 0x80) {
        return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20);
    }
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A)
           || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* The pattern's length once stripped as pathspec strips it: rstrip() with
 * str.isspace semantics, unless it ends with "\\ "; 0.11 also lstrip()s
 * (moving *s). */
static size_t
rfn_strip(const uint32_t **s, size_t len, enum rfn_dialect dialect)
{
    if (dialect == RFN_DIALECT_0_11) {
        size_t lead = 0;
        while (lead < len && rfn_cp_isspace((*s)[lead])) {
            lead++;
        }
        *s += lead;
        len -= lead;
    }
    if (len >= 2 && (*s)[len - 1] == ' ' && (*s)[len - 2] == '\\') {
        return len;
    }
    while (len > 0 && rfn_cp_isspace((*s)[len - 1])) {
        len--;
    }
    return len;
}

void
rfn_match_builder_add(rfn_builder *b, const uint32_t *s, size_t len, rfn_outcome *out)
{
    size_t ntoks = b->ntoks, npool = b->npool;
    out->v = RFN_V_OK;
    out->bad_range = 0;
    len = rfn_strip(&s, len, b->dialect);
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

rfn_builder *
rfn_match_builder_new(enum rfn_dialect d)
{
    rfn_builder *b = calloc(1, sizeof(*b));
    if (b != NULL) {
        b->dialect = d;
    }
    return b;
}

/* Free b's arrays and forget them. */
static void
rfn_builder_release(rfn_builder *b)
{
    free(b->toks);
    free(b->pool);
    free(b->pats);
    b->toks = NULL;
    b->pool = NULL;
    b->pats = NULL;
    b->ntoks = b->cap_toks = b->npool = b->cap_pool = b->npats = b->cap_pats = 0;
}

void
rfn_match_builder_free(rfn_builder *b)
{
    if (b != NULL) {
        rfn_builder_release(b);
        free(b);
    }
}

rfn_matcher *
rfn_match_builder_finish(rfn_builder *b)
{
    rfn_matcher *m = malloc(sizeof(*m));
    if (m == NULL) {
        rfn_builder_release(b);
        return NULL;
    }
    m->pats = b->pats;
    m->npats = b->npats;
    m->toks = b->toks;
    m->pool = b->pool;
    m->dialect = b->dialect;
    b->toks = NULL;
    b->pool = NULL;
    b->pats = NULL;
    rfn_builder_release(b);
    return m;
}

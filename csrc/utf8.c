/* UTF-8 between bytes and code points: os.fsdecode's decoder, the
 * surrogatepass encoder, and the surrogates surrogatepass UTF-8 holds.
 * Core: no Python.h. */
#include "utf8.h"

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


uint32_t
rfn_utf8_surrogate(const unsigned char *s, size_t avail)
{
    if (avail < 3 || s[0] != 0xED || (s[1] & 0xE0) != 0xA0) {
        return 0;
    }
    return 0xD000u | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
}

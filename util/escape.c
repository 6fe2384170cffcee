/* escape.c: text from files made safe for a terminal.
 *
 * Names inside model files (node and tensor names, pickle keys, zip entry names, TF.js paths)
 * are attacker-chosen bytes.  Printed raw they can move the cursor, recolour the screen, or
 * start a new line that looks like another "lkprobe:" message.  lk_str_escape keeps printable
 * ASCII and well-formed printable UTF-8 and writes everything else as \xNN per byte: C0
 * controls (newline included), DEL, the C1 controls U+0080..U+009F (CSI among them), the
 * bidirectional overrides U+202A..U+202E and U+2066..U+2069, and bytes that are not valid
 * UTF-8 (overlong forms, surrogates, truncated sequences).  The output of the function passes
 * through it unchanged, so escaping twice is harmless. */
#include <string.h>

#include "util/lk_util.h"

/* Length of the well-formed UTF-8 sequence at s (1..4) with its code point, or 0. */
static size_t utf8_seq(const unsigned char *s, unsigned *cp) {
    unsigned c = s[0];
    size_t   n;
    unsigned lo = 0x80, hi = 0xBF, v;
    if (c >= 0xC2 && c <= 0xDF) n = 2, v = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) n = 3, v = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) n = 4, v = c & 0x07;
    else return 0;
    if (c == 0xE0) lo = 0xA0;      /* overlong */
    if (c == 0xED) hi = 0x9F;      /* surrogates */
    if (c == 0xF0) lo = 0x90;      /* overlong */
    if (c == 0xF4) hi = 0x8F;      /* above U+10FFFF */
    for (size_t i = 1; i < n; i++) {
        unsigned b = s[i];
        if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xBF)) return 0;
        v = (v << 6) | (b & 0x3F);
    }
    *cp = v;
    return n;
}

static int printable_cp(unsigned cp) {
    if (cp >= 0x80 && cp <= 0x9F) return 0;
    if (cp >= 0x202A && cp <= 0x202E) return 0;
    if (cp >= 0x2066 && cp <= 0x2069) return 0;
    return 1;
}

const char *lk_str_escape(char *dst, size_t cap, const char *src) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)(src ? src : "");
    size_t               o = 0;
    if (cap == 0) return dst;
    while (*s) {
        unsigned cp = 0;
        size_t   n = *s >= 0x20 && *s < 0x7F ? 1 : 0;
        if (!n && *s >= 0x80) n = utf8_seq(s, &cp);
        if (n && (n == 1 || printable_cp(cp))) {
            if (o + n >= cap) break;
            memcpy(dst + o, s, n);
            o += n;
            s += n;
            continue;
        }
        /* One byte escaped; a rejected multi-byte sequence goes byte by byte. */
        if (o + 4 >= cap) break;
        dst[o++] = '\\';
        dst[o++] = 'x';
        dst[o++] = hex[*s >> 4];
        dst[o++] = hex[*s & 15];
        s++;
    }
    dst[o] = '\0';
    return dst;
}

void lk_sb_escape(lk_sb *b, const char *s) {
    char buf[1024];
    lk_str_escape(buf, sizeof buf, s);
    lk_sb_str(b, buf);
}

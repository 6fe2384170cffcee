/* buf.c: growable arrays, the string builder and the JSON writer (lk_util.h). */
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "lk_util.h"

int lk_grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 1;
    size_t nc = *cap ? *cap : 16;
    while (nc < need) {
        if (nc > SIZE_MAX / 2) return 0;
        nc *= 2;
    }
    if (elem && nc > SIZE_MAX / elem) return 0;
    void *q = lk_realloc(*p, nc * elem);
    if (!q) return 0;
    *p   = q;
    *cap = nc;
    return 1;
}

/* ---------------------------------------------------------------- string builder */

void lk_sb_put(lk_sb *b, const char *s, size_t n) {
    if (b->oom) return;
    void *q = b->p;
    if (n > SIZE_MAX - b->n - 1 || !lk_grow(&q, &b->cap, b->n + n + 1, 1)) {
        b->oom = 1;
        return;
    }
    b->p = q;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

void lk_sb_str(lk_sb *b, const char *s) { lk_sb_put(b, s, strlen(s)); }

void lk_sb_char(lk_sb *b, char c) { lk_sb_put(b, &c, 1); }

void lk_sb_printf(lk_sb *b, const char *fmt, ...) {
    char    small[256];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (k < 0) {
        b->oom = 1;
        return;
    }
    if ((size_t)k < sizeof small) {
        lk_sb_put(b, small, (size_t)k);
        return;
    }
    char *big = lk_malloc((size_t)k + 1);
    if (!big) {
        b->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)k + 1, fmt, ap);
    va_end(ap);
    lk_sb_put(b, big, (size_t)k);
    lk_free(big);
}

const char *lk_sb_text(const lk_sb *b) { return b->p ? b->p : ""; }

void lk_sb_free(lk_sb *b) {
    lk_free(b->p);
    memset(b, 0, sizeof *b);
}

/* ---------------------------------------------------------------- JSON writer */

void lk_json_escape(lk_sb *b, const char *s) {
    lk_sb_char(b, '"');
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        switch (*p) {
        case '"': lk_sb_str(b, "\\\""); break;
        case '\\': lk_sb_str(b, "\\\\"); break;
        case '\n': lk_sb_str(b, "\\n"); break;
        case '\r': lk_sb_str(b, "\\r"); break;
        case '\t': lk_sb_str(b, "\\t"); break;
        default:
            if (*p < 0x20) lk_sb_printf(b, "\\u%04x", *p);
            else lk_sb_char(b, (char)*p);
        }
    }
    lk_sb_char(b, '"');
}

void lk_jw_init(lk_jw *w, lk_sb *sb) {
    memset(w, 0, sizeof *w);
    w->sb       = sb;
    w->first[0] = 1;
}

/* Separator before a value or key at the current depth. */
static void jw_sep(lk_jw *w) {
    if (w->after_key) {
        w->after_key = 0;
        return;
    }
    if (!w->first[w->depth]) lk_sb_char(w->sb, ',');
    w->first[w->depth] = 0;
}

static void jw_open(lk_jw *w, char c) {
    jw_sep(w);
    lk_sb_char(w->sb, c);
    if (w->depth + 1 < LK_JW_MAX_DEPTH) w->depth++;
    else w->sb->oom = 1; /* nesting beyond the limit: report as a failed build */
    w->first[w->depth] = 1;
}

static void jw_close(lk_jw *w, char c) {
    lk_sb_char(w->sb, c);
    if (w->depth > 0) w->depth--;
}

void lk_jw_obj(lk_jw *w) { jw_open(w, '{'); }
void lk_jw_obj_end(lk_jw *w) { jw_close(w, '}'); }
void lk_jw_arr(lk_jw *w) { jw_open(w, '['); }
void lk_jw_arr_end(lk_jw *w) { jw_close(w, ']'); }

void lk_jw_key(lk_jw *w, const char *k) {
    jw_sep(w);
    lk_json_escape(w->sb, k);
    lk_sb_char(w->sb, ':');
    w->after_key = 1;
}

void lk_jw_str(lk_jw *w, const char *s) {
    jw_sep(w);
    if (s) lk_json_escape(w->sb, s);
    else lk_sb_str(w->sb, "null");
}

void lk_jw_raw(lk_jw *w, const char *json) {
    jw_sep(w);
    lk_sb_str(w->sb, json);
}

void lk_jw_int(lk_jw *w, long long v) {
    jw_sep(w);
    lk_sb_printf(w->sb, "%lld", v);
}

void lk_jw_uint(lk_jw *w, unsigned long long v) {
    jw_sep(w);
    lk_sb_printf(w->sb, "%llu", v);
}

void lk_jw_num(lk_jw *w, double v, const char *fmt) {
    jw_sep(w);
    if (!isfinite(v)) {
        lk_sb_str(w->sb, "null");
        return;
    }
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
#endif
    lk_sb_printf(w->sb, fmt, v);
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
}

void lk_jw_bool(lk_jw *w, int v) {
    jw_sep(w);
    lk_sb_str(w->sb, v ? "true" : "false");
}

void lk_jw_null(lk_jw *w) {
    jw_sep(w);
    lk_sb_str(w->sb, "null");
}

void lk_jw_shape(lk_jw *w, int ndim, const int64_t *shape) {
    lk_jw_arr(w);
    for (int i = 0; i < ndim; i++) lk_jw_int(w, (long long)shape[i]);
    lk_jw_arr_end(w);
}

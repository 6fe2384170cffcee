/*
 * json.c: the strict, bounded JSON reader of json-impl.h.
 *
 * Recursive descent with an explicit depth cap.  Finished children wait on one growable
 * stack; when their container closes they are copied into the document arena as one
 * contiguous array, so a document costs a handful of allocations whatever its size.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-impl.h"

enum { ARENA_BLOCK = 64 * 1024 };

typedef struct arena_blk {
    struct arena_blk *next;
    size_t            used, cap;
    max_align_t       data[]; /* cap bytes follow */
} arena_blk;

struct lk_json_doc {
    arena_blk *blocks;
    lk_json    root;
};

typedef struct jp {
    const unsigned char *p, *end, *base;
    lk_json_doc         *doc;
    lk_json_limits       lim;
    size_t               n_nodes;
    lk_json             *stack; /* finished children of open containers */
    size_t               n_stack, cap_stack;
    lk_error            *err;
} jp;

lk_json_limits lk_json_limits_default(void) {
    lk_json_limits l = {64, (size_t)4 << 20};
    return l;
}

static void *arena_get(lk_json_doc *d, size_t n) {
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    if (!n) n = sizeof(max_align_t);
    arena_blk *b = d->blocks;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
        b          = lk_malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->next   = d->blocks;
        b->used   = 0;
        b->cap    = cap;
        d->blocks = b;
    }
    void *p = (unsigned char *)b->data + b->used;
    b->used += n;
    return p;
}

void lk_json_free(lk_json_doc *d) {
    if (!d) return;
    arena_blk *b = d->blocks;
    while (b) {
        arena_blk *nx = b->next;
        lk_free(b);
        b = nx;
    }
    lk_free(d);
}

const lk_json *lk_json_root(const lk_json_doc *d) { return d ? &d->root : NULL; }

static size_t off(const jp *J) { return (size_t)(J->p - J->base); }

static lk_status jfail(jp *J, const char *what) {
    return LK_FAIL(J->err, LK_EFORMAT, "JSON: byte %zu: %s", off(J), what);
}

static lk_status oom(jp *J) {
    return LK_FAIL(J->err, LK_ENOMEM, "JSON: out of memory at byte %zu", off(J));
}

static void skip_ws(jp *J) {
    while (J->p < J->end && (*J->p == ' ' || *J->p == '\t' || *J->p == '\n' || *J->p == '\r'))
        J->p++;
}

static lk_status push(jp *J, const lk_json *v) {
    if (J->n_stack == J->cap_stack) {
        size_t   nc = J->cap_stack ? J->cap_stack * 2 : 64;
        lk_json *q  = lk_realloc(J->stack, nc * sizeof *q);
        if (!q) return oom(J);
        J->stack     = q;
        J->cap_stack = nc;
    }
    J->stack[J->n_stack++] = *v;
    return LK_OK;
}

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int read_u4(jp *J, unsigned *u) {
    if (J->end - J->p < 4) return 0;
    unsigned x = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval(J->p[k]);
        if (h < 0) return 0;
        x = x * 16 + (unsigned)h;
    }
    J->p += 4;
    *u = x;
    return 1;
}

/* Length of the well-formed UTF-8 sequence at p (RFC 3629 table), 0 when ill-formed. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end) {
    size_t        avail = (size_t)(end - p);
    unsigned char c     = p[0];
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) return avail >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (avail < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80) return 0;
        if (c == 0xe0 && p[1] < 0xa0) return 0; /* overlong */
        if (c == 0xed && p[1] > 0x9f) return 0; /* surrogate */
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (avail < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 ||
            (p[3] & 0xc0) != 0x80)
            return 0;
        if (c == 0xf0 && p[1] < 0x90) return 0; /* overlong */
        if (c == 0xf4 && p[1] > 0x8f) return 0; /* above U+10FFFF */
        return 4;
    }
    return 0;
}

static size_t put_utf8(unsigned char *o, unsigned cp) {
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xc0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xe0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (unsigned char)(0xf0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Parses a string at J->p (on the opening quote) into the arena.  The decoded text is never
 * longer than the raw text, so one allocation of the raw length suffices. */
static lk_status parse_string(jp *J, const char **out, size_t *out_len) {
    const unsigned char *start = ++J->p, *q = start;
    /* First pass: find the closing quote (escapes skip one byte) to size the buffer. */
    while (q < J->end && *q != '"') q += (*q == '\\' && q + 1 < J->end) ? 2 : 1;
    if (q >= J->end) return jfail(J, "unterminated string");
    unsigned char *o = arena_get(J->doc, (size_t)(q - start) + 1);
    if (!o) return oom(J);
    size_t n = 0;
    while (*J->p != '"') {
        unsigned char c = *J->p;
        if (c < 0x20) return jfail(J, "raw control character in string");
        if (c == '\\') {
            J->p++;
            unsigned char e = *J->p++;
            switch (e) {
            case '"': o[n++] = '"'; break;
            case '\\': o[n++] = '\\'; break;
            case '/': o[n++] = '/'; break;
            case 'b': o[n++] = '\b'; break;
            case 'f': o[n++] = '\f'; break;
            case 'n': o[n++] = '\n'; break;
            case 'r': o[n++] = '\r'; break;
            case 't': o[n++] = '\t'; break;
            case 'u': {
                unsigned u, lo;
                if (!read_u4(J, &u)) return jfail(J, "bad \\u escape");
                if (u >= 0xdc00 && u <= 0xdfff) return jfail(J, "lone low surrogate escape");
                if (u >= 0xd800 && u <= 0xdbff) {
                    if (J->end - J->p < 6 || J->p[0] != '\\' || J->p[1] != 'u')
                        return jfail(J, "high surrogate escape without a low surrogate");
                    J->p += 2;
                    if (!read_u4(J, &lo) || lo < 0xdc00 || lo > 0xdfff)
                        return jfail(J, "high surrogate escape without a low surrogate");
                    u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
                }
                if (u == 0) return jfail(J, "\\u0000 in string is not supported");
                n += put_utf8(o + n, u);
                break;
            }
            default: J->p--; return jfail(J, "bad escape in string");
            }
            continue;
        }
        size_t k = utf8_seq(J->p, J->end);
        if (!k) return jfail(J, "invalid UTF-8 in string");
        memcpy(o + n, J->p, k);
        n += k;
        J->p += k;
    }
    J->p++;
    o[n]     = '\0';
    *out     = (const char *)o;
    *out_len = n;
    return LK_OK;
}

static lk_status parse_number(jp *J, lk_json *v) {
    const unsigned char *s = J->p;
    int                  frac = 0, neg = 0;
    if (J->p < J->end && *J->p == '-') {
        neg = 1;
        J->p++;
    }
    if (J->p >= J->end || *J->p < '0' || *J->p > '9') return jfail(J, "bad number");
    if (*J->p == '0') {
        J->p++;
        if (J->p < J->end && *J->p >= '0' && *J->p <= '9')
            return jfail(J, "number with a leading zero");
    } else {
        while (J->p < J->end && *J->p >= '0' && *J->p <= '9') J->p++;
    }
    if (J->p < J->end && *J->p == '.') {
        frac = 1;
        J->p++;
        if (J->p >= J->end || *J->p < '0' || *J->p > '9') return jfail(J, "bad fraction");
        while (J->p < J->end && *J->p >= '0' && *J->p <= '9') J->p++;
    }
    if (J->p < J->end && (*J->p == 'e' || *J->p == 'E')) {
        frac = 1;
        J->p++;
        if (J->p < J->end && (*J->p == '+' || *J->p == '-')) J->p++;
        if (J->p >= J->end || *J->p < '0' || *J->p > '9') return jfail(J, "bad exponent");
        while (J->p < J->end && *J->p >= '0' && *J->p <= '9') J->p++;
    }
    size_t n = (size_t)(J->p - s);
    char   buf[64], *heap = NULL, *z = buf;
    if (n >= sizeof buf) {
        heap = lk_malloc(n + 1);
        if (!heap) return oom(J);
        z = heap;
    }
    memcpy(z, s, n);
    z[n]   = '\0';
    v->num = strtod(z, NULL);
    lk_free(heap);
    v->type   = LK_JSON_NUM;
    v->is_int = 0;
    if (!frac) {
        /* Exact integer accumulation; overflow leaves only the double. */
        uint64_t acc = 0, lim = neg ? (uint64_t)INT64_MAX + 1u : (uint64_t)INT64_MAX;
        int      ok  = 1;
        for (const unsigned char *d = s + neg; d < J->p; d++) {
            uint64_t dg = (uint64_t)(*d - '0');
            if (acc > (lim - dg) / 10) {
                ok = 0;
                break;
            }
            acc = acc * 10 + dg;
        }
        if (ok) {
            v->is_int = 1;
            v->i      = neg ? (acc == (uint64_t)INT64_MAX + 1u ? INT64_MIN : -(int64_t)acc)
                            : (int64_t)acc;
        }
    } else if (isfinite(v->num) && v->num == floor(v->num) && fabs(v->num) <= 9007199254740992.0) {
        v->is_int = 1;
        v->i      = (int64_t)v->num;
    }
    if (!isfinite(v->num)) return jfail(J, "number out of range");
    return LK_OK;
}

static int keycmp(const void *a, const void *b) {
    const lk_json *const *x = a, *const *y = b;
    return strcmp((*x)->key, (*y)->key);
}

/* Reports the first duplicated key among the n members at items. */
static lk_status check_dups(jp *J, const lk_json *items, size_t n) {
    if (n < 2) return LK_OK;
    if (n <= 8) {
        for (size_t a = 0; a < n; a++)
            for (size_t b = a + 1; b < n; b++)
                if (strcmp(items[a].key, items[b].key) == 0)
                    return LK_FAIL(J->err, LK_EFORMAT, "JSON: byte %zu: duplicate key \"%s\"",
                                   items[b].offset, items[b].key);
        return LK_OK;
    }
    const lk_json **ix = lk_malloc(n * sizeof *ix);
    if (!ix) return oom(J);
    for (size_t k = 0; k < n; k++) ix[k] = &items[k];
    qsort(ix, n, sizeof *ix, keycmp);
    lk_status s = LK_OK;
    for (size_t k = 1; k < n && !s; k++)
        if (strcmp(ix[k - 1]->key, ix[k]->key) == 0) {
            const lk_json *later = ix[k]->offset > ix[k - 1]->offset ? ix[k] : ix[k - 1];
            s = LK_FAIL(J->err, LK_EFORMAT, "JSON: byte %zu: duplicate key \"%s\"", later->offset,
                        later->key);
        }
    lk_free(ix);
    return s;
}

static lk_status parse_value(jp *J, lk_json *v, int depth);

/* Moves the children above mark on the stack into the arena as v's items. */
static lk_status close_container(jp *J, lk_json *v, size_t mark) {
    size_t n = J->n_stack - mark;
    v->n     = n;
    v->items = NULL;
    if (n) {
        lk_json *it = arena_get(J->doc, n * sizeof *it);
        if (!it) return oom(J);
        memcpy(it, J->stack + mark, n * sizeof *it);
        v->items = it;
    }
    J->n_stack = mark;
    return v->type == LK_JSON_OBJ ? check_dups(J, v->items, n) : LK_OK;
}

static lk_status parse_container(jp *J, lk_json *v, int depth) {
    int           obj   = *J->p == '{';
    unsigned char close = obj ? '}' : ']';
    size_t        mark  = J->n_stack;
    lk_status     s;
    if (depth > J->lim.max_depth) {
        char msg[80];
        snprintf(msg, sizeof msg, "nesting deeper than %d levels", J->lim.max_depth);
        return jfail(J, msg);
    }
    v->type = obj ? LK_JSON_OBJ : LK_JSON_ARR;
    J->p++;
    skip_ws(J);
    if (J->p < J->end && *J->p == close) {
        J->p++;
        return close_container(J, v, mark);
    }
    for (;;) {
        lk_json     child;
        const char *key = NULL;
        size_t      klen;
        skip_ws(J);
        if (obj) {
            if (J->p >= J->end || *J->p != '"') return jfail(J, "expected a string key");
            size_t koff = off(J);
            s           = parse_string(J, &key, &klen);
            if (s) return s;
            skip_ws(J);
            if (J->p >= J->end || *J->p != ':') return jfail(J, "expected ':' after key");
            J->p++;
            skip_ws(J);
            s = parse_value(J, &child, depth);
            if (s) return s;
            child.key    = key;
            child.offset = koff;
        } else {
            s = parse_value(J, &child, depth);
            if (s) return s;
        }
        s = push(J, &child);
        if (s) return s;
        skip_ws(J);
        if (J->p < J->end && *J->p == ',') {
            J->p++;
            continue;
        }
        if (J->p < J->end && *J->p == close) {
            J->p++;
            return close_container(J, v, mark);
        }
        return jfail(J, obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int lit(jp *J, const char *w) {
    size_t k = strlen(w);
    if ((size_t)(J->end - J->p) < k || memcmp(J->p, w, k) != 0) return 0;
    J->p += k;
    return 1;
}

static lk_status parse_value(jp *J, lk_json *v, int depth) {
    memset(v, 0, sizeof *v);
    skip_ws(J);
    v->offset = off(J);
    if (++J->n_nodes > J->lim.max_nodes) {
        char msg[80];
        snprintf(msg, sizeof msg, "more than %zu values", J->lim.max_nodes);
        return jfail(J, msg);
    }
    if (J->p >= J->end) return jfail(J, "unexpected end of text");
    switch (*J->p) {
    case '{':
    case '[': return parse_container(J, v, depth + 1);
    case '"':
        v->type = LK_JSON_STR;
        return parse_string(J, &v->str, &v->len);
    case 't':
        if (!lit(J, "true")) break;
        v->type = LK_JSON_BOOL;
        v->b    = 1;
        return LK_OK;
    case 'f':
        if (!lit(J, "false")) break;
        v->type = LK_JSON_BOOL;
        return LK_OK;
    case 'n':
        if (!lit(J, "null")) break;
        v->type = LK_JSON_NULL;
        return LK_OK;
    default:
        if (*J->p == '-' || (*J->p >= '0' && *J->p <= '9')) return parse_number(J, v);
        break;
    }
    return jfail(J, "unexpected character");
}

lk_status lk_json_parse(const char *text, size_t len, const lk_json_limits *lim,
                        lk_json_doc **out, lk_error *err) {
    jp J;
    *out = NULL;
    memset(&J, 0, sizeof J);
    J.base = J.p = (const unsigned char *)text;
    J.end        = J.p + len;
    J.lim        = lim ? *lim : lk_json_limits_default();
    J.err        = err;
    J.doc        = lk_calloc(1, sizeof *J.doc);
    if (!J.doc) return LK_FAIL(err, LK_ENOMEM, "JSON: out of memory");
    lk_status s = parse_value(&J, &J.doc->root, 0);
    if (!s) {
        skip_ws(&J);
        if (J.p != J.end) s = jfail(&J, "trailing characters after the JSON value");
    }
    lk_free(J.stack);
    if (s) {
        lk_json_free(J.doc);
        return s;
    }
    *out = J.doc;
    return LK_OK;
}

const lk_json *lk_json_get(const lk_json *v, const char *key) {
    if (!v || v->type != LK_JSON_OBJ) return NULL;
    for (size_t k = 0; k < v->n; k++)
        if (strcmp(v->items[k].key, key) == 0) return &v->items[k];
    return NULL;
}

const char *lk_json_type_name(lk_json_type t) {
    static const char *const names[LK_JSON_TYPE_COUNT] = {"null",   "bool",  "number",
                                                          "string", "array", "object"};
    return (unsigned)t < LK_JSON_TYPE_COUNT ? names[t] : "?";
}

const char *lk_json_str(const lk_json *v) { return v && v->type == LK_JSON_STR ? v->str : NULL; }

int lk_json_int(const lk_json *v, int64_t *out) {
    if (!v || v->type != LK_JSON_NUM || !v->is_int) return 0;
    *out = v->i;
    return 1;
}

int lk_json_num(const lk_json *v, double *out) {
    if (!v || v->type != LK_JSON_NUM) return 0;
    *out = v->num;
    return 1;
}

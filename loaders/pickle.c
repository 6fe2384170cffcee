/*
 * pickle.c: the restricted pickle VM (formats.md §3.4-§3.5).
 *
 * State: a value stack, a mark stack (stack heights at each MARK, as Python's metastack) and
 * a memo.  Values come from slabs owned by the VM.  Nothing is ever imported or called:
 * GLOBAL/STACK_GLOBAL only record a name, and REDUCE/NEWOBJ/INST/OBJ dispatch on that name to
 * a handful of allow-listed builders (OrderedDict, tensor and parameter rebuilders); any
 * other callable produces an opaque object, so REDUCE chains on opaque objects only build
 * more opaque objects.  Every length is checked against the remaining bytes before use.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pickle-impl.h"
#include "util/lk_util.h"

#define SLAB 512

struct lk_pickle {
    lk_pv  **slabs;   /* each SLAB values */
    size_t   n_slabs, cap_slabs, used;   /* used: values taken from the last slab */
    size_t   n_objects;
    lk_pv  **stack;
    size_t   sp, cap_stack;
    size_t  *marks;
    size_t   n_marks, cap_marks;
    lk_pv  **memo;
    size_t   n_memo, cap_memo;           /* n_memo: highest index set + 1 */
    lk_pv  **storages;                   /* every storage built, in order */
    size_t   n_storages, cap_storages;
    /* Current run, for messages and reads. */
    const unsigned char *buf;
    size_t   len, pos, at;
    unsigned op;
};

/* ---- opcode names (messages only) ---------------------------------------------------------- */

static const char *op_name(unsigned op) {
    switch (op) {
    case 0x80: return "PROTO";       case 0x95: return "FRAME";      case '.': return "STOP";
    case '(': return "MARK";         case '}': return "EMPTY_DICT";  case ']': return "EMPTY_LIST";
    case ')': return "EMPTY_TUPLE";  case 't': return "TUPLE";       case 0x85: return "TUPLE1";
    case 0x86: return "TUPLE2";      case 0x87: return "TUPLE3";     case 'd': return "DICT";
    case 'l': return "LIST";         case 'J': return "BININT";      case 'K': return "BININT1";
    case 'M': return "BININT2";      case 0x8a: return "LONG1";      case 0x8b: return "LONG4";
    case 'G': return "BINFLOAT";     case 'F': return "FLOAT";       case 'N': return "NONE";
    case 0x88: return "NEWTRUE";     case 0x89: return "NEWFALSE";   case 'X': return "BINUNICODE";
    case 0x8c: return "SHORT_BINUNICODE"; case 0x8d: return "BINUNICODE8";
    case 'U': return "SHORT_BINSTRING";   case 'T': return "BINSTRING";
    case 'C': return "SHORT_BINBYTES";    case 'B': return "BINBYTES";
    case 0x8e: return "BINBYTES8";   case 0x96: return "BYTEARRAY8"; case 'q': return "BINPUT";
    case 'r': return "LONG_BINPUT";  case 0x94: return "MEMOIZE";    case 'h': return "BINGET";
    case 'j': return "LONG_BINGET";  case 'p': return "PUT";         case 'g': return "GET";
    case 'I': return "INT";          case 'L': return "LONG";        case 's': return "SETITEM";
    case 'u': return "SETITEMS";     case 'a': return "APPEND";      case 'e': return "APPENDS";
    case 0x8f: return "EMPTY_SET";   case 0x90: return "ADDITEMS";   case 0x91: return "FROZENSET";
    case 'c': return "GLOBAL";       case 0x93: return "STACK_GLOBAL"; case 'R': return "REDUCE";
    case 'b': return "BUILD";        case 0x81: return "NEWOBJ";     case 0x92: return "NEWOBJ_EX";
    case 'i': return "INST";         case 'o': return "OBJ";         case 'Q': return "BINPERSID";
    case 'P': return "PERSID";       case '0': return "POP";         case '1': return "POP_MARK";
    case '2': return "DUP";          case 'S': return "STRING";      case 'V': return "UNICODE";
    case 0x82: return "EXT1";        case 0x83: return "EXT2";       case 0x84: return "EXT4";
    case 0x97: return "NEXT_BUFFER"; case 0x98: return "READONLY_BUFFER";
    default: return "unknown";
    }
}

/* Fails naming the opcode and its offset; used through VFAIL. */
#define VFAIL(vm, err, code, fmt, ...)                                                        \
    LK_FAIL(err, code, "pickle: offset %zu: %s: " fmt, (vm)->at, op_name((vm)->op),          \
            __VA_ARGS__)

const char *lk_pv_kind_name(lk_pv_kind k) {
    static const char *const names[LK_PV_KIND_COUNT] = {
        "None", "bool", "int", "int", "float", "str", "bytes", "tuple", "list", "set", "dict",
        "global", "object", "storage", "tensor",
    };
    return (unsigned)k < LK_PV_KIND_COUNT ? names[k] : "?";
}

/* ---- VM lifetime ----------------------------------------------------------------------------- */

lk_status lk_pickle_alloc(lk_pickle **out, lk_error *err) {
    *out = lk_calloc(1, sizeof **out);
    if (!*out) return LK_FAIL(err, LK_ENOMEM, "pickle: out of memory");
    return LK_OK;
}

static void pv_release(lk_pv *v) {
    switch (v->kind) {
    case LK_PV_STR: case LK_PV_BYTES: case LK_PV_BIGINT: lk_free(v->u.str.s); break;
    case LK_PV_TUPLE: case LK_PV_LIST: case LK_PV_SET: lk_free(v->u.seq.v); break;
    case LK_PV_DICT:
        lk_free(v->u.dict.k);
        lk_free(v->u.dict.v);
        break;
    case LK_PV_GLOBAL:
        lk_free(v->u.global.module);
        lk_free(v->u.global.name);
        break;
    default: break;
    }
}

void lk_pickle_free(lk_pickle *vm) {
    if (!vm) return;
    for (size_t s = 0; s < vm->n_slabs; s++) {
        size_t n = s + 1 == vm->n_slabs ? vm->used : SLAB;
        for (size_t i = 0; i < n; i++) pv_release(&vm->slabs[s][i]);
        lk_free(vm->slabs[s]);
    }
    lk_free(vm->slabs);
    lk_free(vm->stack);
    lk_free(vm->marks);
    lk_free(vm->memo);
    lk_free(vm->storages);
    lk_free(vm);
}

/* A fresh zeroed value of kind k owned by the VM. */
static lk_status new_pv(lk_pickle *vm, lk_pv_kind k, lk_pv **out, lk_error *err) {
    if (vm->n_objects >= LK_PICKLE_MAX_OBJECTS)
        return VFAIL(vm, err, LK_EFORMAT, "more than %u values built (cap)",
                     LK_PICKLE_MAX_OBJECTS);
    if (vm->n_slabs == 0 || vm->used == SLAB) {
        if (!lk_grow((void **)&vm->slabs, &vm->cap_slabs, vm->n_slabs + 1, sizeof *vm->slabs))
            return LK_FAIL(err, LK_ENOMEM, "pickle: out of memory");
        lk_pv *s = lk_malloc(SLAB * sizeof *s);
        if (!s) return LK_FAIL(err, LK_ENOMEM, "pickle: out of memory");
        vm->slabs[vm->n_slabs++] = s;
        vm->used                 = 0;
    }
    lk_pv *v = &vm->slabs[vm->n_slabs - 1][vm->used++];
    memset(v, 0, sizeof *v);
    v->kind = k;
    vm->n_objects++;
    *out = v;
    return LK_OK;
}

/* ---- stack and marks ------------------------------------------------------------------------ */

static size_t base_sp(const lk_pickle *vm) {
    return vm->n_marks ? vm->marks[vm->n_marks - 1] : 0;
}

static lk_status push(lk_pickle *vm, lk_pv *v, lk_error *err) {
    if (vm->sp >= LK_PICKLE_MAX_STACK)
        return VFAIL(vm, err, LK_EFORMAT, "stack deeper than %u values (cap)",
                     LK_PICKLE_MAX_STACK);
    if (!lk_grow((void **)&vm->stack, &vm->cap_stack, vm->sp + 1, sizeof *vm->stack))
        return LK_FAIL(err, LK_ENOMEM, "pickle: out of memory");
    vm->stack[vm->sp++] = v;
    return LK_OK;
}

static lk_status pop(lk_pickle *vm, lk_pv **v, lk_error *err) {
    if (vm->sp <= base_sp(vm)) return VFAIL(vm, err, LK_EFORMAT, "%s", "stack underflow");
    *v = vm->stack[--vm->sp];
    return LK_OK;
}

static lk_status top(lk_pickle *vm, lk_pv **v, lk_error *err) {
    if (vm->sp <= base_sp(vm)) return VFAIL(vm, err, LK_EFORMAT, "%s", "stack is empty");
    *v = vm->stack[vm->sp - 1];
    return LK_OK;
}

/* Pops everything above the last mark: items are stack[*start .. vm->sp) until the next push. */
static lk_status pop_mark(lk_pickle *vm, size_t *start, lk_error *err) {
    if (!vm->n_marks) return VFAIL(vm, err, LK_EFORMAT, "%s", "no MARK on the stack");
    *start = vm->marks[--vm->n_marks];
    return LK_OK;
}

/* ---- containers ----------------------------------------------------------------------------- */

static int is_container(const lk_pv *v) {
    return v->kind == LK_PV_TUPLE || v->kind == LK_PV_LIST || v->kind == LK_PV_SET ||
           v->kind == LK_PV_DICT || v->kind == LK_PV_OBJECT;
}

/* Records that child now sits inside parent and enforces the nesting cap. */
static lk_status nest(lk_pickle *vm, lk_pv *parent, const lk_pv *child, lk_error *err) {
    if (is_container(child) && child->depth + 1 > parent->depth) {
        if (child->depth + 1 > LK_PICKLE_MAX_DEPTH)
            return VFAIL(vm, err, LK_EFORMAT, "containers nested deeper than %d (cap)",
                         LK_PICKLE_MAX_DEPTH);
        parent->depth = child->depth + 1;
    }
    return LK_OK;
}

static lk_status seq_add(lk_pickle *vm, lk_pv *s, lk_pv *v, lk_error *err) {
    lk_status st = nest(vm, s, v, err);
    if (st) return st;
    if (!lk_grow((void **)&s->u.seq.v, &s->u.seq.cap, s->u.seq.n + 1, sizeof *s->u.seq.v))
        return LK_FAIL(err, LK_ENOMEM, "pickle: out of memory");
    s->u.seq.v[s->u.seq.n++] = v;
    return LK_OK;
}

/* Keys are appended in order.  Python would replace an existing key; real checkpoints never
 * repeat one, and a repeated tensor name is reported when the model is built. */
static lk_status dict_set(lk_pickle *vm, lk_pv *d, lk_pv *k, lk_pv *v, lk_error *err) {
    if (k->kind == LK_PV_LIST || k->kind == LK_PV_DICT || k->kind == LK_PV_SET)
        return VFAIL(vm, err, LK_EFORMAT, "unhashable dict key of type %s",
                     lk_pv_kind_name(k->kind));
    lk_status st = nest(vm, d, k, err);
    if (!st) st = nest(vm, d, v, err);
    if (st) return st;
    size_t cap = d->u.dict.cap;
    if (d->u.dict.n + 1 > cap) {
        size_t nc = cap ? cap * 2 : 8;
        lk_pv **nk = lk_realloc(d->u.dict.k, nc * sizeof *nk);
        if (!nk) return LK_FAIL(err, LK_ENOMEM, "pickle: out of memory");
        d->u.dict.k = nk;
        lk_pv **nv  = lk_realloc(d->u.dict.v, nc * sizeof *nv);
        if (!nv) return LK_FAIL(err, LK_ENOMEM, "pickle: out of memory");
        d->u.dict.v   = nv;
        d->u.dict.cap = nc;
    }
    d->u.dict.k[d->u.dict.n] = k;
    d->u.dict.v[d->u.dict.n] = v;
    d->u.dict.n++;
    return LK_OK;
}

/* Container that SETITEM(S)/APPEND(S) write into: the value itself, or an opaque object's
 * item store (created on demand). */
static lk_status target(lk_pickle *vm, lk_pv *t, lk_pv_kind want, lk_pv **out, lk_error *err) {
    if (t->kind == want) {
        *out = t;
        return LK_OK;
    }
    if (t->kind == LK_PV_OBJECT) {
        if (!t->u.obj.items) {
            lk_status s = new_pv(vm, want, &t->u.obj.items, err);
            if (s) return s;
        }
        if (t->u.obj.items->kind != want)
            return VFAIL(vm, err, LK_EFORMAT, "object receives both items and list elements%s",
                         "");
        *out = t->u.obj.items;
        return nest(vm, t, t->u.obj.items, err);
    }
    return VFAIL(vm, err, LK_EFORMAT, "target is a %s, not a %s", lk_pv_kind_name(t->kind),
                 lk_pv_kind_name(want));
}

/* A tuple/list/set built from stack[start .. sp), which is then popped. */
static lk_status collect(lk_pickle *vm, lk_pv_kind k, size_t start, lk_pv **out, lk_error *err) {
    lk_pv    *v = NULL;
    lk_status s = new_pv(vm, k, &v, err);
    if (s) return s;
    size_t n = vm->sp - start;
    if (n) {
        v->u.seq.v = lk_malloc(n * sizeof *v->u.seq.v);
        if (!v->u.seq.v) return LK_FAIL(err, LK_ENOMEM, "pickle: out of memory");
        v->u.seq.cap = n;
        for (size_t i = 0; i < n; i++) {
            s = nest(vm, v, vm->stack[start + i], err);
            if (s) return s;
            v->u.seq.v[i] = vm->stack[start + i];
        }
        v->u.seq.n = n;
    }
    vm->sp = start;
    *out   = v;
    return LK_OK;
}

/* ---- reading the byte stream ------------------------------------------------------------------ */

static lk_status need(lk_pickle *vm, uint64_t n, lk_error *err) {
    if (n > vm->len - vm->pos)
        return VFAIL(vm, err, LK_EFORMAT, "needs %llu bytes but only %zu remain",
                     (unsigned long long)n, vm->len - vm->pos);
    return LK_OK;
}

static uint64_t rd_le(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Reads n little-endian bytes after the opcode. */
static lk_status arg_le(lk_pickle *vm, int n, uint64_t *v, lk_error *err) {
    lk_status s = need(vm, (uint64_t)n, err);
    if (s) return s;
    *v = rd_le(vm->buf + vm->pos, n);
    vm->pos += (size_t)n;
    return LK_OK;
}

/* A '\n'-terminated line (protocol 0 arguments, GLOBAL names); p and n exclude the newline. */
static lk_status line(lk_pickle *vm, const char **p, size_t *n, lk_error *err) {
    const unsigned char *s  = vm->buf + vm->pos;
    const unsigned char *nl = memchr(s, '\n', vm->len - vm->pos);
    if (!nl) return VFAIL(vm, err, LK_EFORMAT, "%s", "argument line has no newline");
    *p = (const char *)s;
    *n = (size_t)(nl - s);
    vm->pos += *n + 1;
    return LK_OK;
}

static char *dup_n(const char *s, size_t n) {
    char *z = lk_malloc(n + 1);
    if (!z) return NULL;
    if (n) memcpy(z, s, n);
    z[n] = '\0';
    return z;
}

/* A string/bytes value copying n bytes at the read position. */
static lk_status push_bytes(lk_pickle *vm, lk_pv_kind k, uint64_t n, lk_error *err) {
    lk_pv    *v = NULL;
    lk_status s = need(vm, n, err);
    if (!s) s = new_pv(vm, k, &v, err);
    if (s) return s;
    v->u.str.s = dup_n((const char *)vm->buf + vm->pos, (size_t)n);
    if (!v->u.str.s) return LK_FAIL(err, LK_ENOMEM, "pickle: out of memory for %llu bytes",
                                    (unsigned long long)n);
    v->u.str.n = (size_t)n;
    vm->pos += (size_t)n;
    return push(vm, v, err);
}

static lk_status push_int(lk_pickle *vm, lk_pv_kind k, int64_t i, lk_error *err) {
    lk_pv    *v = NULL;
    lk_status s = new_pv(vm, k, &v, err);
    if (s) return s;
    v->u.i = i;
    return push(vm, v, err);
}

static lk_status push_float(lk_pickle *vm, double f, lk_error *err) {
    lk_pv    *v = NULL;
    lk_status s = new_pv(vm, LK_PV_FLOAT, &v, err);
    if (s) return s;
    v->u.f = f;
    return push(vm, v, err);
}

/* LONG1/LONG4 payload: little-endian two's complement of n bytes. */
static lk_status push_long(lk_pickle *vm, uint64_t n, lk_error *err) {
    lk_status s = need(vm, n, err);
    if (s) return s;
    const unsigned char *p = vm->buf + vm->pos;
    if (n == 0) {
        vm->pos += 0;
        return push_int(vm, LK_PV_INT, 0, err);
    }
    int    neg = (p[n - 1] & 0x80) != 0;
    size_t sig = (size_t)n;
    /* Drop redundant sign-extension bytes, keeping the sign bit in the last one. */
    while (sig > 1 && p[sig - 1] == (neg ? 0xff : 0x00) && ((p[sig - 2] & 0x80) != 0) == neg)
        sig--;
    if (sig <= 8) {
        uint64_t u = rd_le(p, (int)sig);
        if (neg && sig < 8) u |= ~(uint64_t)0 << (8 * sig);
        vm->pos += (size_t)n;
        return push_int(vm, LK_PV_INT, (int64_t)u, err);
    }
    return push_bytes(vm, LK_PV_BIGINT, n, err);
}

/* Decimal integer text (INT, LONG, PUT, GET); a trailing 'L' is allowed. */
static int parse_dec(const char *p, size_t n, int64_t *out) {
    size_t i = 0;
    int    neg = 0;
    if (n && p[n - 1] == 'L') n--;
    if (i < n && (p[i] == '-' || p[i] == '+')) neg = p[i++] == '-';
    if (i == n) return 0;
    uint64_t v = 0;
    for (; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return 0;
        if (v > (UINT64_C(1) << 63) / 10) return 0;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    if (v > (UINT64_C(1) << 63) - (neg ? 0 : 1)) return 0;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 1;
}

static lk_status text_int(lk_pickle *vm, int64_t *v, const char **p, size_t *n, lk_error *err) {
    lk_status s = line(vm, p, n, err);
    if (s) return s;
    if (!parse_dec(*p, *n, v))
        return VFAIL(vm, err, LK_EFORMAT, "'%.*s' is not a 64-bit decimal integer",
                     (int)(*n > 40 ? 40 : *n), *p);
    return LK_OK;
}

static size_t put_utf8(char *o, uint32_t c) {
    if (c < 0x80) { o[0] = (char)c; return 1; }
    if (c < 0x800) { o[0] = (char)(0xc0 | (c >> 6)); o[1] = (char)(0x80 | (c & 0x3f)); return 2; }
    if (c < 0x10000) {
        o[0] = (char)(0xe0 | (c >> 12));
        o[1] = (char)(0x80 | ((c >> 6) & 0x3f));
        o[2] = (char)(0x80 | (c & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | ((c >> 18) & 0x07));
    o[1] = (char)(0x80 | ((c >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3f));
    o[3] = (char)(0x80 | (c & 0x3f));
    return 4;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Protocol 0 STRING ('quoted', Python escapes) and UNICODE (raw-unicode-escape) arguments,
 * decoded to UTF-8.  Every output byte needs at most 4 bytes per input byte. */
static lk_status push_text(lk_pickle *vm, int quoted, lk_error *err) {
    const char *p = NULL;
    size_t      n = 0;
    lk_pv      *v = NULL;
    lk_status   s = line(vm, &p, &n, err);
    if (s) return s;
    if (quoted) {
        if (n < 2 || (p[0] != '\'' && p[0] != '"') || p[n - 1] != p[0])
            return VFAIL(vm, err, LK_EFORMAT, "%s", "STRING argument is not quoted");
        p++;
        n -= 2;
    }
    s = new_pv(vm, LK_PV_STR, &v, err);
    if (s) return s;
    char *o = lk_malloc(4 * n + 1);
    if (!o) return LK_FAIL(err, LK_ENOMEM, "pickle: out of memory");
    v->u.str.s = o;
    size_t k   = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c != '\\' || i + 1 == n) {
            k += quoted ? (o[k] = (char)c, 1) : put_utf8(o + k, c);
            continue;
        }
        char e = p[++i];
        int  digits = quoted ? (e == 'x' ? 2 : 0) : (e == 'u' ? 4 : e == 'U' ? 8 : 0);
        if (digits) {
            uint32_t cp = 0;
            if (i + (size_t)digits >= n)
                return VFAIL(vm, err, LK_EFORMAT, "%s", "truncated escape in text string");
            for (int d = 1; d <= digits; d++) {
                int h = hexval(p[i + (size_t)d]);
                if (h < 0) return VFAIL(vm, err, LK_EFORMAT, "%s", "bad escape in text string");
                cp = cp * 16 + (uint32_t)h;
            }
            i += (size_t)digits;
            if (cp > 0x10ffff) return VFAIL(vm, err, LK_EFORMAT, "%s", "escape out of range");
            k += quoted ? (o[k] = (char)cp, 1) : put_utf8(o + k, cp);
        } else if (quoted) {
            o[k++] = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e == '0' ? '\0' : e;
        } else {
            k += put_utf8(o + k, '\\');
            k += put_utf8(o + k, (unsigned char)e);
        }
    }
    o[k]       = '\0';
    v->u.str.n = k;
    return push(vm, v, err);
}

/* ---- globals ---------------------------------------------------------------------------------- */

typedef struct storage_type {
    const char *name;
    lk_dtype    dtype;
    int         complex;
} storage_type;

static const storage_type storage_types[] = {
    {"BFloat16Storage", LK_BF16, 0}, {"BoolStorage", LK_BOOL, 0},
    {"ByteStorage", LK_U8, 0},       {"CharStorage", LK_I8, 0},
    {"ComplexDoubleStorage", LK_F64, 2}, {"ComplexFloatStorage", LK_F32, 2},
    {"DoubleStorage", LK_F64, 0},    {"FloatStorage", LK_F32, 0},
    {"HalfStorage", LK_F16, 0},      {"IntStorage", LK_I32, 0},
    {"LongStorage", LK_I64, 0},      {"ShortStorage", LK_I16, 0},
};

static const struct {
    const char *module, *name;
    lk_pg       kind;
} known_globals[] = {
    {"collections", "OrderedDict", LK_PG_ORDERED_DICT},
    {"torch._utils", "_rebuild_tensor", LK_PG_REBUILD_TENSOR},
    {"torch._utils", "_rebuild_tensor_v2", LK_PG_REBUILD_TENSOR_V2},
    {"torch._utils", "_rebuild_parameter", LK_PG_REBUILD_PARAMETER},
    {"torch._utils", "_rebuild_parameter_with_state", LK_PG_REBUILD_PARAMETER_STATE},
    {"torch._utils", "_rebuild_qtensor", LK_PG_REBUILD_QTENSOR},
    {"torch.nn.parameter", "Parameter", LK_PG_PARAMETER},
};

static lk_status push_global(lk_pickle *vm, const char *mod, size_t mn, const char *name,
                             size_t nn, lk_error *err) {
    lk_pv    *v = NULL;
    lk_status s = new_pv(vm, LK_PV_GLOBAL, &v, err);
    if (s) return s;
    v->u.global.module = dup_n(mod, mn);
    v->u.global.name   = dup_n(name, nn);
    if (!v->u.global.module || !v->u.global.name)
        return LK_FAIL(err, LK_ENOMEM, "pickle: out of memory");
    const char *m = v->u.global.module, *n = v->u.global.name;
    for (size_t i = 0; i < sizeof known_globals / sizeof known_globals[0]; i++)
        if (strcmp(m, known_globals[i].module) == 0 && strcmp(n, known_globals[i].name) == 0)
            v->u.global.kind = known_globals[i].kind;
    if (strcmp(m, "torch") == 0)
        for (size_t i = 0; i < sizeof storage_types / sizeof storage_types[0]; i++)
            if (strcmp(n, storage_types[i].name) == 0) {
                v->u.global.kind    = LK_PG_STORAGE;
                v->u.global.dtype   = storage_types[i].dtype;
                v->u.global.complex = storage_types[i].complex;
            }
    return push(vm, v, err);
}

const char *lk_pv_class_name(const lk_pv *v, char *buf, size_t n) {
    int hops = 0;
    while (v && v->kind == LK_PV_OBJECT && hops++ < LK_PV_MAX_WALK) v = v->u.obj.cls;
    if (v && v->kind == LK_PV_GLOBAL) snprintf(buf, n, "%s.%s", v->u.global.module,
                                               v->u.global.name);
    else snprintf(buf, n, "%s", v ? lk_pv_kind_name(v->kind) : "?");
    return buf;
}

/* ---- allow-listed builders ---------------------------------------------------------------------- */

static const lk_pv *arg(const lk_pv *args, size_t i) {
    return args->u.seq.n > i ? args->u.seq.v[i] : NULL;
}

/* Tuple of non-negative ints (sizes or strides) into out; returns the count or -1. */
static int int_tuple(const lk_pv *t, int64_t *out, int max) {
    if (!t || (t->kind != LK_PV_TUPLE && t->kind != LK_PV_LIST)) return -1;
    if (t->u.seq.n > (size_t)max) return -2;
    for (size_t i = 0; i < t->u.seq.n; i++) {
        const lk_pv *e = t->u.seq.v[i];
        if (e->kind != LK_PV_INT) return -1;
        out[i] = e->u.i;
    }
    return (int)t->u.seq.n;
}

/* _rebuild_tensor(storage, offset, size, stride[, ...]) and _rebuild_tensor_v2. */
static lk_status build_tensor(lk_pickle *vm, const lk_pv *args, lk_pv **out, lk_error *err) {
    const lk_pv *st = arg(args, 0), *off = arg(args, 1);
    lk_pv       *v;
    if (!st || st->kind != LK_PV_STORAGE)
        return VFAIL(vm, err, LK_EFORMAT, "_rebuild_tensor: argument 0 is a %s, not a storage",
                     st ? lk_pv_kind_name(st->kind) : "missing value");
    if (!off || off->kind != LK_PV_INT || off->u.i < 0)
        return VFAIL(vm, err, LK_EFORMAT, "_rebuild_tensor: storage offset is not an int >= 0 "
                     "(storage '%s')", st->u.storage.key);
    lk_status s = new_pv(vm, LK_PV_TENSOR, &v, err);
    if (s) return s;
    lk_pv_tensor *t = &v->u.tensor;
    t->storage      = st;
    t->offset       = off->u.i;
    int nd = int_tuple(arg(args, 2), t->shape, LK_MAX_DIMS);
    int ns = int_tuple(arg(args, 3), t->stride, LK_MAX_DIMS);
    if (nd == -2 || ns == -2)
        return VFAIL(vm, err, LK_EUNSUPPORTED, "tensor on storage '%s' has more than %d dims",
                     st->u.storage.key, LK_MAX_DIMS);
    if (nd < 0 || ns != nd)
        return VFAIL(vm, err, LK_EFORMAT, "tensor on storage '%s': size and stride are not "
                     "int tuples of equal length", st->u.storage.key);
    t->ndim = nd;
    /* Bounds: the last element reached must sit inside the storage (or legacy view). */
    int64_t numel = st->u.storage.view_numel >= 0 ? st->u.storage.view_numel
                                                  : st->u.storage.numel;
    int64_t last = t->offset, empty = 0;
    for (int i = 0; i < nd; i++) {
        if (t->shape[i] < 0 || t->stride[i] < 0)
            return VFAIL(vm, err, LK_EFORMAT, "tensor on storage '%s': negative size or stride "
                         "in dim %d", st->u.storage.key, i);
        if (t->shape[i] == 0) empty = 1;
    }
    for (int i = 0; i < nd && !empty; i++) {
        int64_t step;
        if (__builtin_mul_overflow(t->shape[i] - 1, t->stride[i], &step) ||
            __builtin_add_overflow(last, step, &last))
            return VFAIL(vm, err, LK_EFORMAT, "tensor on storage '%s': extent overflows",
                         st->u.storage.key);
    }
    if (!empty && last >= numel)
        return VFAIL(vm, err, LK_EFORMAT, "tensor on storage '%s' reaches element %lld but the "
                     "storage has %lld", st->u.storage.key, (long long)last, (long long)numel);
    *out = v;
    return LK_OK;
}

static lk_status new_object(lk_pickle *vm, const lk_pv *cls, const lk_pv *args, lk_pv **out,
                            lk_error *err) {
    lk_status s = new_pv(vm, LK_PV_OBJECT, out, err);
    if (s) return s;
    (*out)->u.obj.cls  = cls;
    (*out)->u.obj.args = args;
    s = nest(vm, *out, cls, err);
    if (!s && args) s = nest(vm, *out, args, err);
    return s;
}

/* REDUCE: callable(*args).  Only allow-listed globals build values; nothing is called. */
static lk_status reduce(lk_pickle *vm, lk_pv *fn, lk_pv *args, lk_pv **out, lk_error *err) {
    if (args->kind != LK_PV_TUPLE)
        return VFAIL(vm, err, LK_EFORMAT, "arguments are a %s, not a tuple",
                     lk_pv_kind_name(args->kind));
    lk_pg kind = fn->kind == LK_PV_GLOBAL ? fn->u.global.kind : LK_PG_OPAQUE;
    switch (kind) {
    case LK_PG_ORDERED_DICT: {
        lk_status s = new_pv(vm, LK_PV_DICT, out, err);
        if (s) return s;
        const lk_pv *items = arg(args, 0);
        if (!items || (items->kind != LK_PV_LIST && items->kind != LK_PV_TUPLE)) return LK_OK;
        for (size_t i = 0; i < items->u.seq.n; i++) {
            lk_pv *pair = items->u.seq.v[i];
            if ((pair->kind != LK_PV_TUPLE && pair->kind != LK_PV_LIST) || pair->u.seq.n != 2)
                return VFAIL(vm, err, LK_EFORMAT, "%s", "OrderedDict item is not a pair");
            s = dict_set(vm, *out, pair->u.seq.v[0], pair->u.seq.v[1], err);
            if (s) return s;
        }
        return LK_OK;
    }
    case LK_PG_REBUILD_TENSOR:
    case LK_PG_REBUILD_TENSOR_V2: return build_tensor(vm, args, out, err);
    case LK_PG_REBUILD_PARAMETER:
    case LK_PG_REBUILD_PARAMETER_STATE:
    case LK_PG_PARAMETER: {
        lk_pv *t = args->u.seq.n ? args->u.seq.v[0] : NULL;
        if (!t || t->kind != LK_PV_TENSOR)
            return VFAIL(vm, err, LK_EFORMAT, "%s.%s: argument 0 is not a tensor",
                         fn->u.global.module, fn->u.global.name);
        *out = t;
        return LK_OK;
    }
    case LK_PG_REBUILD_QTENSOR:
        return VFAIL(vm, err, LK_EUNSUPPORTED, "%s",
                     "quantized tensors (torch._utils._rebuild_qtensor) are not supported; "
                     "dequantize before saving");
    default: return new_object(vm, fn, args, out, err);
    }
}

/* BINPERSID: ('storage', torch.XStorage, key, location, numel[, (view_key, offset, numel)]),
 * or a legacy ('module', ...) class reference. */
static lk_status persid(lk_pickle *vm, lk_pv *pid, lk_pv **out, lk_error *err) {
    /* Legacy whole-module saves persist classes as ('module', class, file, source): the
     * class stands for itself (an opaque global; the source text is never looked at). */
    if (pid->kind == LK_PV_TUPLE && pid->u.seq.n >= 2 && pid->u.seq.v[0]->kind == LK_PV_STR &&
        strcmp(pid->u.seq.v[0]->u.str.s, "module") == 0) {
        *out = pid->u.seq.v[1];
        return LK_OK;
    }
    if (pid->kind != LK_PV_TUPLE || pid->u.seq.n < 5 || pid->u.seq.v[0]->kind != LK_PV_STR ||
        strcmp(pid->u.seq.v[0]->u.str.s, "storage") != 0)
        return VFAIL(vm, err, LK_EUNSUPPORTED, "%s",
                     "persistent id is not a ('storage', type, key, location, numel) tuple");
    const lk_pv *ty = pid->u.seq.v[1], *key = pid->u.seq.v[2], *numel = pid->u.seq.v[4];
    const lk_pv *view = pid->u.seq.n > 5 ? pid->u.seq.v[5] : NULL;
    if (key->kind != LK_PV_STR)
        return VFAIL(vm, err, LK_EFORMAT, "storage key is a %s, not a str",
                     lk_pv_kind_name(key->kind));
    if (ty->kind != LK_PV_GLOBAL || ty->u.global.kind != LK_PG_STORAGE) {
        char nm[160];
        return VFAIL(vm, err, LK_EUNSUPPORTED, "storage '%s' has unknown type %s", key->u.str.s,
                     lk_pv_class_name(ty, nm, sizeof nm));
    }
    if (numel->kind != LK_PV_INT || numel->u.i < 0)
        return VFAIL(vm, err, LK_EFORMAT, "storage '%s': element count is not an int >= 0",
                     key->u.str.s);
    if (!lk_grow((void **)&vm->storages, &vm->cap_storages, vm->n_storages + 1,
              sizeof *vm->storages))
        return LK_FAIL(err, LK_ENOMEM, "pickle: out of memory");
    lk_status s = new_pv(vm, LK_PV_STORAGE, out, err);
    if (s) return s;
    vm->storages[vm->n_storages++] = *out;
    lk_pv_storage *st = &(*out)->u.storage;
    st->dtype         = ty->u.global.dtype;
    st->complex       = ty->u.global.complex;
    st->itemsize      = lk_dtype_size(st->dtype) * (st->complex ? 2u : 1u);
    st->key           = key->u.str.s;
    st->numel         = numel->u.i;
    st->view_numel    = -1;
    st->type_name     = ty->u.global.name;
    if (view && view->kind != LK_PV_NONE) {
        if (view->kind != LK_PV_TUPLE || view->u.seq.n != 3 ||
            view->u.seq.v[1]->kind != LK_PV_INT || view->u.seq.v[2]->kind != LK_PV_INT)
            return VFAIL(vm, err, LK_EFORMAT, "storage '%s': view metadata is not "
                         "(key, offset, numel)", st->key);
        int64_t vo = view->u.seq.v[1]->u.i, vn = view->u.seq.v[2]->u.i;
        if (vo < 0 || vn < 0 || vo > st->numel || vn > st->numel - vo)
            return VFAIL(vm, err, LK_EFORMAT, "storage '%s': view [%lld, +%lld) outside %lld "
                         "elements", st->key, (long long)vo, (long long)vn,
                         (long long)st->numel);
        st->view_offset = vo;
        st->view_numel  = vn;
    }
    return LK_OK;
}

/* ---- memo ------------------------------------------------------------------------------------ */

static lk_status memo_put(lk_pickle *vm, uint64_t idx, lk_error *err) {
    lk_pv    *v = NULL;
    lk_status s = top(vm, &v, err);
    if (s) return s;
    if (idx >= LK_PICKLE_MAX_MEMO)
        return VFAIL(vm, err, LK_EFORMAT, "memo index %llu exceeds the cap %u",
                     (unsigned long long)idx, LK_PICKLE_MAX_MEMO);
    if (idx >= vm->cap_memo) {
        size_t old = vm->cap_memo;
        if (!lk_grow((void **)&vm->memo, &vm->cap_memo, (size_t)idx + 1, sizeof *vm->memo))
            return LK_FAIL(err, LK_ENOMEM, "pickle: out of memory for the memo");
        memset(vm->memo + old, 0, (vm->cap_memo - old) * sizeof *vm->memo);
    }
    vm->memo[idx] = v;
    if (idx >= vm->n_memo) vm->n_memo = (size_t)idx + 1;
    return LK_OK;
}

static lk_status memo_get(lk_pickle *vm, uint64_t idx, lk_error *err) {
    if (idx >= vm->n_memo || !vm->memo[idx])
        return VFAIL(vm, err, LK_EFORMAT, "memo index %llu was never stored",
                     (unsigned long long)idx);
    return push(vm, vm->memo[idx], err);
}

/* ---- the interpreter loop ------------------------------------------------------------------------ */

/* Opcodes that push a number, a string, bytes, None or a bool. */
static lk_status step_scalar(lk_pickle *vm, unsigned op, lk_error *err) {
    lk_pv      *v = NULL;
    uint64_t    u = 0;
    int64_t     i = 0;
    const char *p = NULL;
    size_t      pn = 0;
    lk_status   s = LK_OK;
    switch (op) {
    case 'J':
        s = arg_le(vm, 4, &u, err);
        return s ? s : push_int(vm, LK_PV_INT, (int64_t)(int32_t)(uint32_t)u, err);
    case 'K':
        s = arg_le(vm, 1, &u, err);
        return s ? s : push_int(vm, LK_PV_INT, (int64_t)u, err);
    case 'M':
        s = arg_le(vm, 2, &u, err);
        return s ? s : push_int(vm, LK_PV_INT, (int64_t)u, err);
    case 0x8a: case 0x8b:
        s = arg_le(vm, op == 0x8a ? 1 : 4, &u, err);
        return s ? s : push_long(vm, u, err);
    case 'I':
        s = line(vm, &p, &pn, err);
        if (s) return s;
        if (pn == 2 && (memcmp(p, "00", 2) == 0 || memcmp(p, "01", 2) == 0))
            return push_int(vm, LK_PV_BOOL, p[1] == '1', err);
        vm->pos -= pn + 1;
        /* fall through */
    case 'L':
        s = text_int(vm, &i, &p, &pn, err);
        return s ? s : push_int(vm, LK_PV_INT, i, err);
    case 'G': {
        s = need(vm, 8, err);
        if (s) return s;
        uint64_t bits = 0;
        for (int k = 0; k < 8; k++) bits = (bits << 8) | vm->buf[vm->pos + (size_t)k];
        vm->pos += 8;
        double d;
        memcpy(&d, &bits, sizeof d);
        return push_float(vm, d, err);
    }
    case 'F': {
        char tmp[64];
        s = line(vm, &p, &pn, err);
        if (s) return s;
        if (pn == 0 || pn >= sizeof tmp)
            return VFAIL(vm, err, LK_EFORMAT, "%s", "float text of bad length");
        memcpy(tmp, p, pn);
        tmp[pn]   = '\0';
        char  *e  = NULL;
        double d  = strtod(tmp, &e);
        if (*e) return VFAIL(vm, err, LK_EFORMAT, "'%s' is not a float", tmp);
        return push_float(vm, d, err);
    }
    case 'N':
        s = new_pv(vm, LK_PV_NONE, &v, err);
        return s ? s : push(vm, v, err);
    case 0x88: case 0x89: return push_int(vm, LK_PV_BOOL, op == 0x88, err);
    case 'X': case 'T': case 'B':
        s = arg_le(vm, 4, &u, err);
        return s ? s : push_bytes(vm, op == 'B' ? LK_PV_BYTES : LK_PV_STR, u, err);
    case 0x8c: case 'U': case 'C':
        s = arg_le(vm, 1, &u, err);
        return s ? s : push_bytes(vm, op == 'C' ? LK_PV_BYTES : LK_PV_STR, u, err);
    case 0x8d: case 0x8e: case 0x96:
        s = arg_le(vm, 8, &u, err);
        return s ? s : push_bytes(vm, op == 0x8d ? LK_PV_STR : LK_PV_BYTES, u, err);
    case 'S': return push_text(vm, 1, err);
    case 'V': return push_text(vm, 0, err);
    default:
        return VFAIL(vm, err, LK_EFORMAT, "unknown opcode 0x%02x", op);
    }
}

/* Opcodes that build or fill tuples, lists, dicts and sets. */
static lk_status step_container(lk_pickle *vm, unsigned op, lk_error *err) {
    lk_pv      *a = NULL, *b = NULL, *c = NULL, *v = NULL;
    size_t      start = 0, n = 0;
    lk_status   s = LK_OK;
    switch (op) {
    case '}': case ']': case ')': case 0x8f:
        s = new_pv(vm, op == '}' ? LK_PV_DICT : op == ']' ? LK_PV_LIST
                       : op == ')' ? LK_PV_TUPLE : LK_PV_SET, &v, err);
        return s ? s : push(vm, v, err);
    case 't': case 'l': case 0x91:
        s = pop_mark(vm, &start, err);
        if (!s) s = collect(vm, op == 't' ? LK_PV_TUPLE : op == 'l' ? LK_PV_LIST : LK_PV_SET,
                            start, &v, err);
        return s ? s : push(vm, v, err);
    case 0x85: case 0x86: case 0x87:
        n = op - 0x84u;
        if (vm->sp - base_sp(vm) < n)
            return VFAIL(vm, err, LK_EFORMAT, "needs %zu values on the stack", n);
        s = collect(vm, LK_PV_TUPLE, vm->sp - n, &v, err);
        return s ? s : push(vm, v, err);
    case 'd':
        s = pop_mark(vm, &start, err);
        if (s) return s;
        if ((vm->sp - start) % 2)
            return VFAIL(vm, err, LK_EFORMAT, "%s", "odd number of values for a dict");
        s = new_pv(vm, LK_PV_DICT, &v, err);
        for (size_t k = start; !s && k < vm->sp; k += 2)
            s = dict_set(vm, v, vm->stack[k], vm->stack[k + 1], err);
        if (s) return s;
        vm->sp = start;
        return push(vm, v, err);
    case 's':
        s = pop(vm, &b, err);
        if (!s) s = pop(vm, &a, err);
        if (!s) s = top(vm, &c, err);
        if (!s) s = target(vm, c, LK_PV_DICT, &v, err);
        return s ? s : dict_set(vm, v, a, b, err);
    case 'u':
        s = pop_mark(vm, &start, err);
        if (s) return s;
        if ((vm->sp - start) % 2)
            return VFAIL(vm, err, LK_EFORMAT, "%s", "odd number of values for SETITEMS");
        if (start <= base_sp(vm)) return VFAIL(vm, err, LK_EFORMAT, "%s", "no dict below MARK");
        s = target(vm, vm->stack[start - 1], LK_PV_DICT, &v, err);
        for (size_t k = start; !s && k < vm->sp; k += 2)
            s = dict_set(vm, v, vm->stack[k], vm->stack[k + 1], err);
        vm->sp = start;
        return s;
    case 'a':
        s = pop(vm, &b, err);
        if (!s) s = top(vm, &c, err);
        if (!s) s = target(vm, c, LK_PV_LIST, &v, err);
        return s ? s : seq_add(vm, v, b, err);
    case 'e': case 0x90:
        s = pop_mark(vm, &start, err);
        if (s) return s;
        if (start <= base_sp(vm))
            return VFAIL(vm, err, LK_EFORMAT, "%s", "no container below MARK");
        c = vm->stack[start - 1];
        if (op == 0x90 && c->kind != LK_PV_SET)
            return VFAIL(vm, err, LK_EFORMAT, "target is a %s, not a set",
                         lk_pv_kind_name(c->kind));
        s = op == 0x90 ? (v = c, LK_OK) : target(vm, c, LK_PV_LIST, &v, err);
        for (size_t k = start; !s && k < vm->sp; k++) s = seq_add(vm, v, vm->stack[k], err);
        vm->sp = start;
        return s;
    default:
        return VFAIL(vm, err, LK_EFORMAT, "unknown opcode 0x%02x", op);
    }
}

/* Opcodes that name globals and build objects (never executed: reduce, new_object and
 * persid only record them). */
static lk_status step_object(lk_pickle *vm, unsigned op, lk_error *err) {
    lk_pv      *a = NULL, *b = NULL, *c = NULL, *v = NULL;
    size_t      start = 0;
    const char *p = NULL, *q = NULL;
    size_t      pn = 0, qn = 0;
    lk_status   s = LK_OK;
    switch (op) {
    case 'c':
        s = line(vm, &p, &pn, err);
        if (!s) s = line(vm, &q, &qn, err);
        return s ? s : push_global(vm, p, pn, q, qn, err);
    case 0x93:
        s = pop(vm, &b, err);
        if (!s) s = pop(vm, &a, err);
        if (s) return s;
        if (a->kind != LK_PV_STR || b->kind != LK_PV_STR)
            return VFAIL(vm, err, LK_EFORMAT, "module and name are %s and %s, not str",
                         lk_pv_kind_name(a->kind), lk_pv_kind_name(b->kind));
        return push_global(vm, a->u.str.s, a->u.str.n, b->u.str.s, b->u.str.n, err);
    case 'R':
        s = pop(vm, &b, err);
        if (!s) s = pop(vm, &a, err);
        if (!s) s = reduce(vm, a, b, &v, err);
        return s ? s : push(vm, v, err);
    case 'b':
        s = pop(vm, &b, err);
        if (!s) s = top(vm, &a, err);
        if (s) return s;
        /* Only opaque objects keep their state; OrderedDict and tensors ignore it. */
        if (a->kind == LK_PV_OBJECT) {
            a->u.obj.state = b;
            return nest(vm, a, b, err);
        }
        return LK_OK;
    case 0x81:
        s = pop(vm, &b, err);
        if (!s) s = pop(vm, &a, err);
        if (!s) s = new_object(vm, a, b, &v, err);
        return s ? s : push(vm, v, err);
    case 0x92:
        s = pop(vm, &c, err); /* kwargs are dropped: nothing is constructed */
        if (!s) s = pop(vm, &b, err);
        if (!s) s = pop(vm, &a, err);
        if (!s) s = new_object(vm, a, b, &v, err);
        return s ? s : push(vm, v, err);
    case 'i':
        s = line(vm, &p, &pn, err);
        if (!s) s = line(vm, &q, &qn, err);
        if (!s) s = pop_mark(vm, &start, err);
        if (!s) s = collect(vm, LK_PV_TUPLE, start, &b, err);
        if (!s) s = push_global(vm, p, pn, q, qn, err);
        if (!s) s = pop(vm, &a, err);
        if (!s) s = new_object(vm, a, b, &v, err);
        return s ? s : push(vm, v, err);
    case 'o':
        s = pop_mark(vm, &start, err);
        if (s) return s;
        if (vm->sp == start) return VFAIL(vm, err, LK_EFORMAT, "%s", "OBJ without a class");
        a = vm->stack[start];
        s = collect(vm, LK_PV_TUPLE, start + 1, &b, err);
        vm->sp = start;
        if (!s) s = new_object(vm, a, b, &v, err);
        return s ? s : push(vm, v, err);
    case 'Q':
        s = pop(vm, &a, err);
        if (!s) s = persid(vm, a, &v, err);
        return s ? s : push(vm, v, err);
    case 'P':
        return VFAIL(vm, err, LK_EUNSUPPORTED, "%s", "text persistent ids are not supported");
    default:
        return VFAIL(vm, err, LK_EFORMAT, "unknown opcode 0x%02x", op);
    }
}

/* Which step function handles an opcode (0: step itself). */
static unsigned char op_class(unsigned op) {
    static const char scalar[]    = "JKMILGFNXTBUCSV\x8a\x8b\x88\x89\x8c\x8d\x8e\x96";
    static const char container[] = "}])tldsuae\x8f\x91\x85\x86\x87\x90";
    static const char object[]    = "c\x93Rb\x81\x92ioQP";
    if (op == 0) return 0;
    if (memchr(scalar, (int)op, sizeof scalar - 1)) return 1;
    if (memchr(container, (int)op, sizeof container - 1)) return 2;
    if (memchr(object, (int)op, sizeof object - 1)) return 3;
    return 0;
}

static lk_status step(lk_pickle *vm, int *stop, lk_pv **result, lk_error *err) {
    lk_pv      *v = NULL;
    uint64_t    u = 0;
    int64_t     i = 0;
    size_t      start = 0;
    const char *p = NULL;
    size_t      pn = 0;
    lk_status   s = LK_OK;
    unsigned    op = vm->op;
    switch (op_class(op)) {
    case 1: return step_scalar(vm, op, err);
    case 2: return step_container(vm, op, err);
    case 3: return step_object(vm, op, err);
    default: break;
    }
    switch (op) {
    case 0x80: /* PROTO */
        s = arg_le(vm, 1, &u, err);
        if (!s && u > 5) s = VFAIL(vm, err, LK_EUNSUPPORTED, "protocol %llu (max 5)",
                                   (unsigned long long)u);
        return s;
    case 0x95: /* FRAME: a length hint only */
        s = arg_le(vm, 8, &u, err);
        if (!s && u > vm->len - vm->pos)
            s = VFAIL(vm, err, LK_EFORMAT, "frame of %llu bytes runs past the end",
                      (unsigned long long)u);
        return s;
    case '.':
        s = pop(vm, result, err);
        if (!s) *stop = 1;
        return s;
    case '(':
        if (vm->n_marks >= LK_PICKLE_MAX_MARKS)
            return VFAIL(vm, err, LK_EFORMAT, "more than %u open MARKs (cap)",
                         LK_PICKLE_MAX_MARKS);
        if (!lk_grow((void **)&vm->marks, &vm->cap_marks, vm->n_marks + 1, sizeof *vm->marks))
            return LK_FAIL(err, LK_ENOMEM, "pickle: out of memory");
        vm->marks[vm->n_marks++] = vm->sp;
        return LK_OK;
    case 'q': case 'r':
        s = arg_le(vm, op == 'q' ? 1 : 4, &u, err);
        return s ? s : memo_put(vm, u, err);
    case 0x94: return memo_put(vm, vm->n_memo, err);
    case 'h': case 'j':
        s = arg_le(vm, op == 'h' ? 1 : 4, &u, err);
        return s ? s : memo_get(vm, u, err);
    case 'p': case 'g':
        s = text_int(vm, &i, &p, &pn, err);
        if (s) return s;
        if (i < 0) return VFAIL(vm, err, LK_EFORMAT, "negative memo index %lld", (long long)i);
        return op == 'p' ? memo_put(vm, (uint64_t)i, err) : memo_get(vm, (uint64_t)i, err);
    case '0':
        if (vm->sp > base_sp(vm)) {
            vm->sp--;
            return LK_OK;
        }
        return pop_mark(vm, &start, err);
    case '1':
        s = pop_mark(vm, &start, err);
        if (!s) vm->sp = start;
        return s;
    case '2':
        s = top(vm, &v, err);
        return s ? s : push(vm, v, err);
    case 0x82: case 0x83: case 0x84:
        return VFAIL(vm, err, LK_EUNSUPPORTED, "%s", "copyreg extension codes are not supported");
    case 0x97:
        return VFAIL(vm, err, LK_EUNSUPPORTED, "%s", "out-of-band buffers are not supported");
    case 0x98: return LK_OK;
    default:
        return VFAIL(vm, err, LK_EFORMAT, "unknown opcode 0x%02x", op);
    }
}

lk_status lk_pickle_run(lk_pickle *vm, const unsigned char *buf, size_t len, const lk_pv **root,
                        size_t *used, lk_error *err) {
    int    stop = 0;
    lk_pv *res  = NULL;
    vm->buf     = buf;
    vm->len     = len;
    vm->pos     = 0;
    vm->sp      = 0;
    vm->n_marks = 0;
    vm->n_memo  = 0;
    if (vm->memo && vm->cap_memo) memset(vm->memo, 0, vm->cap_memo * sizeof *vm->memo);
    while (!stop) {
        if (vm->pos >= len) {
            vm->at = vm->pos;
            return LK_FAIL(err, LK_EFORMAT, "pickle: truncated at offset %zu (no STOP)", len);
        }
        vm->at    = vm->pos;
        vm->op    = buf[vm->pos++];
        lk_status s = step(vm, &stop, &res, err);
        if (s) return s;
    }
    *root = res;
    if (used) *used = vm->pos;
    return LK_OK;
}

const lk_pv *lk_pv_dict_get(const lk_pv *d, const char *key) {
    if (!d || d->kind != LK_PV_DICT) return NULL;
    for (size_t i = 0; i < d->u.dict.n; i++) {
        const lk_pv *k = d->u.dict.k[i];
        if (k->kind == LK_PV_STR && strcmp(k->u.str.s, key) == 0) return d->u.dict.v[i];
    }
    return NULL;
}

size_t lk_pickle_n_storages(const lk_pickle *vm) {
    return vm->n_storages;
}

const lk_pv *lk_pickle_storage(const lk_pickle *vm, size_t i) {
    return i < vm->n_storages ? vm->storages[i] : NULL;
}

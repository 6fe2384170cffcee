/*
 * json-impl.h: a small, strict, bounded JSON reader shared by the safetensors and TF.js
 * loaders (formats.md §0).  Private to loaders/ (and tests, fuzzers).
 *
 *     lk_json_doc *d = NULL;
 *     lk_json_limits lim = lk_json_limits_default();
 *     if (lk_json_parse(text, len, &lim, &d, &err)) return err.code;
 *     const lk_json *v = lk_json_get(lk_json_root(d), "weightsManifest");
 *     for (size_t i = 0; v && v->type == LK_JSON_ARR && i < v->n; i++) ... v->items[i] ...
 *     lk_json_free(d);
 *
 * The text is parsed into a DOM that lives in one arena owned by the document.  RFC 8259
 * grammar only: no comments, no trailing commas, no NaN/Infinity, no leading zeros, no raw
 * control characters in strings.  Strings are validated as UTF-8 (no overlong forms, no
 * surrogates, nothing above U+10FFFF), escapes are decoded, and a string containing U+0000 is
 * rejected (every string is handed out NUL-terminated).  Objects keep their key order and
 * duplicate keys are an error naming the key.  Nesting depth and the node count are capped.
 * Errors are LK_EFORMAT (LK_ENOMEM when out of memory) and give the byte offset.
 */
#ifndef LKPROBE_JSON_IMPL_H
#define LKPROBE_JSON_IMPL_H

#include "lkprobe/lk_error.h"

typedef enum lk_json_type {
    LK_JSON_NULL = 0,
    LK_JSON_BOOL,
    LK_JSON_NUM,
    LK_JSON_STR,
    LK_JSON_ARR,
    LK_JSON_OBJ,
    LK_JSON_TYPE_COUNT
} lk_json_type;

typedef struct lk_json lk_json;

/* One value.  Arrays and objects hold n children in items (object members carry their key);
 * everything is borrowed from the document. */
struct lk_json {
    lk_json_type   type;
    int            b;       /* BOOL                                                        */
    int            is_int;  /* NUM: 1 when the value is integral and i holds it exactly   */
    double         num;     /* NUM                                                         */
    int64_t        i;       /* NUM with is_int                                             */
    const char    *str;     /* STR: NUL-terminated UTF-8                                   */
    size_t         len;     /* STR: length in bytes                                        */
    const char    *key;     /* member of an object: its key; NULL for array elements       */
    size_t         n;       /* ARR/OBJ: number of children                                 */
    const lk_json *items;   /* ARR/OBJ: the children in file order                         */
    size_t         offset;  /* byte offset of the value in the text                        */
};

typedef struct lk_json_limits {
    int    max_depth; /* nesting of arrays/objects; the root container is depth 1 */
    size_t max_nodes; /* values in the whole document                             */
} lk_json_limits;

typedef struct lk_json_doc lk_json_doc;

/* Depth 64, 4 million values. */
lk_json_limits lk_json_limits_default(void);

/* Parses text[0..len) (NUL bytes are not terminators).  lim NULL = defaults.  On failure
 * *out is NULL. */
lk_status      lk_json_parse(const char *text, size_t len, const lk_json_limits *lim,
                             lk_json_doc **out, lk_error *err);
void           lk_json_free(lk_json_doc *d);
const lk_json *lk_json_root(const lk_json_doc *d);

/* Member of an object by key (first match; keys are unique), or NULL (also when v is not an
 * object or NULL). */
const lk_json *lk_json_get(const lk_json *v, const char *key);
/* "null", "bool", "number", "string", "array", "object". */
const char    *lk_json_type_name(lk_json_type t);
/* The string of a STR value, or NULL. */
const char    *lk_json_str(const lk_json *v);
/* 1 when v is an integral number (stored in *out). */
int            lk_json_int(const lk_json *v, int64_t *out);
/* 1 when v is a number (stored in *out). */
int            lk_json_num(const lk_json *v, double *out);

#endif

/* test_safetensors.c: the shared JSON reader and the safetensors loader: dtype conversions
 * against numpy (expected.safetensors), zero copy of aligned F32, scalars and zero-size
 * tensors, sharded checkpoints, every validation rule on hostile files, and allocation
 * failures.  Fixtures: tests/data/safetensors/gen.py. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "loaders/json-impl.h"
#include "loaders/loaders-impl.h"

static const char *fx(const char *name, char *buf, size_t n) {
    char rel[256];
    snprintf(rel, sizeof rel, "tests/data/safetensors/%s", name);
    return tu_src_path(rel, buf, n);
}

static lk_model *load_ok(const char *name) {
    char         p[512];
    lk_error     err;
    lk_model    *m = NULL;
    lk_status    s = lk_model_load(fx(name, p, sizeof p), NULL, &m, &err);
    ck_assert_msg(s == LK_OK, "%s: %s: %s", name, lk_status_name(s), err.msg);
    return m;
}

/* Every tensor of exp is in m with the same shape and bit-identical values. */
static void same_params(const lk_model *m, const lk_model *exp) {
    int64_t n = 0;
    for (int64_t v = 0; v < lk_model_n_values(exp); v++) {
        const lk_tensor *e = lk_model_param(exp, v);
        if (!e) continue;
        n++;
        const char *name = lk_model_value_name(exp, v);
        int64_t     w    = lk_model_find_value(m, name);
        ck_assert_msg(w >= 0, "tensor '%s' missing", name);
        const lk_tensor *t = lk_model_param(m, w);
        ck_assert_msg(t != NULL, "'%s' is not a parameter", name);
        ck_assert_int_eq(t->ndim, e->ndim);
        for (int k = 0; k < t->ndim; k++) ck_assert_int_eq(t->shape[k], e->shape[k]);
        int64_t cnt = lk_tensor_numel(t);
        ck_assert_msg(cnt == 0 || memcmp(t->data, e->data, (size_t)cnt * 4) == 0,
                      "'%s': values differ (first %g vs %g)", name,
                      (double)((const float *)t->data)[0], (double)((const float *)e->data)[0]);
    }
    ck_assert_int_gt(n, 0);
    int64_t nm = 0;
    for (int64_t v = 0; v < lk_model_n_values(m); v++) nm += lk_model_param(m, v) != NULL;
    ck_assert_int_eq(nm, n);
}

START_TEST(test_json) {
    static const struct {
        const char *text;
        int         ok;
        const char *needle;
    } cases[] = {
        {"{\"a\": [1, -2.5e3, true, false, null, \"x\\u00e9\\ud83d\\ude00\"]}", 1, NULL},
        {"  [ ]  ", 1, NULL},
        {"{\"a\":1,\"b\":2,\"a\":3}", 0, "duplicate key \"a\""},
        {"{\"k1\":0,\"k2\":0,\"k3\":0,\"k4\":0,\"k5\":0,\"k6\":0,\"k7\":0,\"k8\":0,\"k9\":0,\"k3\":1}",
         0, "duplicate key \"k3\""},
        {"[1,]", 0, "unexpected character"},
        {"[01]", 0, "leading zero"},
        {"{\"a\":1} x", 0, "trailing"},
        {"\"\\ud800\"", 0, "surrogate"},
        {"\"\\udc00x\"", 0, "surrogate"},
        {"\"a\\u0000b\"", 0, "\\u0000"},
        {"\"\xc0\xaf\"", 0, "UTF-8"},
        {"\"\xed\xa0\x80\"", 0, "UTF-8"},
        {"\"\xf4\x90\x80\x80\"", 0, "UTF-8"},
        {"\"a\tb\"", 0, "control"},
        {"[1e999]", 0, "out of range"},
        {"[NaN]", 0, "unexpected character"},
        {"\"abc", 0, "unterminated"},
        {"", 0, "end of text"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        lk_json_doc *d = NULL;
        lk_error     err;
        memset(&err, 0, sizeof err);
        lk_status s = lk_json_parse(cases[k].text, strlen(cases[k].text), NULL, &d, &err);
        ck_assert_msg((s == LK_OK) == cases[k].ok, "case %zu: %s", k, err.msg);
        if (!cases[k].ok) {
            ck_assert(d == NULL);
            ck_assert_msg(strstr(err.msg, cases[k].needle), "case %zu: '%s' lacks '%s'", k,
                          err.msg, cases[k].needle);
        }
        lk_json_free(d);
    }
    /* Values, key order and exact integers. */
    const char  *t = "{\"z\":9007199254740993,\"a\":[-0,2.0,1.5],\"s\":\"\\u00e9\\ud83d\\ude00\"}";
    lk_json_doc *d = NULL;
    lk_error     err;
    ck_assert_int_eq(lk_json_parse(t, strlen(t), NULL, &d, &err), LK_OK);
    const lk_json *r = lk_json_root(d);
    int64_t        i;
    ck_assert_str_eq(r->items[0].key, "z");
    ck_assert_str_eq(r->items[1].key, "a");
    ck_assert(lk_json_int(lk_json_get(r, "z"), &i) && i == 9007199254740993LL);
    const lk_json *a = lk_json_get(r, "a");
    ck_assert(lk_json_int(&a->items[1], &i) && i == 2);
    ck_assert(!lk_json_int(&a->items[2], &i));
    ck_assert_str_eq(lk_json_str(lk_json_get(r, "s")), "\xc3\xa9\xf0\x9f\x98\x80");
    lk_json_free(d);
    /* Depth cap. */
    char deep[300];
    memset(deep, '[', 150);
    memset(deep + 150, ']', 150);
    lk_json_limits lim = {100, 1000};
    ck_assert_int_eq(lk_json_parse(deep, 300, &lim, &d, &err), LK_EFORMAT);
    ck_assert(strstr(err.msg, "nesting deeper than 100"));
    lim.max_depth = 200;
    lim.max_nodes = 10;
    ck_assert_int_eq(lk_json_parse(deep, 300, &lim, &d, &err), LK_EFORMAT);
    ck_assert(strstr(err.msg, "more than 10 values"));
}
END_TEST

START_TEST(test_basic) {
    lk_model *m = load_ok("basic.safetensors"), *e = load_ok("expected.safetensors");
    ck_assert(lk_model_is_weights_only(m));
    ck_assert_str_eq(lk_model_get_meta(m)->format, "safetensors");
    ck_assert(strstr(lk_model_get_meta(m)->producer, "pt"));
    same_params(m, e);
    /* Aligned F32 is borrowed from the mapping; converted tensors are owned. */
    ck_assert_int_eq(lk_model_param(m, lk_model_find_value(m, "conv.weight"))->owner, 0);
    ck_assert_int_eq(lk_model_param(m, lk_model_find_value(m, "half"))->owner, 1);
    const lk_tensor *sc = lk_model_param(m, lk_model_find_value(m, "scalar"));
    ck_assert_int_eq(sc->ndim, 0);
    ck_assert_float_eq(((const float *)sc->data)[0], 2.385f);
    const lk_tensor *h = lk_model_param(m, lk_model_find_value(m, "half"));
    ck_assert(isinf(((const float *)h->data)[5]));
    ck_assert(signbit(((const float *)h->data)[4]));
    ck_assert_float_eq(((const float *)h->data)[3], ldexpf(1.0f, -24));
    lk_model_free(m);
    lk_model_free(e);
}
END_TEST

START_TEST(test_unaligned) {
    lk_model        *m = load_ok("unaligned.safetensors");
    const lk_tensor *w = lk_model_param(m, lk_model_find_value(m, "w"));
    lk_model        *e = load_ok("basic.safetensors");
    const lk_tensor *x = lk_model_param(e, lk_model_find_value(e, "conv.weight"));
    ck_assert_int_eq(w->owner, 1);
    ck_assert(memcmp(w->data, x->data, 4 * 108) == 0);
    lk_model_free(m);
    lk_model_free(e);
}
END_TEST

START_TEST(test_sharded) {
    lk_model *m = load_ok("sharded/model.safetensors.index.json");
    lk_model *e = load_ok("sharded/expected.safetensors");
    ck_assert(lk_model_is_weights_only(m));
    same_params(m, e);
    ck_assert(strstr(lk_model_get_meta(m)->notes, "shards:2"));
    lk_model_free(m);
    lk_model_free(e);
}
END_TEST

static const struct {
    const char *file;
    lk_status   code;
    const char *needle;
} bad[] = {
    {"bad/overlap.safetensors", LK_EFORMAT, "overlap tensor 'a'"},
    {"bad/hole.safetensors", LK_EFORMAT, "hole before 'b'"},
    {"bad/wrong_size.safetensors", LK_EFORMAT, "needs 12"},
    {"bad/trailing.safetensors", LK_EFORMAT, "trailing bytes"},
    {"bad/past_end.safetensors", LK_EFORMAT, "run past the data buffer"},
    {"bad/header_past_eof.safetensors", LK_EFORMAT, "past the end of the file"},
    {"bad/huge_header.safetensors", LK_EFORMAT, "exceeds the safetensors limit"},
    {"bad/dup_key.safetensors", LK_EFORMAT, "duplicate key \"a\""},
    {"bad/unknown_dtype.safetensors", LK_EUNSUPPORTED, "unknown dtype 'Q7'"},
    {"bad/f8.safetensors", LK_EUNSUPPORTED, "F8_E4M3 is not supported"},
    {"bad/non_utf8.safetensors", LK_EFORMAT, "invalid UTF-8"},
    {"bad/deep.safetensors", LK_EFORMAT, "nesting deeper"},
    {"bad/not_object.safetensors", LK_EFORMAT, "not an object"},
    {"bad/bad_metadata.safetensors", LK_EFORMAT, "__metadata__ key 'k'"},
    {"bad/neg_shape.safetensors", LK_EFORMAT, "shape entry 0"},
    {"bad/end_before_begin.safetensors", LK_EFORMAT, "end before begin"},
    {"bad/overflow.safetensors", LK_EFORMAT, "overflows"},
    {"bad/bad_json.safetensors", LK_EFORMAT, "header: JSON: byte"},
    {"bad/truncated.safetensors", LK_EFORMAT, "too short"},
    {"sharded/bad-missing.index.json", LK_EIO, "model-00003-of-00002.safetensors"},
    {"sharded/bad-escape.index.json", LK_EFORMAT, "not a file name in the index's directory"},
    {"sharded/bad-unlisted.index.json", LK_EFORMAT, "'layer1.bias' is not in the weight_map"},
    {"sharded/bad-wrongshard.index.json", LK_EFORMAT, "listed in the weight_map under shard"},
    {"sharded/bad-notlisted2.index.json", LK_EFORMAT, "'layer3.weight' is listed in the weight_map"},
    {"sharded/bad-dup.index.json", LK_EFORMAT, "tensor 'x'"},
};

START_TEST(test_bad) {
    char         p[512];
    lk_error     err;
    lk_model    *m = NULL;
    lk_load_opts o;
    memset(&o, 0, sizeof o);
    memset(&err, 0, sizeof err);
    o.format    = "safetensors"; /* some hostile headers do not even sniff as safetensors */
    lk_status s = lk_model_load(fx(bad[_i].file, p, sizeof p), &o, &m, &err);
    ck_assert_msg(s == bad[_i].code, "%s: expected %s, got %s (%s)", bad[_i].file,
                  lk_status_name(bad[_i].code), lk_status_name(s), err.msg);
    ck_assert(m == NULL);
    ck_assert_msg(strstr(err.msg, bad[_i].needle), "%s: message '%s' lacks '%s'", bad[_i].file,
                  err.msg, bad[_i].needle);
    printf("  %-36s %s\n", bad[_i].file, err.msg);
}
END_TEST

/* Every allocation in turn fails: a clean status, no model, no leak (ASan). */
START_TEST(test_alloc_failures) {
    const char *files[] = {"basic.safetensors", "sharded/model.safetensors.index.json"};
    char        p[512];
    fx(files[_i], p, sizeof p);
    for (long n = 1;; n++) {
        lk_model *m = NULL;
        lk_error  err;
        lk_alloc_fail_after(n);
        lk_status s = lk_model_load(p, NULL, &m, &err);
        lk_alloc_fail_after(0);
        if (s == LK_OK) {
            lk_model_free(m);
            ck_assert_int_gt(n, 3);
            break;
        }
        ck_assert_msg(s == LK_ENOMEM, "n=%ld: %s", n, err.msg);
        ck_assert(m == NULL);
        ck_assert(n < 100000);
    }
}
END_TEST

START_TEST(test_buffer) {
    char   p[512];
    FILE  *f = fopen(fx("basic.safetensors", p, sizeof p), "rb");
    ck_assert(f != NULL);
    unsigned char buf[4096];
    size_t        n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    lk_model *m = NULL;
    lk_error  err;
    ck_assert_int_eq(lk_safetensors_load_buffer(buf, n, &m, &err), LK_OK);
    lk_model_finalize(m, &err);
    lk_model *e = load_ok("expected.safetensors");
    same_params(m, e);
    lk_model_free(m);
    lk_model_free(e);
    /* Every truncation fails cleanly. */
    for (size_t k = 0; k < n; k++) {
        m           = NULL;
        lk_status s = lk_safetensors_load_buffer(buf, k, &m, &err);
        ck_assert_msg(s == LK_EFORMAT, "truncated to %zu: %s", k, err.msg);
        ck_assert(m == NULL);
    }
}
END_TEST

static Suite *suite(void) {
    Suite *s  = suite_create("safetensors");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_json);
    tcase_add_test(tc, test_basic);
    tcase_add_test(tc, test_unaligned);
    tcase_add_test(tc, test_sharded);
    tcase_add_loop_test(tc, test_bad, 0, (int)(sizeof bad / sizeof bad[0]));
    tcase_add_loop_test(tc, test_alloc_failures, 0, 2);
    tcase_add_test(tc, test_buffer);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run(suite()); }

/*
 * test_pth.c: PyTorch checkpoints (loaders/pth.c, pickle.c, zip.c).
 *
 * Fixtures come from tests/data/pth/gen_pth_fixtures.py (torch 1.13): every checkpoint must
 * agree with torch.load tensor by tensor (names in order, shapes, values bit for bit after
 * the float32 conversion numpy does).  The hostile corpus must fail with a clear status and
 * message, or, for code-executing globals, load as opaque objects with nothing executed.
 * Every prefix of two files is loaded, and loading is repeated with each allocation failing
 * in turn.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loaders/loaders-impl.h"
#include "loaders/pickle-impl.h"
#include "loaders/zip-impl.h"
#include "testutil.h"

#define SENTINEL "/tmp/lkprobe_pth_sentinel_must_not_exist"

static const char *data_path(const char *rel, char *buf, size_t n) {
    char r[1024];
    snprintf(r, sizeof r, "tests/data/pth/%s", rel);
    return tu_src_path(r, buf, n);
}

static unsigned char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static lk_status load(const char *rel, const char *key, const char *format, lk_model **m,
                      lk_error *err) {
    char         path[512];
    lk_load_opts o;
    memset(&o, 0, sizeof o);
    o.key    = key;
    o.format = format;
    memset(err, 0, sizeof *err);
    return lk_model_load(data_path(rel, path, sizeof path), &o, m, err);
}

/* Compares m with <expect>/names.txt and NNN.npy: same names in the same order, shapes and
 * bit-identical float32 values. */
static void check_expect(const lk_model *m, const char *expect) {
    char  path[512], line[512];
    FILE *f = fopen(data_path((snprintf(line, sizeof line, "%s/names.txt", expect), line), path,
                              sizeof path), "r");
    ck_assert_msg(f != NULL, "missing %s", path);
    int64_t i = 0, n_params = 0;
    for (int64_t v = 0; v < lk_model_n_values(m); v++) n_params += lk_model_param(m, v) != NULL;
    ck_assert_int_eq(lk_model_is_weights_only(m), 1);
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        int64_t v = lk_model_find_value(m, line);
        ck_assert_msg(v >= 0, "%s: tensor '%s' missing", expect, line);
        ck_assert_msg(v == i, "%s: tensor '%s' at position %lld, expected %lld", expect, line,
                      (long long)v, (long long)i);
        const lk_tensor *t = lk_model_param(m, v);
        char             np[512], rel[600];
        snprintf(rel, sizeof rel, "%s/%03lld.npy", expect, (long long)i);
        lk_tensor *e = tu_read_npy(data_path(rel, np, sizeof np));
        ck_assert_msg(e != NULL, "cannot read %s", np);
        /* tu_read_npy reads a 0-d array as shape [1]. */
        int scalar = t->ndim == 0 && e->ndim == 1 && e->shape[0] == 1;
        ck_assert_msg(t->ndim == e->ndim || scalar, "%s '%s': ndim %d vs %d", expect, line,
                      t->ndim, e->ndim);
        for (int d = 0; d < t->ndim; d++)
            ck_assert_msg(t->shape[d] == e->shape[d], "%s '%s': dim %d is %lld, torch %lld",
                          expect, line, d, (long long)t->shape[d], (long long)e->shape[d]);
        int64_t k = lk_tensor_numel(t);
        if (k) {
            const float *a = t->data, *b = e->data;
            for (int64_t j = 0; j < k; j++)
                ck_assert_msg(memcmp(&a[j], &b[j], 4) == 0,
                              "%s '%s' element %lld: %.9g vs torch %.9g", expect, line,
                              (long long)j, a[j], b[j]);
        }
        lk_tensor_free(e);
        i++;
    }
    fclose(f);
    ck_assert_msg(i == n_params, "%s: %lld tensors loaded, torch has %lld", expect,
                  (long long)n_params, (long long)i);
}

/* ---- agreement with torch.load ----------------------------------------------------------------- */

static const struct {
    const char *file, *key, *format, *expect, *note;
} fixtures[] = {
    {"basic_zip.pth", NULL, NULL, "basic_zip.expect", "container=zip"},
    {"basic_legacy.pth", NULL, NULL, "basic_legacy.expect", "container=legacy"},
    {"proto4.pth", NULL, NULL, "proto4.expect", "zero-copy="},
    {"proto5.pth", NULL, NULL, "proto5.expect", "dtypes="},
    {"proto4_legacy.pth", NULL, "pth", "proto4_legacy.expect", "container=legacy"},
    {"nested_model.pth", NULL, NULL, "nested_model.expect", "key=model"},
    {"params_ema.pth", NULL, NULL, "params_ema.expect", "key=params_ema"},
    {"params_ema.pth", "params", NULL, "params_ema.params.expect", "key=params"},
    {"state_dict_module.pth", NULL, NULL, "state_dict_module.expect", "stripped=module."},
    {"whole_module.pth", NULL, NULL, "whole_module.expect", "(nn.Module)"},
    {"whole_module_legacy.pth", NULL, NULL, "whole_module_legacy.expect", "(nn.Module)"},
    {"torch2_style.pth", NULL, NULL, "torch2_style.expect", "zero-copy=2/4"},
};

START_TEST(test_fixture) {
    lk_model *m = NULL;
    lk_error  err;
    lk_status s = load(fixtures[_i].file, fixtures[_i].key, fixtures[_i].format, &m, &err);
    ck_assert_msg(s == LK_OK, "%s: %s", fixtures[_i].file, err.msg);
    const lk_model_meta *mt = lk_model_get_meta(m);
    ck_assert_str_eq(mt->format, "pth");
    ck_assert_msg(strstr(mt->notes, fixtures[_i].note) != NULL, "%s: notes '%s' lack '%s'",
                  fixtures[_i].file, mt->notes, fixtures[_i].note);
    check_expect(m, fixtures[_i].expect);
    lk_model_free(m);
}
END_TEST

/* F32 contiguous aligned tensors of a zip file point into the mapping (no copy). */
START_TEST(test_zero_copy) {
    lk_model *m = NULL;
    lk_error  err;
    ck_assert_int_eq(load("basic_zip.pth", NULL, NULL, &m, &err), LK_OK);
    ck_assert_ptr_nonnull(strstr(lk_model_get_meta(m)->notes, "zero-copy=6/22"));
    const lk_tensor *w = lk_model_param(m, lk_model_find_value(m, "conv.weight"));
    const lk_tensor *h = lk_model_param(m, lk_model_find_value(m, "half"));
    ck_assert_int_eq(w->owner, 0);
    ck_assert_int_eq(h->owner, 0);
    ck_assert_int_eq((int)((uintptr_t)w->data % 64), 0);
    lk_model_free(m);
}
END_TEST

/* ---- key selection ------------------------------------------------------------------------- */

START_TEST(test_key_errors) {
    lk_model *m = NULL;
    lk_error  err;
    lk_status s = load("ambiguous.pth", NULL, NULL, &m, &err);
    ck_assert_int_eq(s, LK_EINVAL);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(err.msg, "--key") && strstr(err.msg, "'a' (4 tensors)") &&
                  strstr(err.msg, "'b' (4 tensors)"), "%s", err.msg);
    s = load("ambiguous.pth", "b", NULL, &m, &err);
    ck_assert_msg(s == LK_OK, "%s", err.msg);
    ck_assert_ptr_nonnull(strstr(lk_model_get_meta(m)->notes, "dict-paths=a(4),b(4)"));
    lk_model_free(m);
    m = NULL;
    s = load("nested_model.pth", "optimiser", NULL, &m, &err);
    ck_assert_int_eq(s, LK_ENOTFOUND);
    ck_assert_msg(strstr(err.msg, "'optimiser'") && strstr(err.msg, "'model' (9 tensors)") &&
                  strstr(err.msg, "optimizer.state.0"), "%s", err.msg);
    s = load("basic_zip.pth", "(root)", NULL, &m, &err);
    ck_assert_msg(s == LK_OK, "%s", err.msg);
    lk_model_free(m);
}
END_TEST

/* ---- hostile corpus ------------------------------------------------------------------------ */

static const struct {
    const char *file;
    lk_status   code;
    const char *msg;   /* substring of the message */
} hostile[] = {
    {"os_system.pth", LK_OK, NULL},
    {"builtins_eval.pth", LK_OK, NULL},
    {"posix_stack_global.pth", LK_OK, NULL},
    {"reduce_chain.pth", LK_OK, NULL},
    {"newobj_build.pth", LK_OK, NULL},
    {"deep_marks.pth", LK_EFORMAT, "open MARKs"},
    {"deep_lists.pth", LK_EFORMAT, "nested deeper"},
    {"self_list.pth", LK_EFORMAT, "nested deeper"},
    {"huge_memo.pth", LK_EFORMAT, "memo index 4294967280"},
    {"memo_undefined.pth", LK_EFORMAT, "never stored"},
    {"binunicode_past_end.pth", LK_EFORMAT, "BINUNICODE: needs 2147483647 bytes"},
    {"binbytes8_huge.pth", LK_EFORMAT, "BINBYTES8"},
    {"no_stop.pth", LK_EFORMAT, "no STOP"},
    {"stack_underflow.pth", LK_EFORMAT, "REDUCE: stack underflow"},
    {"unhashable_key.pth", LK_EFORMAT, "unhashable"},
    {"bad_opcode.pth", LK_EFORMAT, "unknown opcode 0xff"},
    {"qtensor.pth", LK_EUNSUPPORTED, "quantized"},
    {"ext_code.pth", LK_EUNSUPPORTED, "extension"},
    {"bigint_shape.pth", LK_EFORMAT, "element count"},
    {"storage_missing.pth", LK_EFORMAT, "'archive/data/7' is missing"},
    {"storage_short.pth", LK_EFORMAT, "declares 100 x 4 bytes but holds 16"},
    {"tensor_oob.pth", LK_EFORMAT, "reaches element 4"},
    {"tensor_oob_stride.pth", LK_EFORMAT, "reaches element 4"},
    {"negative_stride.pth", LK_EFORMAT, "negative size or stride"},
    {"negative_size.pth", LK_EFORMAT, "negative size or stride"},
    {"negative_offset.pth", LK_EFORMAT, "storage offset"},
    {"complex_storage.pth", LK_EUNSUPPORTED, "ComplexFloatStorage"},
    {"unknown_storage.pth", LK_EUNSUPPORTED, "torch.QUInt8Storage"},
    {"no_tensors.pth", LK_EFORMAT, "no tensors"},
    {"big_endian.pth", LK_EUNSUPPORTED, "byte order"},
    {"zip_bomb.pth", LK_EUNSUPPORTED, "'archive/data/0' is compressed"},
    {"zip_deflated_pickle.pth", LK_EUNSUPPORTED, "'archive/data.pkl' is compressed"},
    {"zip_cd_offset_past_end.pth", LK_EFORMAT, "central directory"},
    {"zip_cd_size_lie.pth", LK_EFORMAT, "central directory"},
    {"zip_count_lie.pth", LK_EFORMAT, "60000 entries"},
    {"zip_local_offset_past_end.pth", LK_EFORMAT, "local header offset"},
    {"zip_size_past_end.pth", LK_EFORMAT, "runs past the end"},
    {"zip_overlap.pth", LK_EFORMAT, "local header name differs"},
    {"zip_overlap_size.pth", LK_EFORMAT, "overlap"},
    {"zip64_absurd.pth", LK_EFORMAT, "central directory"},
    {"zip64_no_locator.pth", LK_EFORMAT, "ZIP64 locator"},
    {"zip_no_pickle.pth", LK_EFORMAT, "data.pkl"},
    {"zip_truncated_eocd.pth", LK_EFORMAT, "end-of-central-directory"},
    {"legacy_truncated_data.pth", LK_EFORMAT, "past the end of the file"},
    {"legacy_big_endian.pth", LK_EUNSUPPORTED, "little-endian"},
};

START_TEST(test_hostile) {
    char      rel[256];
    lk_model *m = NULL;
    lk_error  err;
    unlink(SENTINEL);
    snprintf(rel, sizeof rel, "hostile/%s", hostile[_i].file);
    /* --format pth: the loader itself must refuse, whatever the sniffer thinks. */
    lk_status s = load(rel, NULL, "pth", &m, &err);
    ck_assert_msg(s == hostile[_i].code, "%s: %s (%s), expected %s", hostile[_i].file,
                  lk_status_name(s), err.msg, lk_status_name(hostile[_i].code));
    if (s == LK_OK) {
        /* Code-executing globals became opaque objects: the tensor is there, nothing ran. */
        ck_assert_int_eq(lk_model_n_values(m), 1);
        const lk_tensor *t = lk_model_param(m, 0);
        ck_assert_str_eq(lk_model_value_name(m, 0), "w");
        ck_assert_float_eq(((const float *)t->data)[0], 2.385f);
        lk_model_free(m);
    } else {
        ck_assert_ptr_null(m);
        ck_assert_msg(strstr(err.msg, hostile[_i].msg) != NULL, "%s: message '%s' lacks '%s'",
                      hostile[_i].file, err.msg, hostile[_i].msg);
    }
    ck_assert_msg(access(SENTINEL, F_OK) != 0, "%s: something was executed", hostile[_i].file);
}
END_TEST

/* The VM on its own: unknown globals are opaque objects that keep their names and args. */
START_TEST(test_vm_opaque) {
    static const unsigned char pk[] =
        "\x80\x02" "cos\nsystem\n" "X\x02\x00\x00\x00ls" "\x85R" "q\x00" "h\x00" "N\x85R" ".";
    lk_pickle   *vm = NULL;
    const lk_pv *root;
    size_t       used;
    lk_error     err;
    char         nm[64];
    ck_assert_int_eq(lk_pickle_alloc(&vm, &err), LK_OK);
    ck_assert_int_eq(lk_pickle_run(vm, pk, sizeof pk - 1, &root, &used, &err), LK_OK);
    ck_assert_uint_eq(used, sizeof pk - 1);
    ck_assert_int_eq(root->kind, LK_PV_OBJECT);
    ck_assert_int_eq(root->u.obj.cls->kind, LK_PV_OBJECT);
    ck_assert_str_eq(lk_pv_class_name(root, nm, sizeof nm), "os.system");
    const lk_pv *inner = root->u.obj.cls;
    ck_assert_str_eq(inner->u.obj.args->u.seq.v[0]->u.str.s, "ls");
    lk_pickle_free(vm);
}
END_TEST

/* Protocol 0 text opcodes decode like Python's pickle. */
START_TEST(test_vm_protocol0) {
    static const unsigned char pk[] = "(dp0\nVk\\u00e9y\np1\n(lp2\nI12\naL-7L\naF2.5\naI01\n"
                                      "aS'a\\'b'\nag1\nas.";
    lk_pickle   *vm = NULL;
    const lk_pv *root;
    lk_error     err;
    ck_assert_int_eq(lk_pickle_alloc(&vm, &err), LK_OK);
    lk_status s = lk_pickle_run(vm, pk, sizeof pk - 1, &root, NULL, &err);
    ck_assert_msg(s == LK_OK, "%s", err.msg);
    ck_assert_int_eq(root->kind, LK_PV_DICT);
    ck_assert_str_eq(root->u.dict.k[0]->u.str.s, "k\xc3\xa9y");
    const lk_pv *l = root->u.dict.v[0];
    ck_assert_uint_eq(l->u.seq.n, 6);
    ck_assert_int_eq(l->u.seq.v[0]->u.i, 12);
    ck_assert_int_eq(l->u.seq.v[1]->u.i, -7);
    ck_assert_double_eq(l->u.seq.v[2]->u.f, 2.5);
    ck_assert_int_eq(l->u.seq.v[3]->kind, LK_PV_BOOL);
    ck_assert_str_eq(l->u.seq.v[4]->u.str.s, "a'b");
    ck_assert_str_eq(l->u.seq.v[5]->u.str.s, "k\xc3\xa9y");
    lk_pickle_free(vm);
}
END_TEST

/* ---- truncation and allocation failure --------------------------------------------------------- */

static void truncations(const char *rel) {
    char           path[512];
    size_t         len;
    unsigned char *b = read_all(data_path(rel, path, sizeof path), &len);
    for (size_t l = 0; l < len; l++) {
        lk_model *m = NULL;
        lk_error  err;
        err.msg[0]  = '\0';
        lk_status s = lk_pth_load_buffer(b, l, NULL, &m, &err);
        ck_assert_msg(s != LK_OK, "%s cut at %zu loaded", rel, l);
        ck_assert_ptr_null(m);
        ck_assert_msg(err.msg[0] != '\0', "%s cut at %zu: empty message", rel, l);
    }
    lk_model *m = NULL;
    lk_error  err;
    ck_assert_int_eq(lk_pth_load_buffer(b, len, NULL, &m, &err), LK_OK);
    lk_model_free(m);
    free(b);
}

START_TEST(test_truncated_zip) {
    truncations("torch2_style.pth");
    truncations("params_ema.pth");
}
END_TEST

START_TEST(test_truncated_legacy) {
    truncations("basic_legacy.pth");
}
END_TEST

static void alloc_loop(const char *rel, const char *format) {
    long n;
    for (n = 1;; n++) {
        lk_model *m = NULL;
        lk_error  err;
        lk_alloc_fail_after(n);
        lk_status s = load(rel, NULL, format, &m, &err);
        lk_alloc_fail_after(0);
        if (s == LK_OK) {
            lk_model_free(m);
            break;
        }
        ck_assert_msg(s == LK_ENOMEM, "%s allocation %ld: %s (%s)", rel, n, lk_status_name(s),
                      err.msg);
        ck_assert_ptr_null(m);
        ck_assert_int_lt(n, 100000);
    }
    ck_assert_int_gt(n, 10);
}

START_TEST(test_alloc_fail) {
    alloc_loop("basic_zip.pth", NULL);
    alloc_loop("whole_module_legacy.pth", NULL);
    alloc_loop("nested_model.pth", NULL);
}
END_TEST

/* ---- the zip reader on its own ----------------------------------------------------------------- */

START_TEST(test_zip_entries) {
    char           path[512];
    size_t         len;
    unsigned char *b = read_all(data_path("torch2_style.pth", path, sizeof path), &len);
    lk_zip         z;
    lk_error       err;
    ck_assert_int_eq(lk_zip_open(b, len, &z, &err), LK_OK);
    ck_assert_uint_eq(z.n, 7);
    const lk_zip_entry *e = lk_zip_find(&z, "exported_ckpt/byteorder", 23);
    ck_assert_ptr_nonnull(e);
    const unsigned char *d;
    uint64_t             n;
    ck_assert_int_eq(lk_zip_entry_data(&z, e, &d, &n, &err), LK_OK);
    ck_assert_uint_eq(n, 6);
    ck_assert_int_eq(memcmp(d, "little", 6), 0);
    ck_assert_uint_eq(e->offset % 64, 0);
    ck_assert_ptr_null(lk_zip_find(&z, "exported_ckpt/data/9", 20));
    lk_zip_close(&z);
    free(b);
}
END_TEST

/* ---- the CLI -------------------------------------------------------------------------------- */

START_TEST(test_cli_info) {
    static char out[1 << 16], errb[4096];
    char        path[512], path2[512];
    data_path("params_ema.pth", path, sizeof path);
    const char *a1[] = {"info", path, NULL};
    ck_assert_int_eq(tu_lkprobe(a1, out, sizeof out, errb, sizeof errb), 0);
    ck_assert_msg(strstr(out, "weights only") && strstr(out, "key=params_ema") &&
                  strstr(out, "dict-paths=params(4),params_ema(4)") &&
                  strstr(out, "conv.weight") && strstr(out, "[4, 2, 3, 3]") &&
                  strstr(out, "tensors:  4"), "%s", out);
    const char *a2[] = {"info", "--json", path, NULL};
    ck_assert_int_eq(tu_lkprobe(a2, out, sizeof out, errb, sizeof errb), 0);
    ck_assert_msg(strstr(out, "\"format\":\"pth\"") && strstr(out, "\"nodes\":[]") &&
                  strstr(out, "\"inputs\":[]") && strstr(out, "\"params\":81") &&
                  strstr(out, "{\"name\":\"conv.weight\",\"shape\":[4,2,3,3],"
                              "\"dtype\":\"float32\"}"), "%s", out);
    const char *a3[] = {"info", "--json", "--key", "params", path, NULL};
    ck_assert_int_eq(tu_lkprobe(a3, out, sizeof out, errb, sizeof errb), 0);
    ck_assert_ptr_nonnull(strstr(out, "\"params\":81"));
    data_path("ambiguous.pth", path2, sizeof path2);
    const char *a4[] = {"info", path2, NULL};
    ck_assert_int_eq(tu_lkprobe(a4, out, sizeof out, errb, sizeof errb), 1);
    ck_assert_msg(strstr(errb, "--key") && strstr(errb, "'a' (4 tensors)"), "%s", errb);
    const char *a5[] = {"info", "--key", "b", path2, NULL};
    ck_assert_int_eq(tu_lkprobe(a5, out, sizeof out, errb, sizeof errb), 0);
}
END_TEST

static Suite *pth_suite(void) {
    Suite *s  = suite_create("pth");
    TCase *tc = tcase_create("torch");
    tcase_add_loop_test(tc, test_fixture, 0, (int)(sizeof fixtures / sizeof fixtures[0]));
    tcase_add_test(tc, test_zero_copy);
    tcase_add_test(tc, test_key_errors);
    suite_add_tcase(s, tc);
    TCase *th = tcase_create("hostile");
    tcase_add_loop_test(th, test_hostile, 0, (int)(sizeof hostile / sizeof hostile[0]));
    tcase_add_test(th, test_vm_opaque);
    tcase_add_test(th, test_vm_protocol0);
    tcase_add_test(th, test_truncated_zip);
    tcase_add_test(th, test_truncated_legacy);
    tcase_add_test(th, test_alloc_fail);
    tcase_add_test(th, test_zip_entries);
    suite_add_tcase(s, th);
    TCase *tcli = tcase_create("cli");
    tcase_add_test(tcli, test_cli_info);
    suite_add_tcase(s, tcli);
    return s;
}

int main(void) {
    return tu_run(pth_suite());
}

/*
 * test_native.c: the native model.bin format (loaders/native.c) and .npy I/O (loaders/npy.c).
 *
 * Round trips compare graph, parameters and forward outputs bit for bit; hostile files
 * (every truncation, bit flips in every section, forged counts and offsets with valid
 * checksums) must give clean errors; loading is repeated with every allocation failing in
 * turn.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "loaders/loaders-impl.h"
#include "lkprobe/lk_io.h"
#include "testutil.h"

/* ---- helpers ---------------------------------------------------------------------------- */

static char tmpdir[256];

static const char *tmp_path(const char *name, char *buf, size_t n) {
    snprintf(buf, n, "%s/%s", tmpdir, name);
    return buf;
}

static unsigned char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
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

static void write_all(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    if (n) ck_assert_uint_eq(fwrite(p, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

/* Loads through the native loader directly (no sniffing), as lk_model_load would. */
static lk_status native_load(const char *path, lk_model **m, lk_error *err) {
    lk_file_map fm;
    *m          = NULL;
    lk_status s = lk_file_map_open(path, &fm, err);
    if (s) return s;
    return lk_native_load(path, fm, NULL, m, err);
}

/*
 * The test model: x[1,3,8,8] -> relu -> (conv 3x3 + bias -> add(relu) if available) -> relu
 * with two graph outputs, extra parameters of several ranks (incl. a 0-d one and an empty
 * one), and attributes with non-default values so their bytes matter.
 */
static lk_model *build_model(int batch) {
    lk_model *m = NULL;
    lk_error  err;
    int64_t   xs[4] = {batch, 3, 8, 8}, x, r1, r2, r3, w, b, p;
    ck_assert_int_eq(lk_model_alloc(&m, &err), LK_OK);
    lk_model_meta meta = {"onnx", "unit-test 1.0", 8, 13, "bn-folded:0", "mem"};
    ck_assert_int_eq(lk_model_set_meta(m, &meta, &err), LK_OK);
    ck_assert_int_eq(lk_model_add_input(m, "image", 4, xs, &x, &err), LK_OK);
    float   wd[3 * 3 * 3 * 3], bd[3], pd[7 * 5];
    int64_t ws[4] = {3, 3, 3, 3}, bs[1] = {3}, ps[2] = {7, 5}, es[1] = {0};
    tu_fill_uniform(wd, 81, 11, -0.5f, 0.5f);
    tu_fill_uniform(bd, 3, 12, -0.1f, 0.1f);
    tu_fill_uniform(pd, 35, 13, -2.385f, 2.385f);
    ck_assert_int_eq(lk_model_add_param(m, "conv.weight", 4, ws, wd, 1, &w, &err), LK_OK);
    ck_assert_int_eq(lk_model_add_param(m, "conv.bias", 1, bs, bd, 1, &b, &err), LK_OK);
    ck_assert_int_eq(lk_model_add_param(m, "extra.table", 2, ps, pd, 1, &p, &err), LK_OK);
    float scalar = 2.385f;
    ck_assert_int_eq(lk_model_add_param(m, "extra.scalar", 0, NULL, &scalar, 1, NULL, &err), LK_OK);
    ck_assert_int_eq(lk_model_add_param(m, "extra.empty", 1, es, NULL, 1, NULL, &err), LK_OK);

    const char *n1[1] = {"relu1.out"}, *n2[1] = {"conv.out"}, *n3[1] = {"sum.out"},
               *n4[1] = {"relu2.out"};
    lk_attrs a = lk_attrs_default(LK_OP_RELU);
    a.s.alpha  = 0.125f; /* ignored by relu, but must round-trip */
    ck_assert_int_eq(lk_model_add_node(m, LK_OP_RELU, "relu1", 1, &x, 1, n1, &a, &r1, &err), LK_OK);
    lk_attrs c = lk_attrs_default(LK_OP_CONV);
    c.conv.kernel[0] = c.conv.kernel[1] = 3;
    c.conv.pad_begin[0] = c.conv.pad_begin[1] = c.conv.pad_end[0] = c.conv.pad_end[1] = 1;
    int64_t cin[3] = {r1, w, b}, ain[2];
    ck_assert_int_eq(lk_model_add_node(m, LK_OP_CONV, "conv", 3, cin, 1, n2, &c, &r2, &err), LK_OK);
    ain[0] = r2;
    ain[1] = r1;
    ck_assert_int_eq(lk_model_add_node(m, LK_OP_ADD, "sum", 2, ain, 1, n3, NULL, &r3, &err), LK_OK);
    int64_t last = r3;
    ck_assert_int_eq(lk_model_add_node(m, LK_OP_RELU, "relu2", 1, &last, 1, n4, NULL, &r2, &err),
                     LK_OK);
    int64_t outs[2] = {r2, r1};
    ck_assert_int_eq(lk_model_set_outputs(m, 2, outs, &err), LK_OK);
    lk_status s = lk_model_finalize(m, &err);
    if (s != LK_OK) {
        /* conv or add still a placeholder in this tree: use the relu-only model. */
        lk_model_free(m);
        return NULL;
    }
    return m;
}

static lk_model *build_simple(int batch) {
    lk_model *m = NULL;
    lk_error  err;
    int64_t   xs[4] = {batch, 3, 8, 8}, x, r1, r2, w;
    ck_assert_int_eq(lk_model_alloc(&m, &err), LK_OK);
    lk_model_meta meta = {"onnx", "unit-test 1.0", 8, 13, "bn-folded:0", "mem"};
    ck_assert_int_eq(lk_model_set_meta(m, &meta, &err), LK_OK);
    ck_assert_int_eq(lk_model_add_input(m, "image", 4, xs, &x, &err), LK_OK);
    float   wd[4 * 3 * 3 * 3], scalar = 2.385f;
    int64_t ws[4] = {4, 3, 3, 3}, es[1] = {0};
    tu_fill_uniform(wd, 108, 11, -0.5f, 0.5f);
    ck_assert_int_eq(lk_model_add_param(m, "conv.weight", 4, ws, wd, 1, &w, &err), LK_OK);
    ck_assert_int_eq(lk_model_add_param(m, "extra.scalar", 0, NULL, &scalar, 1, NULL, &err), LK_OK);
    ck_assert_int_eq(lk_model_add_param(m, "extra.empty", 1, es, NULL, 1, NULL, &err), LK_OK);
    const char *n1[1] = {"relu1.out"}, *n2[1] = {"relu2.out"};
    lk_attrs    a = lk_attrs_default(LK_OP_RELU);
    a.s.alpha     = 0.125f;
    ck_assert_int_eq(lk_model_add_node(m, LK_OP_RELU, "relu1", 1, &x, 1, n1, &a, &r1, &err), LK_OK);
    ck_assert_int_eq(lk_model_add_node(m, LK_OP_RELU, "relu2", 1, &r1, 1, n2, NULL, &r2, &err),
                     LK_OK);
    int64_t outs[2] = {r2, r1};
    ck_assert_int_eq(lk_model_set_outputs(m, 2, outs, &err), LK_OK);
    ck_assert_int_eq(lk_model_finalize(m, &err), LK_OK);
    return m;
}

static lk_model *test_model(int batch) {
    lk_model *m = build_model(batch);
    if (m) return m;
    fprintf(stderr, "note: conv/add not available in this build; using the relu-only model\n");
    return build_simple(batch);
}

/* Saves the test model to name in the temp dir and returns the path; with packed, the
 * conv weight packed ahead of time (a version 2 file with section 'packed'). */
static const char *saved_model_as(const char *name, int packed, char *buf, size_t n) {
    lk_model *m = test_model(1);
    lk_error  err;
    int64_t   np = 0;
    tmp_path(name, buf, n);
    if (packed) {
        ck_assert_msg(lk_exec_prepack(m, 0, NULL, &np, &err) == LK_OK, "%s", err.msg);
        ck_assert_int_eq(np, 1);
    }
    ck_assert_msg(lk_model_save_native(m, buf, &err) == LK_OK, "%s", err.msg);
    lk_model_free(m);
    return buf;
}

static const char *saved_model(const char *name, char *buf, size_t n) {
    return saved_model_as(name, 0, buf, n);
}

static void assert_same_model(const lk_model *a, const lk_model *b) {
    ck_assert_int_eq(lk_model_n_values(a), lk_model_n_values(b));
    ck_assert_int_eq(lk_model_n_nodes(a), lk_model_n_nodes(b));
    for (int64_t v = 0; v < lk_model_n_values(a); v++) {
        ck_assert_str_eq(lk_model_value_name(a, v), lk_model_value_name(b, v));
        ck_assert_int_eq(lk_model_value_kind(a, v), lk_model_value_kind(b, v));
        int64_t sa[LK_MAX_DIMS], sb[LK_MAX_DIMS];
        int     na = lk_model_value_shape(a, v, sa), nb = lk_model_value_shape(b, v, sb);
        ck_assert_int_eq(na, nb);
        for (int k = 0; k < na; k++) ck_assert_int_eq(sa[k], sb[k]);
        const lk_tensor *pa = lk_model_param(a, v), *pb = lk_model_param(b, v);
        ck_assert_int_eq(!pa, !pb);
        if (pa) {
            int64_t n = lk_tensor_numel(pa);
            ck_assert_int_eq(n, lk_tensor_numel(pb));
            ck_assert(n == 0 || memcmp(pa->data, pb->data, (size_t)n * 4) == 0);
        }
    }
    for (int64_t i = 0; i < lk_model_n_nodes(a); i++) {
        const lk_node *x = lk_model_node(a, i), *y = lk_model_node(b, i);
        ck_assert_int_eq(x->op, y->op);
        ck_assert_str_eq(x->name, y->name);
        ck_assert_int_eq(x->n_in, y->n_in);
        ck_assert_int_eq(x->n_out, y->n_out);
        ck_assert(memcmp(x->in, y->in, sizeof(int64_t) * (size_t)x->n_in) == 0);
        ck_assert(memcmp(x->out, y->out, sizeof(int64_t) * (size_t)x->n_out) == 0);
        ck_assert(memcmp(&x->attrs, &y->attrs, sizeof x->attrs) == 0);
        ck_assert_uint_eq(lk_model_node_macs(a, i), lk_model_node_macs(b, i));
    }
    ck_assert_int_eq(lk_model_n_outputs(a), lk_model_n_outputs(b));
    for (int64_t i = 0; i < lk_model_n_outputs(a); i++)
        ck_assert_int_eq(lk_model_output(a, i), lk_model_output(b, i));
}

/* Runs forward `runs` times on one exec of m, on a fixed input, and returns a copy of output
 * o after each run in y[] (a second run of an exec reads its own copy of packs made ahead of
 * time, the first the model's). */
static void forward_runs(const lk_model *m, int o, int runs, float **y, int64_t *n_out) {
    lk_exec   *x = NULL;
    lk_error   err;
    int64_t    sh[LK_MAX_DIMS];
    int        nd = lk_model_input_shape(m, 0, sh);
    lk_tensor *in = NULL;
    ck_assert_int_eq(lk_tensor_alloc(LK_F32, nd, sh, &in, &err), LK_OK);
    tu_fill_uniform(in->data, lk_tensor_numel(in), 77, -2.385f, 2.385f);
    ck_assert_msg(lk_exec_alloc(m, NULL, 0, NULL, &x, &err) == LK_OK, "%s", err.msg);
    const lk_tensor *ins[1] = {in};
    for (int r = 0; r < runs; r++) {
        ck_assert_msg(lk_exec_forward(x, ins, &err) == LK_OK, "%s", err.msg);
        const lk_tensor *t = lk_exec_value(x, lk_model_output(m, o));
        *n_out             = lk_tensor_numel(t);
        y[r]               = malloc(sizeof(float) * (size_t)*n_out);
        memcpy(y[r], t->data, sizeof(float) * (size_t)*n_out);
    }
    lk_exec_free(x);
    lk_tensor_free(in);
}

/* Runs forward on a fixed input and returns a copy of output o. */
static float *forward_copy(const lk_model *m, int o, int64_t *n_out) {
    float *y;
    forward_runs(m, o, 1, &y, n_out);
    return y;
}

/* Loads bytes held in memory: an anonymous mapping stands in for the file mapping, so the
 * mutation loops do not touch the disk (lk_file_map_release unmaps it). */
static lk_status native_load_mem(const char *name, const unsigned char *b, size_t len,
                                 lk_model **m, lk_error *err) {
    lk_file_map fm = {NULL, 0};
    if (len) {
        void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        ck_assert_ptr_ne(p, MAP_FAILED);
        memcpy(p, b, len);
        fm.base = p;
        fm.len  = len;
    }
    *m = NULL;
    return lk_native_load(name, fm, NULL, m, err);
}

/* ---- round trip ------------------------------------------------------------------------------ */

START_TEST(test_roundtrip) {
    char      path[512];
    lk_error  err;
    lk_model *a = test_model(1), *b = NULL;
    tmp_path("rt.bin", path, sizeof path);
    ck_assert_msg(lk_model_save_native(a, path, &err) == LK_OK, "%s", err.msg);
    ck_assert_msg(lk_model_load(path, NULL, &b, &err) == LK_OK, "%s", err.msg);
    assert_same_model(a, b);
    const lk_model_meta *mb = lk_model_get_meta(b);
    ck_assert_str_eq(mb->format, "native");
    ck_assert_str_eq(mb->producer, "unit-test 1.0");
    ck_assert_int_eq(mb->opset, 13);
    ck_assert_int_eq(mb->ir_version, 8);
    ck_assert_ptr_nonnull(strstr(mb->notes, "bn-folded:0"));
    ck_assert_ptr_nonnull(strstr(mb->notes, "converted-from=onnx"));
    /* Zero copy: parameters point into the 64-aligned mapping. */
    const lk_tensor *w = lk_model_param(b, lk_model_find_value(b, "conv.weight"));
    ck_assert_int_eq(w->owner, 0);
    ck_assert_uint_eq((uintptr_t)w->data % 64, 0);
    for (int o = 0; o < 2; o++) {
        int64_t na, nb;
        float  *ya = forward_copy(a, o, &na), *yb = forward_copy(b, o, &nb);
        ck_assert_int_eq(na, nb);
        ck_assert(memcmp(ya, yb, sizeof(float) * (size_t)na) == 0);
        free(ya);
        free(yb);
    }
    /* Saving the loaded model again gives the same bytes except the provenance strings. */
    char path2[512];
    tmp_path("rt2.bin", path2, sizeof path2);
    ck_assert_msg(lk_model_save_native(b, path2, &err) == LK_OK, "%s", err.msg);
    lk_model *c = NULL;
    ck_assert_msg(lk_model_load(path2, NULL, &c, &err) == LK_OK, "%s", err.msg);
    assert_same_model(a, c);
    ck_assert_ptr_nonnull(strstr(lk_model_get_meta(c)->notes, "converted-from=onnx"));
    ck_assert_ptr_null(strstr(strstr(lk_model_get_meta(c)->notes, "converted-from=onnx") + 1,
                              "converted-from"));
    lk_model_free(a);
    lk_model_free(b);
    lk_model_free(c);
}
END_TEST

START_TEST(test_save_atomic) {
    /* A failed save leaves neither the destination nor a temporary file behind. */
    char      path[512];
    lk_error  err;
    lk_model *a = test_model(1);
    tmp_path("nodir/x.bin", path, sizeof path);
    ck_assert_int_eq(lk_model_save_native(a, path, &err), LK_EIO);
    ck_assert_ptr_nonnull(strstr(err.msg, "nodir/x.bin"));
    ck_assert_int_ne(access(path, F_OK), 0);
    /* Allocation failures while saving. */
    tmp_path("oom.bin", path, sizeof path);
    for (long n = 1;; n++) {
        lk_alloc_fail_after(n);
        lk_status s = lk_model_save_native(a, path, &err);
        lk_alloc_fail_after(0);
        if (s == LK_OK) break;
        ck_assert_int_eq(s, LK_ENOMEM);
        ck_assert_int_ne(access(path, F_OK), 0);
        ck_assert_int_lt(n, 10000);
    }
    ck_assert_int_eq(access(path, F_OK), 0);
    lk_model_free(a);
}
END_TEST

/* ---- hostile files ---------------------------------------------------------------------------- */

START_TEST(test_truncations) {
    char           path[512], cut[512];
    size_t         len;
    unsigned char *b = read_all(saved_model_as("tr.bin", _i, path, sizeof path), &len);
    tmp_path("cut.bin", cut, sizeof cut);
    for (size_t l = 0; l < len; l++) {
        lk_model *m = NULL;
        lk_error  err;
        lk_status s = native_load_mem(cut, b, l, &m, &err);
        ck_assert_msg(s == LK_EFORMAT, "prefix %zu: status %s (%s)", l, lk_status_name(s),
                      err.msg);
        ck_assert_ptr_null(m);
        ck_assert_ptr_nonnull(strstr(err.msg, "cut.bin"));
    }
    free(b);
}
END_TEST

/* Sections in the file's directory (6, or 7 with 'packed'). */
static int n_sections(const unsigned char *b) {
    uint32_t n;
    memcpy(&n, b + 24, 4);
    return n == 7 ? 7 : 6;
}

/* Section directory entry i (1-based id order as written): offset and size. */
static void section(const unsigned char *b, int id, uint64_t *off, uint64_t *size) {
    for (int i = 0; i < n_sections(b); i++) {
        const unsigned char *e = b + 40 + 32 * i;
        uint32_t             eid;
        memcpy(&eid, e, 4);
        if ((int)eid != id) continue;
        memcpy(off, e + 8, 8);
        memcpy(size, e + 16, 8);
        return;
    }
    ck_abort_msg("section %d not found", id);
}

START_TEST(test_bitflips) {
    static const char *const names[] = {"", "strings", "meta", "values", "graph", "outputs",
                                        "data", "packed"};
    char           path[512], bad[512];
    size_t         len;
    unsigned char *b = read_all(saved_model_as("bf.bin", _i, path, sizeof path), &len);
    ck_assert_int_eq(n_sections(b), _i ? 7 : 6);
    tmp_path("flip.bin", bad, sizeof bad);
    for (size_t pos = 0; pos < len; pos++) {
        int bit = (int)(pos * 7 % 8);
        lk_model *m = NULL;
        lk_error  err;
        b[pos] ^= (unsigned char)(1u << bit);
        lk_status s = native_load_mem(bad, b, len, &m, &err);
        b[pos] ^= (unsigned char)(1u << bit);
        ck_assert_msg(s == LK_EFORMAT || s == LK_EUNSUPPORTED, "flip at %zu: %s", pos,
                      lk_status_name(s));
        ck_assert_ptr_null(m);
        /* Inside a section the message names it (or the corrupted tensor). */
        for (int id = 1; id <= n_sections(b); id++) {
            uint64_t off, size;
            if (id == 6) continue;
            section(b, id, &off, &size);
            if (pos >= off && pos < off + size)
                ck_assert_msg(strstr(err.msg, names[id]) && strstr(err.msg, "checksum"),
                              "flip at %zu in '%s': %s", pos, names[id], err.msg);
        }
        uint64_t doff, dsize;
        section(b, 6, &doff, &dsize);
        if (pos >= doff)
            ck_assert_msg(strstr(err.msg, "parameter") || strstr(err.msg, "data"),
                          "flip at %zu in data: %s", pos, err.msg);
    }
    free(b);
}
END_TEST

/* The format's checksum (doc/model-bin.md), reimplemented to forge files with valid sums. */
static uint64_t lk64(const unsigned char *p, size_t n) {
    const uint64_t K = 0xff51afd7ed558ccdull;
    uint64_t       h = 0x9e3779b97f4a7c15ull ^ (uint64_t)n, w;
    size_t         i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        h = (h ^ w) * K;
        h ^= h >> 32;
    }
    if (i < n) {
        w = 0;
        memcpy(&w, p + i, n - i);
        h = (h ^ w) * K;
        h ^= h >> 32;
    }
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

/* lk64x4 as doc/model-bin.md defines it (the tensor checksum of version 2), written from the
 * text: four lk64 chains over the words i mod 4, then lk64 over the four states. */
static uint64_t lk64x4_ref(const unsigned char *p, size_t n) {
    const uint64_t K = 0xff51afd7ed558ccdull;
    uint64_t       h[4], w;
    for (int l = 0; l < 4; l++) h[l] = 0x9e3779b97f4a7c15ull ^ (uint64_t)n ^ (uint64_t)l;
    for (size_t i = 0, k = 0; i < n; i += 8, k++) {
        w = 0;
        memcpy(&w, p + i, n - i < 8 ? n - i : 8);
        h[k % 4] = (h[k % 4] ^ w) * K;
        h[k % 4] ^= h[k % 4] >> 32;
    }
    return lk64((const unsigned char *)h, sizeof h);
}

/* Recomputes the checksums of every section but 'data' and of the header. */
static void reseal(unsigned char *b, size_t len) {
    int ns = n_sections(b);
    for (int i = 0; i < ns; i++) {
        unsigned char *e = b + 40 + 32 * i;
        uint32_t       id;
        uint64_t       off, size;
        memcpy(&id, e, 4);
        memcpy(&off, e + 8, 8);
        memcpy(&size, e + 16, 8);
        if (id >= 1 && id <= 7 && id != 6 && off <= len && size <= len - off) {
            uint64_t c = lk64(b + off, size);
            memcpy(e + 24, &c, 8);
        }
    }
    uint64_t c = lk64(b, 40 + 32 * (size_t)ns);
    memcpy(b + 40 + 32 * (size_t)ns, &c, 8);
}

typedef struct forge {
    const char *what;
    int         section;  /* 0 = header */
    size_t      at;       /* byte offset inside the section */
    int         width;    /* 4 or 8 */
    uint64_t    value;
    lk_status   expect;
    const char *needle;   /* expected in the message */
} forge;

/* Offsets follow doc/model-bin.md.  VALS: u64 count, then 96-byte records (value 0 is the
 * input, 1 the first parameter).  NODE: u32 count, u32 attrs size, u64 fingerprint, then
 * records {u32 op, u32 name, u32 n_in, u32 n_out, ids..., attrs}. */
static const forge forges[] = {
    {"file size field", 0, 16, 8, 1u << 30, LK_EFORMAT, "header records"},
    {"section count", 0, 24, 4, 99, LK_EFORMAT, "sections"},
    {"format version", 0, 8, 4, 3, LK_EUNSUPPORTED, "version 3"},
    {"version 2 with 6 sections", 0, 8, 4, 2, LK_EFORMAT, "sections"},
    {"header flags", 0, 12, 4, 4, LK_EUNSUPPORTED, "flags"},
    {"section offset past the end", 0, 40 + 8, 8, (uint64_t)1 << 40, LK_EFORMAT, "outside"},
    {"section size past the end", 0, 40 + 16, 8, (uint64_t)-8, LK_EFORMAT, "outside"},
    {"sections overlap", 0, 40 + 32 + 8, 8, 0, LK_EFORMAT, ""},
    {"value count huge", 3, 0, 8, (uint64_t)1 << 60, LK_EFORMAT, "values"},
    {"value count short", 3, 0, 8, 2, LK_EFORMAT, "values"},
    {"value name offset", 3, 8, 4, 0x7fffffff, LK_EFORMAT, "string offset"},
    {"value kind", 3, 8 + 4, 4, 0x00000007, LK_EFORMAT, "kind"},
    {"param data offset", 3, 8 + 96 + 72, 8, (uint64_t)1 << 50, LK_EFORMAT, "conv.weight"},
    {"param data misaligned", 3, 8 + 96 + 72, 8, 4, LK_EFORMAT, "conv.weight"},
    {"param byte length", 3, 8 + 96 + 80, 8, 12, LK_EFORMAT, "conv.weight"},
    {"param shape negative", 3, 8 + 96 + 8, 8, (uint64_t)-4, LK_EFORMAT, "conv.weight"},
    {"param shape huge", 3, 8 + 96 + 8, 8, (uint64_t)1 << 62, LK_EFORMAT, "conv.weight"},
    {"node count huge", 4, 0, 4, 0xffffffffu, LK_EFORMAT, "node count"},
    {"attrs size", 4, 4, 4, 17, LK_EUNSUPPORTED, "attribute layout"},
    {"attrs fingerprint", 4, 8, 8, 12345, LK_EUNSUPPORTED, "attribute layout"},
    {"node op string offset", 4, 16, 4, 0xfffffff0u, LK_EFORMAT, "string offset"},
    {"node n_in huge", 4, 16 + 8, 4, 0x40000000u, LK_EFORMAT, "relu1"},
    {"node n_out zero", 4, 16 + 12, 4, 0, LK_EFORMAT, "relu1"},
    {"node input id", 4, 16 + 16, 8, 1000000, LK_EFORMAT, "relu1"},
    {"node input id negative", 4, 16 + 16, 8, (uint64_t)-5, LK_EFORMAT, "relu1"},
    {"node output is a param", 4, 16 + 24, 8, 1, LK_EFORMAT, "relu1"},
    {"output count", 5, 0, 4, 1000, LK_EFORMAT, "outputs"},
    {"output id", 5, 8, 8, 999999, LK_EFORMAT, "output"},
    {"meta string offset", 2, 4, 4, 0xffffff, LK_EFORMAT, "meta producer"},
};

/* Forged on the version 2 file (section 7, 'packed': u64 count, u64 0, then 48-byte records
 * {value id, key, data offset, bytes, checksum, 0}; value 1 is conv.weight). */
static const forge pack_forges[] = {
    {"version 1 with 7 sections", 0, 8, 4, 1, LK_EFORMAT, "sections"},
    {"pack count huge", 7, 0, 8, (uint64_t)1 << 60, LK_EFORMAT, "'packed'"},
    {"pack count zero", 7, 0, 8, 0, LK_EFORMAT, "'packed'"},
    {"pack reserved", 7, 8, 8, 1, LK_EFORMAT, "'packed'"},
    {"pack of the input", 7, 16, 8, 0, LK_EFORMAT, "not a parameter"},
    {"pack of a value past the end", 7, 16, 8, 1000, LK_EFORMAT, "not a parameter"},
    {"pack data past the end", 7, 16 + 16, 8, (uint64_t)1 << 50, LK_EFORMAT, "outside"},
    {"pack data misaligned", 7, 16 + 16, 8, 4, LK_EFORMAT, "outside"},
    {"pack data over the parameters", 7, 16 + 16, 8, 0, LK_EFORMAT, "outside"},
    {"pack bytes odd", 7, 16 + 24, 8, 6, LK_EFORMAT, "outside"},
    {"pack bytes huge", 7, 16 + 24, 8, (uint64_t)-64, LK_EFORMAT, "outside"},
    {"pack checksum", 7, 16 + 32, 8, 12345, LK_EFORMAT, "checksum"},
    {"pack record reserved", 7, 16 + 40, 8, 1, LK_EFORMAT, "not a parameter"},
};

static void run_forge(const forge *f, int packed) {
    char           path[512], bad[512];
    size_t         len;
    unsigned char *b = read_all(saved_model_as("fg.bin", packed, path, sizeof path), &len);
    uint64_t       off = 0, size = 0;
    if (f->section) section(b, f->section, &off, &size);
    size_t at = (size_t)off + f->at;
    ck_assert_uint_le(at + (size_t)f->width, len);
    if (f->width == 4) {
        uint32_t v = (uint32_t)f->value;
        memcpy(b + at, &v, 4);
    } else {
        memcpy(b + at, &f->value, 8);
    }
    reseal(b, len);
    tmp_path("forged.bin", bad, sizeof bad);
    write_all(bad, b, len);
    lk_model *m = NULL;
    lk_error  err;
    lk_status s = native_load(bad, &m, &err);
    ck_assert_msg(s == f->expect && strstr(err.msg, f->needle), "%s: %s %s", f->what,
                  lk_status_name(s), s ? err.msg : "");
    ck_assert_ptr_null(m);
    free(b);
}

START_TEST(test_forged) { run_forge(&forges[_i], 0); }
END_TEST

START_TEST(test_forged_packed) { run_forge(&pack_forges[_i], 1); }
END_TEST

/* Bytes an exec planned on m with default options would hold (packed weights included). */
static uint64_t plan_bytes(const lk_model *m) {
    uint64_t bytes = 0;
    lk_error err;
    ck_assert_msg(lk_exec_estimate(m, NULL, 0, NULL, &bytes, &err) == LK_OK, "%s", err.msg);
    return bytes;
}

static void forward_twice(const lk_model *m, float **y1, float **y2, int64_t *n) {
    float *y[2];
    forward_runs(m, 0, 2, y, n);
    *y1 = y[0];
    *y2 = y[1];
}

START_TEST(test_packed_used) {
    /* Packs made ahead of time are what the exec runs on: replaced by other data under the
     * right key they change the output, in the first run (read from the model) and the second
     * (the exec's copy) alike; under another key they are ignored. */
    lk_error  err;
    lk_model *z = test_model(1), *ref = test_model(1);
    int64_t   vw = lk_model_find_value(z, "conv.weight"), n, nr;
    ck_assert_int_eq(lk_exec_prepack(z, 0, NULL, NULL, &err), LK_OK);
    size_t       fl;
    uint64_t     key;
    const float *p = lk_model_param_packed(z, vw, &key, &fl);
    ck_assert_ptr_nonnull(p);
    float *bogus = malloc(fl * sizeof(float));
    for (size_t i = 0; i < fl; i++) bogus[i] = -2.0f * p[i];
    ck_assert_int_eq(lk_model_set_param_packed(z, vw, key, bogus, fl, &err), LK_OK);
    float *y1, *y2, *yr = forward_copy(ref, 0, &nr);
    forward_twice(z, &y1, &y2, &n);
    ck_assert_int_eq(n, nr);
    ck_assert(memcmp(y1, yr, sizeof(float) * (size_t)n) != 0);
    ck_assert(memcmp(y1, y2, sizeof(float) * (size_t)n) == 0);
    free(y1);
    free(y2);
    ck_assert_int_eq(lk_model_set_param_packed(z, vw, key ^ 1, bogus, fl, &err), LK_OK);
    forward_twice(z, &y1, &y2, &n);
    ck_assert(memcmp(y1, yr, sizeof(float) * (size_t)n) == 0);
    ck_assert(memcmp(y2, yr, sizeof(float) * (size_t)n) == 0);
    free(y1);
    free(y2);
    free(yr);
    lk_model_free(z);
    lk_model_free(ref);
    free(bogus);
}
END_TEST

/* One conv, 32 -> 192 channels, 3x3, pad 1, on a declared 1x32x7x7 input. */
static lk_model *conv192_model(void) {
    lk_model *m = NULL;
    lk_error  err;
    int64_t   xs[4] = {1, 32, 7, 7}, ws[4] = {192, 32, 3, 3}, x, w, y;
    static float wd[192 * 32 * 9];
    tu_fill_uniform(wd, 192 * 32 * 9, 31, -0.2f, 0.2f);
    ck_assert_int_eq(lk_model_alloc(&m, &err), LK_OK);
    ck_assert_int_eq(lk_model_add_input(m, "image", 4, xs, &x, &err), LK_OK);
    ck_assert_int_eq(lk_model_add_param(m, "conv.weight", 4, ws, wd, 1, &w, &err), LK_OK);
    lk_attrs c = lk_attrs_default(LK_OP_CONV);
    c.conv.kernel[0] = c.conv.kernel[1] = 3;
    c.conv.pad_begin[0] = c.conv.pad_begin[1] = c.conv.pad_end[0] = c.conv.pad_end[1] = 1;
    const char *no[1] = {"conv.out"};
    int64_t     in[2] = {x, w};
    ck_assert_int_eq(lk_model_add_node(m, LK_OP_CONV, "conv", 2, in, 1, no, &c, &y, &err), LK_OK);
    ck_assert_int_eq(lk_model_set_outputs(m, 1, &y, &err), LK_OK);
    ck_assert_int_eq(lk_model_finalize(m, &err), LK_OK);
    return m;
}

/* Output of m's forward on a seeded 1x32xhxh input, planned for that shape: a heap copy. */
static float *conv192_forward(const lk_model *m, int64_t h, int64_t *n) {
    lk_exec   *x = NULL;
    lk_error   err;
    int64_t    sh[4] = {1, 32, h, h};
    lk_tensor *in = NULL;
    ck_assert_int_eq(lk_tensor_alloc(LK_F32, 4, sh, &in, &err), LK_OK);
    tu_fill_uniform(in->data, lk_tensor_numel(in), 5, -1.0f, 1.0f);
    const lk_tensor *ins[1] = {in};
    ck_assert_msg(lk_exec_alloc(m, NULL, 1, ins, &x, &err) == LK_OK, "%s", err.msg);
    ck_assert_msg(lk_exec_forward(x, ins, &err) == LK_OK, "%s", err.msg);
    const lk_tensor *t = lk_exec_value(x, lk_model_output(m, 0));
    *n                 = lk_tensor_numel(t);
    float *y           = malloc(sizeof(float) * (size_t)*n);
    memcpy(y, t->data, sizeof(float) * (size_t)*n);
    lk_exec_free(x);
    lk_tensor_free(in);
    return y;
}

START_TEST(test_packed_plane_size) {
    /* The packed conv's layout depends on the plane: 192 output channels on 7x7 run on
     * channel blocks (3 blocks of 64), on 64x64 on 6-row panels (32 panels): the same number
     * of floats.  A pack made ahead of time for 7x7 must not be used for 64x64 (the key holds
     * the input shape): outputs equal, bit for bit, those of a model packed at planning. */
    lk_error  err;
    lk_model *a = conv192_model(), *ref = conv192_model();
    int64_t   sh[4] = {1, 32, 7, 7}, np = 0;
    lk_tensor t7;
    memset(&t7, 0, sizeof t7);
    lk_tensor_set_shape(&t7, 4, sh);
    const lk_tensor *shp[1] = {&t7};
    ck_assert_msg(lk_exec_prepack(a, 1, shp, &np, &err) == LK_OK, "%s", err.msg);
    ck_assert_int_eq(np, 1);
    for (int i = 0; i < 2; i++) {
        int64_t h = i ? 64 : 7, na, nr;
        float  *ya = conv192_forward(a, h, &na), *yr = conv192_forward(ref, h, &nr);
        ck_assert_int_eq(na, nr);
        ck_assert_msg(memcmp(ya, yr, sizeof(float) * (size_t)na) == 0, "%lldx%lld differs",
                      (long long)h, (long long)h);
        free(ya);
        free(yr);
    }
    lk_model_free(a);
    lk_model_free(ref);
}
END_TEST

START_TEST(test_packed) {
    /* Weights packed ahead of time: stored in a version 2 file, mapped zero-copy, used by
     * the exec instead of its own packing (fewer bytes planned), with outputs bit for bit
     * those of the model packed at planning; a forged key makes the exec pack its own. */
    char      path[512], path2[512], bad[512];
    lk_error  err;
    lk_model *a = test_model(1), *ref = test_model(1), *b = NULL, *c = NULL;
    int64_t   np = -1, vw = lk_model_find_value(a, "conv.weight");
    ck_assert_ptr_null(lk_model_param_packed(a, vw, NULL, NULL));
    ck_assert_msg(lk_exec_prepack(a, 0, NULL, &np, &err) == LK_OK, "%s", err.msg);
    ck_assert_int_eq(np, 1);
    size_t       fa = 0;
    uint64_t     ka = 0;
    const float *pa = lk_model_param_packed(a, vw, &ka, &fa);
    ck_assert_ptr_nonnull(pa);
    ck_assert_uint_gt(fa, 0);
    ck_assert_int_eq(lk_exec_prepack(a, 0, NULL, &np, &err), LK_OK); /* already packed */
    ck_assert_int_eq(np, 0);
    /* The exec reserves room for its own copy (promote_packs), so the plan is the same size. */
    uint64_t own = plan_bytes(ref);
    ck_assert_uint_eq(plan_bytes(a), own);
    tmp_path("packed.bin", path, sizeof path);
    ck_assert_msg(lk_model_save_native(a, path, &err) == LK_OK, "%s", err.msg);
    ck_assert_msg(lk_model_load(path, NULL, &b, &err) == LK_OK, "%s", err.msg);
    assert_same_model(a, b);
    size_t       fb = 0;
    uint64_t     kb = 0;
    const float *pb = lk_model_param_packed(b, lk_model_find_value(b, "conv.weight"), &kb, &fb);
    ck_assert_ptr_nonnull(pb);
    ck_assert_uint_eq((uintptr_t)pb % 64, 0);
    ck_assert_uint_eq(fb, fa);
    ck_assert_uint_eq(kb, ka);
    ck_assert(memcmp(pa, pb, fa * 4) == 0);
    ck_assert_uint_eq(plan_bytes(b), own);
    for (int o = 0; o < 2; o++) {
        int64_t na, nb, nr;
        float  *ya = forward_copy(a, o, &na), *yb = forward_copy(b, o, &nb),
               *yr = forward_copy(ref, o, &nr);
        ck_assert_int_eq(na, nr);
        ck_assert_int_eq(nb, nr);
        ck_assert(memcmp(ya, yr, sizeof(float) * (size_t)na) == 0);
        ck_assert(memcmp(yb, yr, sizeof(float) * (size_t)na) == 0);
        free(ya);
        free(yb);
        free(yr);
    }
    /* The version 2 checksums follow the documented lk64x4: conv.weight's record (value 1)
     * and its pack record. */
    {
        size_t         flen;
        unsigned char *raw = read_all(path, &flen);
        uint64_t       voff, vsize, poff, psize, doff, nb, ck;
        section(raw, 3, &voff, &vsize);
        memcpy(&doff, raw + voff + 8 + 96 + 72, 8);
        memcpy(&nb, raw + voff + 8 + 96 + 80, 8);
        memcpy(&ck, raw + voff + 8 + 96 + 88, 8);
        ck_assert_uint_eq(ck, lk64x4_ref(raw + doff, (size_t)nb));
        ck_assert_uint_ne(ck, lk64(raw + doff, (size_t)nb));
        section(raw, 7, &poff, &psize);
        memcpy(&doff, raw + poff + 16 + 16, 8);
        memcpy(&nb, raw + poff + 16 + 24, 8);
        memcpy(&ck, raw + poff + 16 + 32, 8);
        ck_assert_uint_eq(nb, fa * 4);
        ck_assert_uint_eq(ck, lk64x4_ref(raw + doff, (size_t)nb));
        free(raw);
    }
    /* Re-saved: the packs travel with the model. */
    tmp_path("packed2.bin", path2, sizeof path2);
    ck_assert_msg(lk_model_save_native(b, path2, &err) == LK_OK, "%s", err.msg);
    ck_assert_msg(lk_model_load(path2, NULL, &c, &err) == LK_OK, "%s", err.msg);
    ck_assert_ptr_nonnull(lk_model_param_packed(c, lk_model_find_value(c, "conv.weight"), NULL, NULL));
    lk_model_free(c);
    c = NULL;
    /* A key for another geometry: the file loads, the exec ignores the pack. */
    size_t         len;
    unsigned char *raw = read_all(path, &len);
    uint64_t       off, size, key = ka ^ 1;
    section(raw, 7, &off, &size);
    memcpy(raw + off + 16 + 8, &key, 8);
    reseal(raw, len);
    tmp_path("packed-key.bin", bad, sizeof bad);
    write_all(bad, raw, len);
    free(raw);
    ck_assert_msg(lk_model_load(bad, NULL, &c, &err) == LK_OK, "%s", err.msg);
    int64_t nc, nr;
    float  *yc = forward_copy(c, 0, &nc), *yr = forward_copy(ref, 0, &nr);
    ck_assert(memcmp(yc, yr, sizeof(float) * (size_t)nr) == 0);
    free(yc);
    free(yr);
    /* Parameters changed in place: the exec stops using the (stale) packs. */
    lk_tensor *wa = (lk_tensor *)lk_model_param(a, vw),
              *wr = (lk_tensor *)lk_model_param(ref, lk_model_find_value(ref, "conv.weight"));
    lk_exec   *x  = NULL;
    int64_t    sh[LK_MAX_DIMS];
    int        nd = lk_model_input_shape(a, 0, sh);
    lk_tensor *in = NULL;
    ck_assert_int_eq(lk_tensor_alloc(LK_F32, nd, sh, &in, &err), LK_OK);
    tu_fill_uniform(in->data, lk_tensor_numel(in), 77, -2.385f, 2.385f);
    ck_assert_msg(lk_exec_alloc(a, NULL, 0, NULL, &x, &err) == LK_OK, "%s", err.msg);
    for (int64_t i = 0; i < lk_tensor_numel(wa); i++) {
        ((float *)wa->data)[i] *= -2.0f;
        ((float *)wr->data)[i] *= -2.0f;
    }
    lk_exec_params_changed(x);
    const lk_tensor *ins[1] = {in};
    ck_assert_msg(lk_exec_forward(x, ins, &err) == LK_OK, "%s", err.msg);
    float *yw = forward_copy(ref, 0, &nr);
    ck_assert(memcmp(lk_exec_value(x, lk_model_output(a, 0))->data, yw, sizeof(float) * (size_t)nr) == 0);
    free(yw);
    lk_exec_free(x);
    lk_tensor_free(in);
    lk_model_free(a);
    lk_model_free(b);
    lk_model_free(c);
    lk_model_free(ref);
}
END_TEST

START_TEST(test_unknown_op) {
    /* An op name this build does not know is LK_EUNSUPPORTED naming the op and node. */
    char           path[512], bad[512];
    size_t         len;
    unsigned char *b = read_all(saved_model("uo.bin", path, sizeof path), &len);
    uint64_t       off, size;
    section(b, 1, &off, &size);
    unsigned char *p = memmem(b + off, size, "relu\0", 5);
    ck_assert_ptr_nonnull(p);
    memcpy(p, "relX", 4);
    reseal(b, len);
    tmp_path("unknown-op.bin", bad, sizeof bad);
    write_all(bad, b, len);
    lk_model *m = NULL;
    lk_error  err;
    ck_assert_int_eq(native_load(bad, &m, &err), LK_EUNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(err.msg, "'relX'"));
    ck_assert_ptr_nonnull(strstr(err.msg, "node 'relu"));
    free(b);
}
END_TEST

START_TEST(test_committed_bad_files) {
    /* Small hostile files kept in tests/data/bad (see its README). */
    static const struct {
        const char *name;
        lk_status   expect;
    } cases[] = {
        {"tests/data/bad/empty.bin", LK_EFORMAT},
        {"tests/data/bad/magic-only.bin", LK_EFORMAT},
        {"tests/data/bad/truncated.bin", LK_EFORMAT},
        {"tests/data/bad/flipped-graph.bin", LK_EFORMAT},
        {"tests/data/bad/flipped-data.bin", LK_EFORMAT},
        {"tests/data/bad/version99.bin", LK_EUNSUPPORTED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char      p[512];
        lk_model *m = NULL;
        lk_error  err;
        tu_src_path(cases[i].name, p, sizeof p);
        lk_status s = native_load(p, &m, &err);
        ck_assert_msg(s == cases[i].expect, "%s: %s (%s)", cases[i].name, lk_status_name(s),
                      err.msg);
        ck_assert_ptr_nonnull(strstr(err.msg, cases[i].name + strlen("tests/data/bad/")));
    }
}
END_TEST

START_TEST(test_fuzz_corpus) {
    /* The forged seeds of fuzz_native (fuzz/corpus/native, written by gen_native_corpus):
     * each loads or fails at the validation with a message naming the node or value, and a
     * model that loads plans (dry run) or stops with one message; nothing overflows. */
    static const struct {
        const char *name;
        lk_status   load, plan;
        const char *needle; /* in the load or plan message */
    } cases[] = {
        {"tiny.bin", LK_OK, LK_OK, ""},
        {"tiny-packed.bin", LK_OK, LK_OK, ""},
        {"conv-stride-int64max.bin", LK_EFORMAT, LK_OK, "'conv1'"},
        {"conv-dilation-int64max.bin", LK_EFORMAT, LK_OK, "'conv1'"},
        {"conv-pads-int64max.bin", LK_EFORMAT, LK_OK, "'conv1'"},
        {"conv-stride-pads-2e31.bin", LK_OK, LK_ESHAPE, "working buffers"},
        {"maxpool-dilation-int64max.bin", LK_ESHAPE, LK_OK, "'pool1'"},
        {"convt-stride-int64max.bin", LK_EFORMAT, LK_OK, "'up'"},
        {"pad-int64min.bin", LK_EFORMAT, LK_OK, "'pad'"},
        {"slice-step-int64min.bin", LK_OK, LK_OK, ""},
        {"split-sizes-int64max.bin", LK_ESHAPE, LK_OK, "'split'"},
        {"reshape-overflow.bin", LK_ESHAPE, LK_OK, "'flatten'"},
        {"d2s-block-2e30.bin", LK_ESHAPE, LK_OK, "'d2s'"},
        {"input-dims-2e30.bin", LK_ESHAPE, LK_OK, "2^59"},
        {"matmul-macs-2e79.bin", LK_OK, LK_ENOMEM, "2^59"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char      rel[256], p[512];
        lk_model *m = NULL;
        lk_error  err;
        snprintf(rel, sizeof rel, "fuzz/corpus/native/%s", cases[i].name);
        tu_src_path(rel, p, sizeof p);
        lk_status s = native_load(p, &m, &err);
        ck_assert_msg(s == cases[i].load, "%s: %s (%s)", cases[i].name, lk_status_name(s),
                      s ? err.msg : "");
        if (s) {
            ck_assert_msg(strstr(err.msg, cases[i].needle), "%s: %s", cases[i].name, err.msg);
            ck_assert_ptr_null(m);
            continue;
        }
        for (int64_t k = 0; k < lk_model_n_nodes(m); k++) (void)lk_model_node_macs(m, k);
        uint64_t bytes = 0;
        s              = lk_exec_estimate(m, NULL, 0, NULL, &bytes, &err);
        ck_assert_msg(s == cases[i].plan, "%s: plan %s (%s)", cases[i].name, lk_status_name(s),
                      s ? err.msg : "");
        if (s) ck_assert_msg(strstr(err.msg, cases[i].needle), "%s: %s", cases[i].name, err.msg);
        lk_model_free(m);
    }
}
END_TEST

START_TEST(test_alloc_failures) {
    char path[512];
    saved_model("af.bin", path, sizeof path);
    long n;
    for (n = 1;; n++) {
        lk_model *m = NULL;
        lk_error  err;
        lk_alloc_fail_after(n);
        lk_status s = lk_model_load(path, NULL, &m, &err);
        lk_alloc_fail_after(0);
        if (s == LK_OK) {
            lk_model_free(m);
            break;
        }
        ck_assert_msg(s == LK_ENOMEM, "allocation %ld: %s (%s)", n, lk_status_name(s), err.msg);
        ck_assert_ptr_null(m);
        ck_assert_int_lt(n, 100000);
    }
    ck_assert_int_gt(n, 5);
}
END_TEST

START_TEST(test_input_shape_override) {
    char         path[512];
    lk_model    *m = NULL;
    lk_error     err;
    lk_load_opts o;
    memset(&o, 0, sizeof o);
    saved_model("is.bin", path, sizeof path);
    o.n_input_shape = 4;
    int64_t s[4]    = {2, 3, 8, 8};
    memcpy(o.input_shape, s, sizeof s);
    ck_assert_msg(lk_model_load(path, &o, &m, &err) == LK_OK, "%s", err.msg);
    int64_t got[LK_MAX_DIMS];
    ck_assert_int_eq(lk_model_input_shape(m, 0, got), 4);
    ck_assert_int_eq(got[0], 2);
    lk_model_free(m);
    o.n_input_shape = 2;
    ck_assert_int_eq(lk_model_load(path, &o, &m, &err), LK_ESHAPE);
    ck_assert_ptr_nonnull(strstr(err.msg, "image"));
}
END_TEST

/* ---- npy ---------------------------------------------------------------------------------------- */

static void npy_file(const char *path, int major, const char *dict, const void *data, size_t n) {
    size_t pre = major == 1 ? 10 : 12, dl = strlen(dict);
    size_t total = (pre + dl + 1 + 63) / 64 * 64;
    unsigned char *b = calloc(1, total + n);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (unsigned char)major;
    uint32_t hl = (uint32_t)(total - pre);
    memcpy(b + 8, &hl, major == 1 ? 2 : 4);
    memcpy(b + pre, dict, dl);
    memset(b + pre + dl, ' ', total - pre - dl - 1);
    b[total - 1] = '\n';
    if (n) memcpy(b + total, data, n);
    write_all(path, b, total + n);
    free(b);
}

START_TEST(test_npy_roundtrip) {
    char       path[512];
    lk_error   err;
    lk_tensor *t = NULL, *r = NULL;
    int64_t    shapes[4][4] = {{2, 3, 4, 5}, {7}, {0, 3}, {1}};
    int        nds[4]       = {4, 1, 2, 0};
    for (int c = 0; c < 4; c++) {
        ck_assert_int_eq(lk_tensor_alloc(LK_F32, nds[c], shapes[c], &t, &err), LK_OK);
        tu_fill_uniform(t->data, lk_tensor_numel(t), 5 + (uint64_t)c, -2.385f, 2.385f);
        tmp_path("rt.npy", path, sizeof path);
        ck_assert_int_eq(lk_npy_write(path, t, &err), LK_OK);
        ck_assert_msg(lk_npy_read(path, &r, &err) == LK_OK, "%s", err.msg);
        ck_assert_int_eq(r->ndim, t->ndim);
        for (int k = 0; k < t->ndim; k++) ck_assert_int_eq(r->shape[k], t->shape[k]);
        ck_assert(memcmp(r->data, t->data, 4 * (size_t)lk_tensor_numel(t)) == 0);
        /* The reference reader in testutil agrees. */
        if (lk_tensor_numel(t)) {
            lk_tensor *u = tu_read_npy(path);
            ck_assert_ptr_nonnull(u);
            ck_assert(memcmp(u->data, t->data, 4 * (size_t)lk_tensor_numel(t)) == 0);
            lk_tensor_free(u);
        }
        lk_tensor_free(t);
        lk_tensor_free(r);
    }
    /* A strided view is written in C order. */
    float     d[6] = {1, 2, 3, 4, 5, 6};
    int64_t   sh[2] = {2, 3};
    lk_tensor v = lk_tensor_view(LK_F32, 2, sh, d);
    v.shape[0] = 3, v.shape[1] = 2, v.stride[0] = 1, v.stride[1] = 3; /* transpose */
    ck_assert_int_eq(lk_npy_write(path, &v, &err), LK_OK);
    ck_assert_int_eq(lk_npy_read(path, &r, &err), LK_OK);
    float want[6] = {1, 4, 2, 5, 3, 6};
    ck_assert(memcmp(r->data, want, sizeof want) == 0);
    lk_tensor_free(r);
    /* Writing a non-float tensor is unsupported; failed writes leave nothing. */
    lk_tensor iv = lk_tensor_view(LK_I32, 2, sh, d);
    tmp_path("int.npy", path, sizeof path);
    ck_assert_int_eq(lk_npy_write(path, &iv, &err), LK_EUNSUPPORTED);
    ck_assert_int_ne(access(path, F_OK), 0);
}
END_TEST

START_TEST(test_npy_dtypes) {
    char       path[512];
    lk_error   err;
    lk_tensor *r = NULL;
    tmp_path("dt.npy", path, sizeof path);
    double f8[3] = {1.5, -2.385, 1e300};
    npy_file(path, 2, "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", f8, sizeof f8);
    ck_assert_msg(lk_npy_read(path, &r, &err) == LK_OK, "%s", err.msg);
    ck_assert(((float *)r->data)[1] == (float)-2.385 && isinf(((float *)r->data)[2]));
    lk_tensor_free(r);
    uint16_t f2[4] = {0x3c00, 0xc000, 0x0001, 0x7c00}; /* 1, -2, smallest subnormal, inf */
    npy_file(path, 3, "{\"descr\": \"<f2\", \"fortran_order\": False, \"shape\": (2, 2)}", f2,
             sizeof f2);
    ck_assert_msg(lk_npy_read(path, &r, &err) == LK_OK, "%s", err.msg);
    float *p = r->data;
    ck_assert(p[0] == 1.0f && p[1] == -2.0f && p[2] == ldexpf(1, -24) && isinf(p[3]));
    lk_tensor_free(r);
    int16_t i2[3] = {-7, 300, 32767};
    npy_file(path, 1, "{'descr': '<i2', 'fortran_order': False, 'shape': (3,), }", i2, sizeof i2);
    ck_assert_int_eq(lk_npy_read(path, &r, &err), LK_OK);
    ck_assert(((float *)r->data)[0] == -7.0f && ((float *)r->data)[2] == 32767.0f);
    lk_tensor_free(r);
    uint8_t u1[2] = {255, 3};
    npy_file(path, 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }", u1, 2);
    ck_assert_int_eq(lk_npy_read(path, &r, &err), LK_OK);
    ck_assert(((float *)r->data)[0] == 255.0f);
    lk_tensor_free(r);
    int64_t i8[2] = {-((int64_t)1 << 40), 9};
    npy_file(path, 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (1, 2), }", i8, 16);
    ck_assert_int_eq(lk_npy_read(path, &r, &err), LK_OK);
    ck_assert(((float *)r->data)[0] == -(float)((int64_t)1 << 40));
    lk_tensor_free(r);
    /* Fortran order is converted: column-major 2x3 [[1,2,3],[4,5,6]] is 1 4 2 5 3 6. */
    float fo[6] = {1, 4, 2, 5, 3, 6};
    npy_file(path, 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", fo, 24);
    ck_assert_int_eq(lk_npy_read(path, &r, &err), LK_OK);
    for (int i = 0; i < 6; i++) ck_assert(((float *)r->data)[i] == (float)(i + 1));
    lk_tensor_free(r);
}
END_TEST

static const struct {
    const char *dict;
    size_t      data;
    lk_status   expect;
    const char *needle;
} npy_bad[] = {
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 8, LK_EFORMAT, "need 12"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 16, LK_EFORMAT, "need 12"},
    {"{'descr': '<f4', 'fortran_order': False, }", 0, LK_EFORMAT, "'shape' missing"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'x': 1}", 12, LK_EFORMAT, "'x'"},
    {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (3,)}", 12, LK_EFORMAT,
     "'descr'"},
    {"{'descr': '<f4', 'fortran_order': Maybe, 'shape': (3,)}", 12, LK_EFORMAT, "fortran_order"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (-3,)}", 12, LK_EFORMAT, "shape"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}", 12, LK_EFORMAT,
     "shape"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296)}", 12,
     LK_EFORMAT, "too large"},
    {"{'descr': '>f4', 'fortran_order': False, 'shape': (3,)}", 12, LK_EUNSUPPORTED, "big-endian"},
    {"{'descr': '<c8', 'fortran_order': False, 'shape': (3,)}", 24, LK_EUNSUPPORTED, "'<c8'"},
    {"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,)}", 12, LK_EUNSUPPORTED,
     "structured"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1)}", 4, LK_EUNSUPPORTED,
     "dims"},
    {"['descr', '<f4']", 12, LK_EFORMAT, "'{'"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (3,)} junk", 12, LK_EFORMAT, "after"},
};

START_TEST(test_npy_bad) {
    char       path[512];
    lk_error   err;
    lk_tensor *r = NULL;
    unsigned char zeros[64] = {0};
    tmp_path("bad.npy", path, sizeof path);
    npy_file(path, 1, npy_bad[_i].dict, zeros, npy_bad[_i].data);
    lk_status s = lk_npy_read(path, &r, &err);
    ck_assert_msg(s == npy_bad[_i].expect && strstr(err.msg, npy_bad[_i].needle), "%s: %s %s",
                  npy_bad[_i].dict, lk_status_name(s), s ? err.msg : "");
    ck_assert_ptr_null(r);
}
END_TEST

START_TEST(test_npy_truncated) {
    char       path[512], cut[512];
    lk_error   err;
    lk_tensor *t = NULL, *r = NULL;
    int64_t    sh[2] = {3, 5};
    ck_assert_int_eq(lk_tensor_alloc(LK_F32, 2, sh, &t, &err), LK_OK);
    tu_fill_uniform(t->data, 15, 3, -1, 1);
    tmp_path("full.npy", path, sizeof path);
    ck_assert_int_eq(lk_npy_write(path, t, &err), LK_OK);
    size_t         len;
    unsigned char *b = read_all(path, &len);
    tmp_path("cut.npy", cut, sizeof cut);
    for (size_t l = 0; l < len; l++) {
        write_all(cut, b, l);
        lk_status s = lk_npy_read(cut, &r, &err);
        ck_assert_msg(s == LK_EFORMAT, "prefix %zu: %s", l, lk_status_name(s));
        ck_assert_ptr_null(r);
        ck_assert_ptr_nonnull(strstr(err.msg, "cut.npy"));
    }
    ck_assert_int_eq(lk_npy_read("/nonexistent/x.npy", &r, &err), LK_EIO);
    ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent/x.npy"));
    free(b);
    lk_tensor_free(t);
}
END_TEST

START_TEST(test_npy_committed_bad) {
    static const char *const files[] = {
        "tests/data/bad/garbage.npy", "tests/data/bad/header-overflow.npy",
        "tests/data/bad/short-data.npy", "tests/data/bad/version9.npy",
        "tests/data/bad/unterminated.npy",
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char       p[512];
        lk_tensor *r = NULL;
        lk_error   err;
        tu_src_path(files[i], p, sizeof p);
        lk_status s = lk_npy_read(p, &r, &err);
        ck_assert_msg(s == LK_EFORMAT || s == LK_EUNSUPPORTED, "%s: %s", files[i],
                      lk_status_name(s));
        ck_assert_ptr_null(r);
    }
}
END_TEST

START_TEST(test_npy_alloc_failures) {
    char       path[512];
    lk_error   err;
    lk_tensor *t = NULL, *r = NULL;
    int64_t    sh[3] = {2, 3, 4};
    ck_assert_int_eq(lk_tensor_alloc(LK_F32, 3, sh, &t, &err), LK_OK);
    tmp_path("af.npy", path, sizeof path);
    for (long n = 1;; n++) {
        lk_alloc_fail_after(n);
        lk_status s = lk_npy_write(path, t, &err);
        lk_alloc_fail_after(0);
        if (s == LK_OK) break;
        ck_assert_int_eq(s, LK_ENOMEM);
        ck_assert_int_ne(access(path, F_OK), 0);
    }
    for (long n = 1;; n++) {
        lk_alloc_fail_after(n);
        lk_status s = lk_npy_read(path, &r, &err);
        lk_alloc_fail_after(0);
        if (s == LK_OK) break;
        ck_assert_int_eq(s, LK_ENOMEM);
        ck_assert_ptr_null(r);
    }
    lk_tensor_free(r);
    lk_tensor_free(t);
}
END_TEST

START_TEST(test_parallel_verify) {
    /* Files of more than 32 MB are verified on several threads ahead of the sequential
     * checks: the load succeeds, and a flipped byte in any tensor still names that tensor. */
    char      path[512];
    lk_error  err;
    lk_model *m = NULL;
    int64_t   big[1] = {12 << 20}, small[1] = {1000};
    float    *d = calloc((size_t)big[0] + 8, sizeof(float)); /* c.big starts 7 floats in */
    ck_assert_ptr_nonnull(d);
    for (int64_t i = 0; i < big[0]; i++) d[i] = (float)(i % 977) * 0.25f;
    ck_assert_int_eq(lk_model_alloc(&m, &err), LK_OK);
    ck_assert_int_eq(lk_model_add_param(m, "a.small", 1, small, d, 1, NULL, &err), LK_OK);
    ck_assert_int_eq(lk_model_add_param(m, "b.big", 1, big, d, 1, NULL, &err), LK_OK);
    ck_assert_int_eq(lk_model_add_param(m, "c.big", 1, big, d + 7, 0, NULL, &err), LK_OK);
    ck_assert_int_eq(lk_model_finalize(m, &err), LK_OK);
    tmp_path("big.bin", path, sizeof path);
    ck_assert_msg(lk_model_save_native(m, path, &err) == LK_OK, "%s", err.msg);
    lk_model_free(m);
    free(d);
    size_t         len;
    unsigned char *b = read_all(path, &len);
    ck_assert_uint_gt(len, (size_t)96 << 20);
    lk_model *r = NULL;
    ck_assert_msg(native_load_mem(path, b, len, &r, &err) == LK_OK, "%s", err.msg);
    lk_model_free(r);
    static const char *const names[] = {"a.small", "b.big", "c.big"};
    for (int t = 0; t < 3; t++) {
        uint64_t voff, vsize, doff;
        section(b, 3, &voff, &vsize);
        memcpy(&doff, b + voff + 8 + (size_t)(t + 0) * 96 + 72, 8);
        size_t at = (size_t)doff + (t ? (size_t)(5 << 20) * 4 : 100);
        b[at] ^= 0x10;
        r         = NULL;
        lk_status s = native_load_mem(path, b, len, &r, &err);
        b[at] ^= 0x10;
        ck_assert_int_eq(s, LK_EFORMAT);
        ck_assert_msg(strstr(err.msg, names[t]) && strstr(err.msg, "checksum"), "%s", err.msg);
    }
    free(b);
}
END_TEST

static Suite *native_suite(void) {
    Suite *s  = suite_create("native");
    TCase *tc = tcase_create("model-bin");
    tcase_add_test(tc, test_roundtrip);
    tcase_add_test(tc, test_save_atomic);
    tcase_add_loop_test(tc, test_truncations, 0, 2);
    tcase_add_loop_test(tc, test_bitflips, 0, 2);
    tcase_add_loop_test(tc, test_forged, 0, (int)(sizeof forges / sizeof forges[0]));
    tcase_add_loop_test(tc, test_forged_packed, 0,
                        (int)(sizeof pack_forges / sizeof pack_forges[0]));
    tcase_add_test(tc, test_packed);
    tcase_add_test(tc, test_packed_plane_size);
    tcase_add_test(tc, test_packed_used);
    tcase_add_test(tc, test_parallel_verify);
    tcase_add_test(tc, test_unknown_op);
    tcase_add_test(tc, test_committed_bad_files);
    tcase_add_test(tc, test_fuzz_corpus);
    tcase_add_test(tc, test_alloc_failures);
    tcase_add_test(tc, test_input_shape_override);
    suite_add_tcase(s, tc);
    TCase *tn = tcase_create("npy");
    tcase_add_test(tn, test_npy_roundtrip);
    tcase_add_test(tn, test_npy_dtypes);
    tcase_add_loop_test(tn, test_npy_bad, 0, (int)(sizeof npy_bad / sizeof npy_bad[0]));
    tcase_add_test(tn, test_npy_truncated);
    tcase_add_test(tn, test_npy_committed_bad);
    tcase_add_test(tn, test_npy_alloc_failures);
    suite_add_tcase(s, tn);
    return s;
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lk-native-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    int rc = tu_run(native_suite());
    if (tmpdir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    return rc;
}

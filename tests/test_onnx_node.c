/* test_onnx_node.c: ONNX node conformance cases from Debian's libonnx-testdata, for the ops the
 * loader maps.  Each case's model.onnx is loaded with graph inputs 1.. turned into initializers
 * (their data comes from test_data_set_0/input_N.pb), so shape-like operands are constants as
 * in exported CNNs; input 0 is fed at run time.  Outputs are compared with output_N.pb within
 * 1e-4 * max|y| + 1e-5.  The program skips (exit 77) only when the data directory is absent. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "lkprobe/lk_exec.h"
#include "loaders/loaders-impl.h"
#include "loaders/onnx-impl.h"
#include "loaders/onnx-wire.h"

#define NODE_DIR "/usr/share/libonnx-testdata/data/node"

/* Not listed: hardsigmoid* and globalaveragepool* (models use opsets 6 and 1, below the
 * supported 7..21), reshape_allowzero_reordered (zero-sized input), edge_pad/reflect_pad
 * (int32 data), *_training_mode, *_uint8/int cases, tf_crop_and_resize, *_expanded forms
 * (need ops outside lkprobe's set). */
static const char *const cases[] = {
    "test_conv_with_autopad_same", "test_conv_with_strides_and_asymmetric_padding",
    "test_conv_with_strides_no_padding", "test_conv_with_strides_padding",
    "test_convtranspose", "test_convtranspose_1d", "test_convtranspose_autopad_same",
    "test_convtranspose_dilations", "test_convtranspose_kernel_shape",
    "test_convtranspose_output_shape", "test_convtranspose_pad", "test_convtranspose_pads",
    "test_convtranspose_with_kernel",
    "test_batchnorm_epsilon", "test_batchnorm_example",
    "test_relu", "test_leakyrelu", "test_leakyrelu_default", "test_leakyrelu_example",
    "test_prelu_broadcast", "test_prelu_example",
    "test_clip", "test_clip_default_inbounds", "test_clip_default_max", "test_clip_default_min",
    "test_clip_example", "test_clip_inbounds", "test_clip_outbounds", "test_clip_splitbounds",
    "test_sigmoid", "test_sigmoid_example", "test_hardswish", "test_tanh", "test_tanh_example", "test_erf",
    "test_add", "test_add_bcast", "test_sub", "test_sub_bcast", "test_sub_example", "test_mul",
    "test_mul_bcast", "test_mul_example", "test_div", "test_div_bcast", "test_div_example",
    "test_pow", "test_pow_bcast_array", "test_pow_bcast_scalar", "test_pow_example",
    "test_pow_types_float32_int32", "test_pow_types_float32_int64",
    "test_sqrt", "test_sqrt_example",
    "test_averagepool_2d_ceil", "test_averagepool_2d_default", "test_averagepool_2d_pads",
    "test_averagepool_2d_pads_count_include_pad", "test_averagepool_2d_precomputed_pads",
    "test_averagepool_2d_precomputed_pads_count_include_pad",
    "test_averagepool_2d_precomputed_same_upper", "test_averagepool_2d_precomputed_strides",
    "test_averagepool_2d_same_lower", "test_averagepool_2d_same_upper",
    "test_averagepool_2d_strides",
    "test_maxpool_2d_ceil", "test_maxpool_2d_default", "test_maxpool_2d_dilations",
    "test_maxpool_2d_pads", "test_maxpool_2d_precomputed_pads",
    "test_maxpool_2d_precomputed_same_upper", "test_maxpool_2d_precomputed_strides",
    "test_maxpool_2d_same_lower", "test_maxpool_2d_same_upper", "test_maxpool_2d_strides",
    "test_reduce_mean_default_axes_keepdims_example", "test_reduce_mean_default_axes_keepdims_random",
    "test_reduce_mean_do_not_keepdims_example", "test_reduce_mean_do_not_keepdims_random",
    "test_reduce_mean_keepdims_example", "test_reduce_mean_keepdims_random",
    "test_reduce_mean_negative_axes_keepdims_example",
    "test_reduce_mean_negative_axes_keepdims_random",
    "test_reduce_l2_default_axes_keepdims_example", "test_reduce_l2_default_axes_keepdims_random",
    "test_reduce_l2_do_not_keepdims_example", "test_reduce_l2_do_not_keepdims_random",
    "test_reduce_l2_keep_dims_example", "test_reduce_l2_keep_dims_random",
    "test_reduce_l2_negative_axes_keep_dims_example",
    "test_reduce_l2_negative_axes_keep_dims_random",
    "test_reduce_sum_default_axes_keepdims_example", "test_reduce_sum_default_axes_keepdims_random",
    "test_reduce_sum_do_not_keepdims_example", "test_reduce_sum_do_not_keepdims_random",
    "test_reduce_sum_empty_axes_input_noop_example",
    "test_reduce_sum_empty_axes_input_noop_random", "test_reduce_sum_keepdims_example",
    "test_reduce_sum_keepdims_random", "test_reduce_sum_negative_axes_keepdims_example",
    "test_reduce_sum_negative_axes_keepdims_random",
    "test_layer_normalization_2d_axis0", "test_layer_normalization_2d_axis1",
    "test_layer_normalization_2d_axis_negative_1", "test_layer_normalization_2d_axis_negative_2",
    "test_layer_normalization_3d_axis0_epsilon", "test_layer_normalization_3d_axis1_epsilon",
    "test_layer_normalization_3d_axis2_epsilon",
    "test_layer_normalization_3d_axis_negative_1_epsilon",
    "test_layer_normalization_3d_axis_negative_2_epsilon",
    "test_layer_normalization_3d_axis_negative_3_epsilon", "test_layer_normalization_4d_axis0",
    "test_layer_normalization_4d_axis1", "test_layer_normalization_4d_axis2",
    "test_layer_normalization_4d_axis3", "test_layer_normalization_4d_axis_negative_1",
    "test_layer_normalization_4d_axis_negative_2", "test_layer_normalization_4d_axis_negative_3",
    "test_layer_normalization_4d_axis_negative_4", "test_layer_normalization_default_axis",
    "test_transpose_all_permutations_0", "test_transpose_all_permutations_1",
    "test_transpose_all_permutations_2", "test_transpose_all_permutations_3",
    "test_transpose_all_permutations_4", "test_transpose_all_permutations_5",
    "test_transpose_default",
    "test_reshape_extended_dims", "test_reshape_negative_dim",
    "test_reshape_negative_extended_dims", "test_reshape_one_dim", "test_reshape_reduced_dims",
    "test_reshape_reordered_all_dims", "test_reshape_reordered_last_dims",
    "test_reshape_zero_and_negative_dim", "test_reshape_zero_dim",
    "test_flatten_axis0", "test_flatten_axis1", "test_flatten_axis2", "test_flatten_axis3",
    "test_flatten_default_axis", "test_flatten_negative_axis1", "test_flatten_negative_axis2",
    "test_flatten_negative_axis3", "test_flatten_negative_axis4",
    "test_squeeze", "test_squeeze_negative_axes", "test_unsqueeze_axis_0", "test_unsqueeze_axis_1",
    "test_unsqueeze_axis_2", "test_unsqueeze_axis_3", "test_unsqueeze_negative_axes",
    "test_unsqueeze_three_axes", "test_unsqueeze_two_axes", "test_unsqueeze_unsorted_axes",
    "test_gemm_all_attributes", "test_gemm_alpha", "test_gemm_beta",
    "test_gemm_default_matrix_bias", "test_gemm_default_no_bias", "test_gemm_default_scalar_bias",
    "test_gemm_default_single_elem_vector_bias", "test_gemm_default_vector_bias",
    "test_gemm_default_zero_bias", "test_gemm_transposeA", "test_gemm_transposeB",
    "test_matmul_2d", "test_matmul_3d", "test_matmul_4d",
    "test_concat_1d_axis_0", "test_concat_1d_axis_negative_1", "test_concat_2d_axis_0",
    "test_concat_2d_axis_1", "test_concat_2d_axis_negative_1", "test_concat_2d_axis_negative_2",
    "test_concat_3d_axis_0", "test_concat_3d_axis_1", "test_concat_3d_axis_2",
    "test_concat_3d_axis_negative_1", "test_concat_3d_axis_negative_2",
    "test_concat_3d_axis_negative_3",
    "test_split_equal_parts_1d", "test_split_equal_parts_2d", "test_split_equal_parts_default_axis",
    "test_split_variable_parts_1d", "test_split_variable_parts_2d",
    "test_split_variable_parts_default_axis",
    "test_slice", "test_slice_default_axes", "test_slice_default_steps",
    "test_slice_end_out_of_bounds", "test_slice_neg", "test_slice_neg_steps",
    "test_slice_negative_axes", "test_slice_start_out_of_bounds",
    "test_constant_pad",
    "test_resize_downsample_scales_cubic", "test_resize_downsample_scales_cubic_A_n0p5_exclude_outside",
    "test_resize_downsample_scales_cubic_align_corners", "test_resize_downsample_scales_linear",
    "test_resize_downsample_scales_linear_align_corners", "test_resize_downsample_scales_nearest",
    "test_resize_downsample_sizes_cubic", "test_resize_downsample_sizes_linear_pytorch_half_pixel",
    "test_resize_downsample_sizes_nearest", "test_resize_downsample_sizes_nearest_tf_half_pixel_for_nn",
    "test_resize_upsample_scales_cubic", "test_resize_upsample_scales_cubic_A_n0p5_exclude_outside",
    "test_resize_upsample_scales_cubic_align_corners", "test_resize_upsample_scales_cubic_asymmetric",
    "test_resize_upsample_scales_linear", "test_resize_upsample_scales_linear_align_corners",
    "test_resize_upsample_scales_nearest", "test_resize_upsample_sizes_cubic",
    "test_resize_upsample_sizes_nearest", "test_resize_upsample_sizes_nearest_ceil_half_pixel",
    "test_resize_upsample_sizes_nearest_floor_align_corners",
    "test_resize_upsample_sizes_nearest_round_prefer_ceil_asymmetric",
    "test_depthtospace_crd_mode", "test_depthtospace_crd_mode_example",
    "test_depthtospace_dcr_mode", "test_depthtospace_example",
    "test_softmax_axis_0", "test_softmax_axis_1", "test_softmax_axis_2",
    "test_softmax_default_axis", "test_softmax_example", "test_softmax_large_number",
    "test_softmax_negative_axis",
    "test_identity", "test_dropout_default", "test_dropout_default_old",
    "test_dropout_default_ratio",
};

static unsigned char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* A growable byte buffer for re-encoding the model. */
typedef struct buf {
    unsigned char *p;
    size_t         n, cap;
} buf;

static void put(buf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p   = realloc(b->p, b->cap);
        ck_assert(b->p != NULL);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void put_varint(buf *b, uint64_t v) {
    unsigned char t[10];
    size_t        k = 0;
    do {
        t[k] = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v) t[k] |= 0x80;
        k++;
    } while (v);
    put(b, t, k);
}

static void put_len(buf *b, uint32_t field, const void *p, size_t n) {
    put_varint(b, (uint64_t)field << 3 | 2);
    put_varint(b, n);
    put(b, p, n);
}

/* Copies the ModelProto, appending input_k.pb (k >= 1) to the graph as initializers named
 * after graph input k.  With first_output_only, graph outputs after the first are dropped
 * (LayerNormalization cases also list Mean/InvStdDev, which lkprobe does not produce).
 * Returns the number of graph inputs, or -1. */
static int rewrite(const unsigned char *m, size_t mlen, const char *dir, int first_output_only,
                   buf *out) {
    lk_pb       r = lk_pb_init(m, mlen, 0);
    lk_pb_field f;
    int         rc, n_in = -1;
    while ((rc = lk_pb_next(&r, &f, NULL)) > 0) {
        if (!(f.num == 7 && f.wt == LK_PB_LEN)) {
            put(out, m + f.off, (size_t)(r.p - (m + f.off)));
            continue;
        }
        buf         g = {0};
        lk_pb       gr = lk_pb_sub(&r, &f);
        lk_pb_field h;
        int         n_out = 0;
        n_in              = 0;
        while (lk_pb_next(&gr, &h, NULL) > 0) {
            /* Copy the field, except graph outputs beyond the first when asked. */
            if (!(h.num == 12 && first_output_only && n_out++ > 0))
                put(&g, m + h.off, (size_t)(gr.p - (m + h.off)));
            if (h.num != 11 || h.wt != LK_PB_LEN) continue;
            lk_pb       vi = lk_pb_sub(&gr, &h);
            lk_pb_field q;
            lk_pb_span  name = {NULL, 0};
            while (lk_pb_next(&vi, &q, NULL) > 0)
                if (q.num == 1 && q.wt == LK_PB_LEN) name = (lk_pb_span){q.data, q.len};
            if (n_in > 0) {
                char   path[1024];
                size_t tl;
                snprintf(path, sizeof path, "%s/test_data_set_0/input_%d.pb", dir, n_in);
                unsigned char *t = slurp(path, &tl);
                if (!t) return -1;
                buf tb = {0};
                put(&tb, t, tl);
                put_len(&tb, 8, name.p, name.n); /* the last name field wins */
                put_len(&g, 5, tb.p, tb.n);
                free(tb.p);
                free(t);
            }
            n_in++;
        }
        put_len(out, 7, g.p, g.n);
        free(g.p);
    }
    return rc < 0 ? -1 : n_in;
}

/* Runs one case; returns NULL on success or a static/err message. */
static const char *run_case(const char *name, lk_error *err) {
    static char msg[1024];
    char        dir[512], path[1024];
    size_t      len;
    snprintf(dir, sizeof dir, "%s/%s", NODE_DIR, name);
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    unsigned char *mb = slurp(path, &len);
    if (!mb) return "case directory missing";
    buf        nb  = {0};
    int        nin = rewrite(mb, len, dir, strstr(name, "layer_normalization") != NULL, &nb);
    lk_model  *m   = NULL;
    lk_exec   *x   = NULL;
    lk_tensor *in0 = NULL;
    const char *res = NULL;
    free(mb);
    if (nin < 1) {
        res = "cannot rewrite model";
        goto done;
    }
    lk_status s = lk_onnx_load_buffer(nb.p, nb.n, NULL, &m, err);
    if (s) {
        snprintf(msg, sizeof msg, "load: %s", err->msg);
        res = msg;
        goto done;
    }
    snprintf(path, sizeof path, "%s/test_data_set_0/input_0.pb", dir);
    unsigned char *tb = slurp(path, &len);
    if (!tb) {
        res = "input_0.pb missing";
        goto done;
    }
    s = lk_onnx_read_tensor_pb(tb, len, &in0, err);
    free(tb);
    if (s) {
        snprintf(msg, sizeof msg, "input_0.pb: %s", err->msg);
        res = msg;
        goto done;
    }
    lk_exec_opts o = lk_exec_opts_default();
    o.threads      = 1;
    s              = lk_exec_alloc(m, &o, 0, NULL, &x, err);
    if (!s) {
        const lk_tensor *ins[1] = {in0};
        s                       = lk_exec_forward_unchecked(x, ins, err);
    }
    if (s) {
        snprintf(msg, sizeof msg, "run: %s", err->msg);
        res = msg;
        goto done;
    }
    for (int64_t k = 0; k < lk_model_n_outputs(m); k++) {
        lk_tensor *want = NULL;
        snprintf(path, sizeof path, "%s/test_data_set_0/output_%d.pb", dir, (int)k);
        tb = slurp(path, &len);
        if (!tb) {
            res = "output pb missing";
            goto done;
        }
        s = lk_onnx_read_tensor_pb(tb, len, &want, err);
        free(tb);
        if (s) {
            snprintf(msg, sizeof msg, "output_%d.pb: %s", (int)k, err->msg);
            res = msg;
            goto done;
        }
        const lk_tensor *got = lk_exec_value(x, lk_model_output(m, k));
        int64_t          n   = lk_tensor_numel(want);
        int              same = got && got->ndim == want->ndim && lk_tensor_numel(got) == n;
        for (int d = 0; same && d < want->ndim; d++) same = got->shape[d] == want->shape[d];
        if (!same) {
            char a[96], b[96];
            snprintf(msg, sizeof msg, "output %d shape %s, expected %s", (int)k,
                     got ? lk_shape_str(got->ndim, got->shape, a, sizeof a) : "?",
                     lk_shape_str(want->ndim, want->shape, b, sizeof b));
            lk_tensor_free(want);
            res = msg;
            goto done;
        }
        double md = tu_max_abs_diff(got->data, want->data, n);
        double mx = tu_max_abs(want->data, n);
        lk_tensor_free(want);
        if (!(md <= 1e-4 * mx + 1e-5)) {
            snprintf(msg, sizeof msg, "output %d: max |diff| %g (max |y| %g)", (int)k, md, mx);
            res = msg;
            goto done;
        }
    }
done:
    lk_exec_free(x);
    lk_tensor_free(in0);
    lk_model_free(m);
    free(nb.p);
    return res;
}

START_TEST(test_node_cases) {
    int n = (int)(sizeof cases / sizeof cases[0]), pass = 0;
    for (int i = 0; i < n; i++) {
        lk_error    err;
        const char *why = run_case(cases[i], &err);
        if (why) fprintf(stderr, "FAIL %s: %s\n", cases[i], why);
        else pass++;
    }
    fprintf(stderr, "%d cases passed, %d failed (of %d)\n", pass, n - pass, n);
    ck_assert_int_eq(pass, n);
}
END_TEST

int main(void) {
    struct stat st;
    if (stat(NODE_DIR, &st) != 0) {
        printf("SKIP: %s not found (install Debian libonnx-testdata)\n", NODE_DIR);
        return 77;
    }
    Suite *s  = suite_create("onnx-node");
    TCase *tc = tcase_create("node");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_node_cases);
    suite_add_tcase(s, tc);
    return tu_run(s);
}

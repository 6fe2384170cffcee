/*
 * onnx-impl.h: structures shared by the ONNX loader (onnx.c) and its constant folder
 * (onnx-fold.c).  Private to loaders/.
 *
 * The loader parses the ModelProto into spans over the mmap (no copies), then walks the nodes
 * in file order.  Every ONNX value is either a small constant (lk_ct: initializers, Constant
 * outputs, folded shape arithmetic) or an lk value (graph input or node output).
 */
#ifndef LKPROBE_ONNX_IMPL_H
#define LKPROBE_ONNX_IMPL_H

#include "onnx-wire.h"
#include "lkprobe/lk_model.h"

/* Largest constant the folder will materialise (elements). */
#define LK_ONNX_FOLD_MAX ((int64_t)1 << 24)

/* Prints at most 200 bytes of a span: printf("%.*s", LK_SPAN_ARG(s)). */
#define LK_SPAN_ARG(s) (int)((s).n > 200 ? 200 : (s).n), (const char *)(s).p

/* A constant tensor: int64 (integers and bools) or float32 data, row-major. */
typedef struct lk_ct {
    int      isint;                /* 1: i valid; 0: f valid                              */
    int      ndim;
    int64_t  shape[LK_MAX_DIMS];
    int64_t  n;                    /* element count                                       */
    int64_t *i;
    float   *f;
    int      owned;                /* data allocated with lk_malloc/lk_aligned_alloc      */
} lk_ct;

typedef struct lk_onnx_attr {
    lk_pb_span name;
    int        type;               /* AttributeProto.type, inferred when absent           */
    float      f;
    int64_t    i;
    lk_pb_span s;
    lk_pb_span t;                  /* TensorProto sub-message                             */
    lk_pb_span msg;                /* whole AttributeProto (for repeated fields)          */
    int        has_f, has_i, has_s, has_t;
} lk_onnx_attr;

typedef struct lk_onnx_node {
    lk_pb_span    name, op_type, domain;
    int           n_in, n_out, n_attr;
    lk_pb_span   *in, *out;
    lk_onnx_attr *attr;
    size_t        off;             /* file offset of the NodeProto                        */
    char          label[96];       /* printable node name ("Conv_3" when unnamed)          */
} lk_onnx_node;

/* Normalises axis against ndim (negative counts from the end); -1 when out of range. */
static inline int lk_norm_axis_i(int64_t axis, int ndim) {
    if (axis < 0) axis += ndim;
    return axis >= 0 && axis < ndim ? (int)axis : -1;
}

/* ---- attribute access (onnx.c) ---------------------------------------------------------- */

const lk_onnx_attr *lk_onnx_attr_find(const lk_onnx_node *n, const char *name);
int64_t  lk_onnx_attr_i(const lk_onnx_node *n, const char *name, int64_t def);
float    lk_onnx_attr_f(const lk_onnx_node *n, const char *name, float def);
/* 1 when attribute name is a string equal to z, or when it is absent and def_eq. */
int      lk_onnx_attr_s_eq(const lk_onnx_node *n, const char *name, const char *z, int def_eq);
/* Reads an INTS (field 8) / FLOATS (field 7) attribute; *cnt = 0 when absent.  Fails when
 * more than cap entries are present. */
lk_status lk_onnx_attr_ints(const unsigned char *base, const lk_onnx_node *n, const char *name,
                            int64_t *out, size_t cap, size_t *cnt, lk_error *err);
lk_status lk_onnx_attr_floats(const unsigned char *base, const lk_onnx_node *n,
                              const char *name, float *out, size_t cap, size_t *cnt,
                              lk_error *err);

/* Decodes a TensorProto into a constant (converting FLOAT16/BFLOAT16/DOUBLE/ints; float32
 * raw_data is borrowed when 4-byte aligned and allow_borrow).  what names it in errors. */
lk_status lk_onnx_tensor_decode(const unsigned char *base, lk_pb_span msg, const char *what,
                                int allow_borrow, lk_ct *out, int *converted, lk_error *err);

/* Loads an ONNX model from memory (the bytes are copied), then folds BatchNorm (unless
 * opts->keep_bn) and finalises, as lk_model_load does.  Used by tests and the fuzz target. */
lk_status lk_onnx_load_buffer(const unsigned char *buf, size_t len, const lk_load_opts *opts,
                              lk_model **out, lk_error *err);

/* ---- constants (onnx-fold.c) ------------------------------------------------------------ */

/* Allocates data for a constant of the given shape and type (data uninitialised). */
lk_status lk_ct_alloc(lk_ct *c, int isint, int ndim, const int64_t *shape, lk_error *err);
void      lk_ct_free(lk_ct *c);
/* Element k as double / int64 (either representation). */
double    lk_ct_get_f(const lk_ct *c, int64_t k);
int64_t   lk_ct_get_i(const lk_ct *c, int64_t k);

/* 1 when op_type is evaluated on constants by lk_onnx_fold. */
int lk_onnx_foldable(lk_pb_span op_type);
/* Evaluates node n (all inputs constant; in[k] NULL for omitted inputs) into out[0..n_out).
 * Fails with LK_EUNSUPPORTED/LK_EFORMAT naming the node. */
lk_status lk_onnx_fold(const unsigned char *base, const lk_onnx_node *n, int64_t opset,
                       const lk_ct *const *in, lk_ct *out, lk_error *err);

#endif

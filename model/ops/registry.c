/* registry.c: the descriptor table generated from lk_ops.def, op names, attribute defaults
 * and helpers shared by op files. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "../op.h"

static const lk_op_def *const table[] = {
#define LK_OP(E, f) &lk_op_def_##E,
#include "lkprobe/lk_ops.def"
#undef LK_OP
};
_Static_assert(sizeof table / sizeof table[0] == LK_OP_COUNT, "one descriptor per op");

const lk_op_def *lk_op_get(lk_op op) {
    LK_ASSERT((unsigned)op < LK_OP_COUNT);
    return table[op];
}

const char *lk_op_name(lk_op op) { return (unsigned)op < LK_OP_COUNT ? table[op]->name : NULL; }

lk_op lk_op_from_name(const char *name) {
    for (int i = 0; i < LK_OP_COUNT; i++)
        if (strcmp(table[i]->name, name) == 0) return (lk_op)i;
    return LK_OP_COUNT;
}

lk_attrs lk_attrs_default(lk_op op) {
    lk_attrs a;
    memset(&a, 0, sizeof a);
    if ((unsigned)op < LK_OP_COUNT && table[op]->defaults) table[op]->defaults(&a);
    return a;
}

void lk_window_defaults(lk_attrs *a) {
    a->conv.nsp   = 2;
    a->conv.group = 1;
    for (int i = 0; i < 2; i++) {
        a->conv.kernel[i]   = 1;
        a->conv.stride[i]   = 1;
        a->conv.dilation[i] = 1;
    }
}

int64_t lk_scalar_axis(const lk_node *n) { return n->attrs.s.axis; }

lk_rf_kind lk_op_rf_kind(lk_op op) { return (unsigned)op < LK_OP_COUNT ? table[op]->rf : LK_RF_NONE; }

unsigned lk_op_roles(lk_op op) { return (unsigned)op < LK_OP_COUNT ? table[op]->roles : 0u; }

int lk_node_axis(const lk_node *n, int ndim, int *axis) {
    if (!n || (unsigned)n->op >= LK_OP_COUNT || !table[n->op]->axis) return 0;
    int a = lk_norm_axis(table[n->op]->axis(n), ndim);
    if (a < 0) return 0;
    *axis = a;
    return 1;
}

int lk_norm_axis(int64_t axis, int ndim) {
    if (axis < 0) axis += ndim;
    return axis >= 0 && axis < ndim ? (int)axis : -1;
}

lk_status lk_broadcast_shape(const lk_node *n, const lk_tensor *a, const lk_tensor *b,
                             lk_tensor *out, lk_error *err) {
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    int64_t sh[LK_MAX_DIMS];
    for (int i = 0; i < nd; i++) {
        int     ia = i - (nd - a->ndim), ib = i - (nd - b->ndim);
        int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
        if (da != db && da != 1 && db != 1) {
            char s1[96], s2[96];
            return LK_FAIL(err, LK_ESHAPE, "node '%s' (%s): shapes %s and %s do not broadcast",
                           n->name, lk_op_name(n->op), lk_shape_str(a->ndim, a->shape, s1, 96),
                           lk_shape_str(b->ndim, b->shape, s2, 96));
        }
        sh[i] = da == 1 ? db : da;
    }
    lk_tensor_set_shape(out, nd, sh);
    return LK_OK;
}

unsigned lk_bwd_reads_bilinear(const lk_node *n, unsigned want) {
    (void)n;
    return (want & 1u ? 2u : 0u) | (want & 2u ? 1u : 0u);
}

unsigned lk_bwd_reads_none(const lk_node *n, unsigned want) {
    (void)n, (void)want;
    return 0;
}

unsigned lk_interp_freeze_rest(const lk_op_ctx *ctx) {
    unsigned m = 0;
    for (int j = 1; j < ctx->n_in && j < 32; j++) m |= 1u << j;
    return m;
}

unsigned lk_interp_freeze_gate(const lk_op_ctx *ctx) {
    /* Operands carrying batch 1: tangents in forward passes, gradients in transposed ones. */
    const int a = ctx->tin ? ctx->tin[0] != NULL : ctx->gin && ctx->gin[0] != NULL;
    const int b = ctx->tin ? ctx->tin[1] != NULL : ctx->gin && ctx->gin[1] != NULL;
    if (!a || !b) return 0;
    return lk_tensor_numel(ctx->in[0]) < lk_tensor_numel(ctx->in[1]) ? 1u : 2u;
}

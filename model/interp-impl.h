/*
 * interp-impl.h: the hooks between the executor and the LinearScope driver (model/interp.c).
 * Private to model/.
 */
#ifndef LKPROBE_INTERP_IMPL_H
#define LKPROBE_INTERP_IMPL_H

#include "lkprobe/lk_exec.h"
#include "lkprobe/lk_interp.h"
#include "op.h"

/* With ip set, lk_exec_jvp runs batch 1 (each node's rule) and lk_exec_backward its transpose
 * instead of the Jacobian and its adjoint.  NULL restores them.  The rules read every forward
 * value: x must be planned with tangents (o.jvp), so that no value shares its buffer. */
void lk_exec_set_interp(lk_exec *x, lk_interp *ip);
/* One node of an interpreter pass (transpose = 1: the reverse pass); c is filled by the exec. */
void lk_interp_node(lk_interp *ip, const lk_op_def *d, lk_op_ctx *c, int transpose);
/* The rule of op d on one node (what lk_interp_node runs; tests call it per op): ic says
 * the pass (bias, smooth mode, eps) and collects guarded entries; ones holds 1.0f and coef is
 * scratch, both with at least as many floats as output 0. */
void lk_interp_rule(lk_interp_ctx *ic, const float *ones, float *coef, const lk_op_def *d,
                    lk_op_ctx *c, int transpose);

#endif

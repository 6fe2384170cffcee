/* cam_part.c: a pass's rows as a byte blob and back (lk_cam_export / lk_cam_import), so that
 * the processes of a distributed run can each compute a share of the images and one of them
 * can show them all.  The blob is a header (what the rows must fit) then one record per
 * image, every field written with memcpy in the host's byte order. */
#include <math.h>
#include <string.h>

#include "cam-impl.h"
#include "util/lk_util.h"

#define PART_MAGIC "LKCAMPT1"

static void put(lk_sb *b, const void *p, size_t n) { lk_sb_put(b, p, n); }
static void put_i(lk_sb *b, int64_t v) { put(b, &v, sizeof v); }
static void put_d(lk_sb *b, double v) { put(b, &v, sizeof v); }

/* A reader over the blob: a short blob sets bad and reads zeros. */
typedef struct part_rd {
    const unsigned char *p;
    size_t               n, at;
    int                  bad;
} part_rd;

static void get(part_rd *r, void *out, size_t n) {
    if (r->bad || n > r->n - r->at) {
        r->bad = 1;
        memset(out, 0, n);
        return;
    }
    memcpy(out, r->p + r->at, n);
    r->at += n;
}
static int64_t get_i(part_rd *r) {
    int64_t v;
    get(r, &v, sizeof v);
    return v;
}
static double get_d(part_rd *r) {
    double v;
    get(r, &v, sizeof v);
    return v;
}

static int n_maps(const lk_cam *c, int j) {
    return lk_cam_method_get(c->methods[j])->layer_res ? c->n_layers : 1;
}

/* The fields of one faithfulness record (the curves stay behind). */
static void put_frec(lk_sb *b, const lk_faith_image *q) {
    put_i(b, q->cls);
    put_d(b, q->score);
    put_i(b, q->n_steps);
    put_d(b, q->deletion);
    put_d(b, q->insertion);
    put_i(b, q->n_pct);
    put(b, q->morf, sizeof q->morf);
    put(b, q->lerf, sizeof q->lerf);
    put_d(b, q->morf_avg);
    put_d(b, q->lerf_avg);
    put_d(b, q->road);
    put_i(b, q->road_iters);
    put_d(b, q->drop);
    put_d(b, q->increase);
    put_d(b, q->abs_drop);
    put_d(b, q->explanation_score);
    put_i(b, q->pointing);
    put(b, q->point, sizeof q->point);
}

static void get_frec(part_rd *r, lk_faith_image *q) {
    memset(q, 0, sizeof *q);
    q->cls      = get_i(r);
    q->score    = get_d(r);
    q->n_steps  = get_i(r);
    q->deletion = get_d(r);
    q->insertion = get_d(r);
    q->n_pct    = (int)get_i(r);
    get(r, q->morf, sizeof q->morf);
    get(r, q->lerf, sizeof q->lerf);
    q->morf_avg   = get_d(r);
    q->lerf_avg   = get_d(r);
    q->road       = get_d(r);
    q->road_iters = get_i(r);
    q->drop       = get_d(r);
    q->increase   = get_d(r);
    q->abs_drop   = get_d(r);
    q->explanation_score = get_d(r);
    q->pointing   = (int)get_i(r);
    get(r, q->point, sizeof q->point);
}

/* What the rows must fit: methods, layers and their sizes, the input size. */
static void put_header(lk_sb *b, const lk_cam *c) {
    const lk_cam_result *r = &c->r;
    put(b, PART_MAGIC, 8);
    put_i(b, r->n_methods);
    put_i(b, c->n_layers);
    put_i(b, c->C);
    put_i(b, c->H);
    put_i(b, c->W);
    for (int j = 0; j < r->n_methods; j++) put_i(b, c->methods[j]);
    for (int l = 0; l < c->n_layers; l++) {
        put_i(b, c->lh[l]);
        put_i(b, c->lw[l]);
    }
}

static lk_status check_header(part_rd *rd, const lk_cam *c, lk_error *err) {
    char    magic[8];
    int64_t v[5];
    get(rd, magic, 8);
    for (int k = 0; k < 5; k++) v[k] = get_i(rd);
    if (rd->bad || memcmp(magic, PART_MAGIC, 8))
        return LK_FAIL(err, LK_EFORMAT, "cam: the partial result is not a cam blob (bad header)");
    if (v[0] != c->r.n_methods || v[1] != c->n_layers || v[2] != c->C || v[3] != c->H ||
        v[4] != c->W)
        return LK_FAIL(err, LK_EFORMAT, "cam: the partial result has %lld methods, %lld layers, "
                       "input %lldx%lldx%lld; this pass %d, %d, %lldx%lldx%lld", (long long)v[0],
                       (long long)v[1], (long long)v[2], (long long)v[3], (long long)v[4],
                       c->r.n_methods, c->n_layers, (long long)c->C, (long long)c->H,
                       (long long)c->W);
    for (int j = 0; j < c->r.n_methods; j++)
        if (get_i(rd) != c->methods[j])
            return LK_FAIL(err, LK_EFORMAT, "cam: the partial result's method %d is not %s", j,
                           lk_cam_method_get(c->methods[j])->name);
    for (int l = 0; l < c->n_layers; l++) {
        int64_t h = get_i(rd), w = get_i(rd);
        if (h != c->lh[l] || w != c->lw[l])
            return LK_FAIL(err, LK_EFORMAT, "cam: the partial result's layer %d is %lldx%lld, "
                           "this pass's %lldx%lld", l, (long long)h, (long long)w,
                           (long long)c->lh[l], (long long)c->lw[l]);
    }
    return rd->bad ? LK_FAIL(err, LK_EFORMAT, "cam: the partial result is truncated") : LK_OK;
}

/* Image i's row: class, readouts, name, then per method the maps, flags, scores, record. */
static void put_image(lk_sb *b, const lk_cam *c, int64_t i) {
    const lk_cam_result *r = &c->r;
    int64_t              HW = c->H * c->W;
    put_i(b, r->cls[i]);
    put_d(b, r->logit[i]);
    put_d(b, r->prob[i]);
    put_d(b, r->image_seconds[i]);
    int64_t k = r->names[i] ? (int64_t)strlen(r->names[i]) : -1;
    put_i(b, k);
    if (k > 0) put(b, r->names[i], (size_t)k);
    for (int j = 0; j < r->n_methods; j++) {
        for (int l = 0; l < n_maps(c, j); l++) {
            const cam_store *s = &c->raw[j][l];
            put(b, s->p + i * s->h * s->w, sizeof(float) * (size_t)(s->h * s->w));
        }
        put(b, c->fin[j].p + i * HW, sizeof(float) * (size_t)HW);
        put_i(b, c->zero[j][i]);
        put_d(b, c->delta[j][i]);
        put_d(b, c->gap[j][i]);
        for (int s = 0; s < r->n_scores; s++)
            put_d(b, r->scores[j][s] ? r->scores[j][s][i] : NAN);
        if (c->n_frec == r->n_images) put_frec(b, &c->frec[j][i]);
    }
}

lk_status lk_cam_export(const lk_cam *c, void **out, size_t *len, lk_error *err) {
    const lk_cam_result *r = &c->r;
    lk_sb                b = {0};
    *out                   = NULL;
    *len                   = 0;
    put_header(&b, c);
    put_i(&b, r->first);
    put_i(&b, r->n_images);
    put_i(&b, c->n_frec == r->n_images && r->n_images > 0);
    put_d(&b, r->forward_seconds);
    put_i(&b, r->ablation_small_y);
    put(&b, r->ablation_value, sizeof r->ablation_value);
    for (int j = 0; j < r->n_methods; j++) put_d(&b, r->maps[j].seconds);
    put_i(&b, r->n_scores);
    for (int s = 0; s < r->n_scores; s++) {
        put(&b, r->score_names[s], sizeof r->score_names[s]);
        for (int j = 0; j < r->n_methods; j++) put_i(&b, r->scores[j][s] != NULL);
    }
    for (int64_t i = 0; i < r->n_images; i++) put_image(&b, c, i);
    if (b.oom) {
        lk_sb_free(&b);
        return LK_FAIL(err, LK_ENOMEM, "cam: out of memory for the partial result");
    }
    *out = b.p;
    *len = b.n;
    return LK_OK;
}

/* The blob's score names and which methods have them. */
typedef struct part_scores {
    int64_t n;
    char    names[LK_CAM_MAX_SCORES][32];
    int64_t has[LK_CAM_MAX_SCORES][LK_CAM_METHOD_COUNT];
} part_scores;

/* Appends the blob's image (row n of this pass). */
static lk_status get_image(part_rd *rd, lk_cam *c, const part_scores *ps, int frec,
                           lk_error *err) {
    lk_cam_result *r  = &c->r;
    int64_t        n  = r->n_images, HW = c->H * c->W;
    lk_status      st = cam_grow_images(c, err);
    if (!st && frec) st = cam_frec_grow(c, n + 1, err);
    for (int j = 0; !st && j < r->n_methods; j++) {
        st = cam_store_grow(&c->fin[j], n + 1, c->H, c->W, err);
        for (int l = 0; !st && l < n_maps(c, j); l++) {
            int64_t h = lk_cam_method_get(c->methods[j])->layer_res ? c->lh[l] : c->H;
            int64_t w = lk_cam_method_get(c->methods[j])->layer_res ? c->lw[l] : c->W;
            st        = cam_store_grow(&c->raw[j][l], n + 1, h, w, err);
        }
    }
    if (st) return st;
    r->cls[n]           = get_i(rd);
    r->logit[n]         = get_d(rd);
    r->prob[n]          = get_d(rd);
    r->image_seconds[n] = get_d(rd);
    int64_t k           = get_i(rd);
    r->names[n]         = NULL;
    if (k >= 0 && !rd->bad) {
        if ((size_t)k > rd->n - rd->at) return LK_FAIL(err, LK_EFORMAT, "cam: truncated name");
        if (!(r->names[n] = lk_malloc((size_t)k + 1)))
            return LK_FAIL(err, LK_ENOMEM, "cam: out of memory");
        get(rd, r->names[n], (size_t)k);
        r->names[n][k] = 0;
    }
    r->n_images = n + 1; /* from here a failure below drops the row again */
    for (int j = 0; !st && j < r->n_methods; j++) {
        for (int l = 0; l < n_maps(c, j); l++) {
            cam_store *s = &c->raw[j][l];
            get(rd, s->p + n * s->h * s->w, sizeof(float) * (size_t)(s->h * s->w));
        }
        get(rd, c->fin[j].p + n * HW, sizeof(float) * (size_t)HW);
        c->zero[j][n]  = get_i(rd);
        c->delta[j][n] = get_d(rd);
        c->gap[j][n]   = get_d(rd);
        for (int s = 0; !st && s < ps->n; s++) {
            double v = get_d(rd);
            if (ps->has[s][j]) st = lk_cam_set_score(c, j, n, ps->names[s], v, err);
        }
        if (frec) get_frec(rd, &c->frec[j][n]);
    }
    if (!st && rd->bad) st = LK_FAIL(err, LK_EFORMAT, "cam: the partial result is truncated");
    if (st) {
        lk_free(r->names[n]);
        r->names[n] = NULL;
        r->n_images = n;
    }
    return st;
}

lk_status lk_cam_import(lk_cam *c, const void *blob, size_t len, lk_error *err) {
    part_rd        rd = {blob, len, 0, 0};
    lk_cam_result *r  = &c->r;
    part_scores    ps;
    lk_status      st = check_header(&rd, c, err);
    if (st) return st;
    int64_t first = get_i(&rd), n = get_i(&rd), frec = get_i(&rd);
    if (n == 0) return LK_OK;
    if (rd.bad || n < 0)
        return LK_FAIL(err, LK_EFORMAT, "cam: the partial result is truncated");
    if (r->n_images > 0 && first != r->first + r->n_images)
        return LK_FAIL(err, LK_EFORMAT, "cam: the partial result starts at input %lld, but this "
                       "pass's rows end before input %lld", (long long)first,
                       (long long)(r->first + r->n_images));
    if (frec != (c->n_frec == r->n_images))
        return LK_FAIL(err, LK_EFORMAT, "cam: the partial result %s faithfulness records, this "
                       "pass %s", frec ? "has" : "has no", frec ? "has none" : "has them");
    double  fwd = get_d(&rd), sec[LK_CAM_METHOD_COUNT], abl[LK_CAM_MAX_LAYERS];
    int64_t small = get_i(&rd);
    get(&rd, abl, sizeof abl);
    for (int j = 0; j < r->n_methods; j++) sec[j] = get_d(&rd);
    ps.n = get_i(&rd);
    if (rd.bad || ps.n < 0 || ps.n > LK_CAM_MAX_SCORES)
        return LK_FAIL(err, LK_EFORMAT, "cam: the partial result has a bad score count");
    for (int s = 0; s < ps.n; s++) {
        get(&rd, ps.names[s], sizeof ps.names[s]);
        ps.names[s][sizeof ps.names[s] - 1] = 0;
        for (int j = 0; j < r->n_methods; j++) ps.has[s][j] = get_i(&rd);
    }
    int64_t n0 = r->n_images, f0 = c->n_frec;
    if (n0 == 0) r->first = first;
    for (int64_t i = 0; !st && i < n; i++) st = get_image(&rd, c, &ps, (int)frec, err);
    if (st) { /* keep the former rows only */
        for (int64_t i = n0; i < r->n_images; i++) lk_free(r->names[i]);
        r->n_images = n0;
        return st;
    }
    if (frec) c->n_frec = f0 + n;
    r->forward_seconds += fwd;
    r->ablation_small_y += small;
    memcpy(r->ablation_value, abl, sizeof abl);
    for (int j = 0; j < r->n_methods; j++) r->maps[j].seconds += sec[j];
    return LK_OK;
}

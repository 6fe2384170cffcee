/* test_spectra.c: WeightWatcher-style spectra (filterdb.md §7) against the NumPy oracle
 * (tests/fixtures/gen_filters.py): every conv/dense layer of the zoo and a heavy-tailed matrix. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loaders/json-impl.h"
#include "lkprobe/lk_spectra.h"
#include "testutil.h"

#define TOL 1e-6

static int close_to(double a, double b) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    return fabs(a - b) <= TOL * (fabs(b) > 1 ? fabs(b) : 1);
}

static double jnum(const lk_json *o, const char *k) {
    const lk_json *v = lk_json_get(o, k);
    return v && v->type == LK_JSON_NUM ? v->num : NAN;
}

static lk_json_doc *read_expected(void) {
    char  p[1024];
    FILE *f = fopen(tu_src_path("tests/fixtures/filters/expected.json", p, sizeof p), "rb");
    ck_assert_msg(f != NULL, "missing %s (run tests/fixtures/gen_filters.py)", p);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n);
    ck_assert(fread(buf, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    lk_json_doc   *d   = NULL;
    lk_json_limits lim = lk_json_limits_default();
    lk_error       err;
    ck_assert_msg(lk_json_parse(buf, (size_t)n, &lim, &d, &err) == LK_OK, "%s", err.msg);
    free(buf);
    return d;
}

static void check(const char *what, const lk_spectra_layer *L, const lk_json *e) {
    const char *st = lk_json_str(lk_json_get(e, "status"));
    ck_assert_msg(L->num_evals == (int64_t)jnum(e, "num_evals") && L->N == (int64_t)jnum(e, "N") &&
                      L->M == (int64_t)jnum(e, "M"),
                  "%s %s: shape", what, L->name);
    ck_assert_msg((L->status == LK_SPECTRA_OK) == (strcmp(st, "ok") == 0), "%s %s: status %s vs %s",
                  what, L->name, lk_spectra_status_text(L->status), st);
    if (L->status != LK_SPECTRA_OK) return;
    static const char *keys[] = {"alpha", "xmin", "D", "sigma", "norm", "log_norm", "spectral_norm",
                                 "log_spectral_norm", "alpha_weighted", "log_alpha_norm",
                                 "stable_rank", "entropy"};
    double got[] = {L->alpha, L->xmin, L->D, L->sigma, L->norm, L->log_norm, L->spectral_norm,
                    L->log_spectral_norm, L->alpha_weighted, L->log_alpha_norm, L->stable_rank,
                    L->entropy};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        ck_assert_msg(close_to(got[k], jnum(e, keys[k])), "%s %s %s: %.12g vs %.12g", what, L->name,
                      keys[k], got[k], jnum(e, keys[k]));
    ck_assert_msg(L->num_pl_spikes == (int64_t)jnum(e, "num_pl_spikes") &&
                      L->matrix_rank == (int64_t)jnum(e, "matrix_rank") &&
                      L->rank_loss == (int64_t)jnum(e, "rank_loss") &&
                      L->weak_rank_loss == (int64_t)jnum(e, "weak_rank_loss"),
                  "%s %s: counts", what, L->name);
}

START_TEST(zoo_oracle) {
    lk_json_doc   *doc = read_expected();
    const lk_json *sp  = lk_json_get(lk_json_root(doc), "spectra");
    lk_error       err;
    for (size_t i = 0; i < sp->n; i++) {
        const lk_json *E = &sp->items[i];
        char           rel[512], p[1024];
        snprintf(rel, sizeof rel, "tests/fixtures/zoo/%s", E->key);
        lk_load_opts o;
        memset(&o, 0, sizeof o);
        o.keep_bn     = 1;
        lk_model *m   = NULL;
        ck_assert_msg(lk_model_load(tu_src_path(rel, p, sizeof p), &o, &m, &err) == LK_OK, "%s", err.msg);
        lk_spectra *s = NULL;
        ck_assert(lk_spectra_alloc(NULL, &s, &err) == LK_OK);
        ck_assert_msg(lk_spectra_add_model(s, m, &err) == LK_OK, "%s", err.msg);
        ck_assert_msg(lk_spectra_n_layers(s) == (int64_t)E->n, "%s: %lld layers vs %zu", E->key,
                      (long long)lk_spectra_n_layers(s), E->n);
        for (size_t j = 0; j < E->n; j++) check(E->key, lk_spectra_get_layer(s, (int64_t)j), &E->items[j]);
        lk_spectra_free(s);
        lk_model_free(m);
    }
    /* Heavy-tailed dense matrix. */
    char       p[1024];
    lk_tensor *w = tu_read_npy(tu_src_path("tests/fixtures/filters/heavy.npy", p, sizeof p));
    ck_assert(w != NULL);
    lk_spectra *s = NULL;
    ck_assert(lk_spectra_alloc(NULL, &s, &err) == LK_OK);
    ck_assert(lk_spectra_add_weight(s, "heavy", w, &err) == LK_OK);
    check("heavy", lk_spectra_get_layer(s, 0), lk_json_get(lk_json_root(doc), "spectra_heavy"));
    /* The D(xmin) curve's minimum is the reported D. */
    const lk_spectra_layer *L = lk_spectra_get_layer(s, 0);
    double                  mn = INFINITY;
    for (int64_t i = 0; i < L->n_curve; i++) mn = L->curve_D[i] < mn ? L->curve_D[i] : mn;
    ck_assert(mn == L->D);
    lk_spectra_free(s);
    lk_tensor_free(w);
    lk_json_free(doc);
}
END_TEST

/* A pure power law x_i = (1 - u_i)^(-1/(a-1)) gives alpha close to a. */
START_TEST(powerlaw_recovery) {
    int64_t n  = 4000;
    double *ev = malloc(sizeof *ev * (size_t)n);
    for (int64_t i = 0; i < n; i++) {
        double u = ((double)i + 0.5) / (double)n;
        ev[i]    = pow(1.0 - u, -1.0 / 2.5);
    }
    lk_spectra_params p = lk_spectra_params_default();
    lk_powerlaw       r;
    lk_error          err;
    ck_assert(lk_spectra_fit(ev, n, &p, &r, NULL, NULL, NULL, &err) == LK_OK);
    ck_assert_msg(fabs(r.alpha - 3.5) < 0.1, "alpha %g", r.alpha);
    ck_assert(lk_spectra_fit(ev, 1, &p, &r, NULL, NULL, NULL, &err) == LK_EINVAL);
    free(ev);
}
END_TEST

int main(void) {
    Suite *s  = suite_create("spectra");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, zoo_oracle);
    tcase_add_test(tc, powerlaw_recovery);
    suite_add_tcase(s, tc);
    return tu_run(s);
}

/* inputs.c: the one source of input tensors (lk_inputs.h). */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lkprobe/lk_inputs.h"
#include "lkprobe/lk_io.h"
#include "util/lk_util.h"

struct lk_inputs {
    lk_inputs_params p;
    lk_inputs_kind   kind;
    char           **names;   /* image paths in iteration order (owned) */
    size_t           n_names, cap_names;
    lk_tensor       *batch;   /* npy */
    int64_t          count, next;
};

lk_inputs_params lk_inputs_params_default(void) {
    lk_inputs_params p;
    memset(&p, 0, sizeof p);
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    memcpy(p.mean, mean, sizeof mean);
    memcpy(p.std, std, sizeof std);
    p.resample = LK_RESAMPLE_BICUBIC;
    return p;
}

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z          = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z          = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *s) {
    return ((double)(splitmix(s) >> 11) + 0.5) / 9007199254740992.0;
}

void lk_inputs_noise_fill(float *p, int64_t n, uint64_t seed, int64_t index) {
    uint64_t s = seed * 0x100000001B3ull + (uint64_t)index * 0x9E3779B97F4A7C15ull + 1;
    for (int64_t i = 0; i < n; i += 2) {
        double u1 = uniform01(&s), u2 = uniform01(&s), r = sqrt(-2.0 * log(u1));
        p[i] = (float)(r * cos(2 * M_PI * u2));
        if (i + 1 < n) p[i + 1] = (float)(r * sin(2 * M_PI * u2));
    }
}

int lk_inputs_is_image_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    unsigned char b[8] = {0};
    size_t        n    = fread(b, 1, 8, f);
    fclose(f);
    return (n == 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0) ||
           (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF);
}

static int has_image_ext(const char *name) {
    const char *d = strrchr(name, '.');
    return d && (!strcasecmp(d, ".png") || !strcasecmp(d, ".jpg") || !strcasecmp(d, ".jpeg"));
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static lk_status add_name(lk_inputs *in, const char *a, const char *b, lk_error *err) {
    lk_sb s = {0};
    lk_sb_str(&s, a);
    if (b) {
        lk_sb_char(&s, '/');
        lk_sb_str(&s, b);
    }
    if (s.oom || !LK_GROW(in->names, in->cap_names, in->n_names + 1)) {
        lk_sb_free(&s);
        return LK_FAIL(err, LK_ENOMEM, "inputs: out of memory for the image list");
    }
    in->names[in->n_names++] = s.p;
    return LK_OK;
}

/* Appends dir's PNG/JPEG files in sorted name order. */
static lk_status scan_dir(lk_inputs *in, const char *dir, lk_error *err) {
    DIR *d = opendir(dir);
    if (!d) return LK_FAIL(err, LK_EIO, "%s: cannot open image directory: %s", dir, strerror(errno));
    size_t         first = in->n_names;
    lk_status      st    = LK_OK;
    struct dirent *e;
    while (st == LK_OK && (e = readdir(d)))
        if (e->d_name[0] != '.' && has_image_ext(e->d_name)) st = add_name(in, dir, e->d_name, err);
    closedir(d);
    if (st != LK_OK) return st;
    if (in->n_names == first)
        return LK_FAIL(err, LK_ENOTFOUND, "%s: no .png/.jpg/.jpeg images in the directory", dir);
    qsort(in->names + first, in->n_names - first, sizeof *in->names, cmp_str);
    return LK_OK;
}

static void shuffle(lk_inputs *in) {
    uint64_t s = in->p.seed + 0x5EEDull;
    for (int64_t i = (int64_t)in->n_names - 1; i > 0; i--) {
        int64_t j   = (int64_t)(splitmix(&s) % (uint64_t)(i + 1));
        char   *t   = in->names[i];
        in->names[i] = in->names[j];
        in->names[j] = t;
    }
}

static lk_status open_files(lk_inputs *in, lk_error *err) {
    lk_status st = LK_OK;
    for (int64_t i = 0; st == LK_OK && i < in->p.n_files; i++)
        st = add_name(in, in->p.files[i], NULL, err);
    if (st == LK_OK && in->p.dir) st = scan_dir(in, in->p.dir, err);
    if (st == LK_OK && in->p.shuffle) shuffle(in);
    in->count = (int64_t)in->n_names;
    return st;
}

static lk_status open_npy(lk_inputs *in, lk_error *err) {
    lk_status st = lk_npy_read(in->p.npy, &in->batch, err);
    if (st != LK_OK) return st;
    if (in->batch->ndim != 4) {
        char b[96];
        return LK_FAIL(err, LK_ESHAPE, "%s: inputs must be (N, C, H, W); the array has shape %s",
                       in->p.npy, lk_shape_str(in->batch->ndim, in->batch->shape, b, sizeof b));
    }
    in->count = in->batch->shape[0];
    return LK_OK;
}

lk_status lk_inputs_alloc(const lk_inputs_params *p, lk_inputs **out, lk_error *err) {
    *out = NULL;
    int sources = (p->n_files > 0 || p->dir) + (p->npy != NULL) + (p->noise > 0);
    if (sources != 1)
        return LK_FAIL(err, LK_EINVAL, sources ? "inputs: give images, an .npy batch or noise, "
                       "not several" : "inputs: no inputs: give image files, a directory, an "
                       ".npy batch or a noise count");
    lk_inputs *in = lk_calloc(1, sizeof *in);
    if (!in) return LK_FAIL(err, LK_ENOMEM, "inputs: out of memory");
    in->p        = *p;
    lk_status st = LK_OK;
    if (p->npy) {
        in->kind = LK_INPUTS_NPY;
        st       = open_npy(in, err);
    } else if (p->noise > 0) {
        in->kind  = LK_INPUTS_NOISE;
        in->count = p->noise;
    } else {
        in->kind = LK_INPUTS_FILES;
        st       = open_files(in, err);
    }
    if (st != LK_OK) {
        lk_inputs_free(in);
        return st;
    }
    *out = in;
    return LK_OK;
}

void lk_inputs_free(lk_inputs *in) {
    if (!in) return;
    for (size_t i = 0; i < in->n_names; i++) lk_free(in->names[i]);
    lk_free(in->names);
    lk_tensor_free(in->batch);
    lk_free(in);
}

lk_inputs_kind          lk_inputs_get_kind(const lk_inputs *in) { return in->kind; }
int64_t                 lk_inputs_count(const lk_inputs *in) { return in->count; }
const lk_tensor        *lk_inputs_batch(const lk_inputs *in) { return in->batch; }
const lk_inputs_params *lk_inputs_params_of(const lk_inputs *in) { return &in->p; }

const char *lk_inputs_name(const lk_inputs *in, int64_t i) {
    return in->kind == LK_INPUTS_FILES && i >= 0 && i < in->count ? in->names[i] : NULL;
}

static lk_status get_image(lk_inputs *in, int64_t i, lk_tensor *x, lk_error *err) {
    if (x->shape[1] != 3)
        return LK_FAIL(err, LK_ESHAPE, "%s: images are RGB (3 channels) but the model expects "
                       "%lld; give a preprocessed .npy batch or noise", in->names[i],
                       (long long)x->shape[1]);
    lk_preprocess pp = lk_preprocess_imagenet(x->shape[3], x->shape[2]);
    pp.resample      = in->p.resample;
    memcpy(pp.mean, in->p.mean, sizeof pp.mean);
    memcpy(pp.std, in->p.std, sizeof pp.std);
    lk_image  *im = NULL;
    lk_tensor *t  = NULL;
    lk_status  st = lk_image_read(in->names[i], &im, err);
    if (st == LK_OK) st = lk_image_to_tensor(im, &pp, &t, err);
    if (st == LK_OK) memcpy(x->data, t->data, sizeof(float) * (size_t)lk_tensor_numel(x));
    lk_tensor_free(t);
    lk_image_free(im);
    return st;
}

lk_status lk_inputs_get(lk_inputs *in, int64_t i, lk_tensor *x, lk_error *err) {
    if (x->ndim != 4 || x->shape[0] != 1 || x->dtype != LK_F32)
        return LK_FAIL(err, LK_ESHAPE, "inputs: the input tensor must be (1, C, H, W) float32");
    if (i < 0 || i >= in->count)
        return LK_FAIL(err, LK_EINVAL, "inputs: index %lld out of range (%lld inputs)",
                       (long long)i, (long long)in->count);
    int64_t per = lk_tensor_numel(x);
    switch (in->kind) {
    case LK_INPUTS_NOISE: lk_inputs_noise_fill(x->data, per, in->p.seed, i); return LK_OK;
    case LK_INPUTS_NPY: {
        const int64_t *b = in->batch->shape;
        if (b[1] != x->shape[1] || b[2] != x->shape[2] || b[3] != x->shape[3])
            return LK_FAIL(err, LK_ESHAPE, "%s: inputs are (%lld, %lld, %lld) per row; the "
                           "analysis needs (%lld, %lld, %lld)", in->p.npy, (long long)b[1],
                           (long long)b[2], (long long)b[3], (long long)x->shape[1],
                           (long long)x->shape[2], (long long)x->shape[3]);
        memcpy(x->data, (const float *)in->batch->data + i * per, sizeof(float) * (size_t)per);
        return LK_OK;
    }
    default: return get_image(in, i, x, err);
    }
}

lk_status lk_inputs_next(lk_inputs *in, lk_tensor *x, int *more, lk_error *err) {
    *more = in->next < in->count;
    if (!*more) return LK_OK;
    lk_status st = lk_inputs_get(in, in->next, x, err);
    in->next++;
    return st;
}

void lk_inputs_rewind(lk_inputs *in) { in->next = 0; }

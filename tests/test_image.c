/* test_image.c: PNG/JPEG decoding and PIL-exact resampling + ToTensor/Normalize
 * (references made by tests/data/images/gen_images.py with PIL 9.4). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lkprobe/lk_image.h"
#include "testutil.h"

static void img_path(const char *name, char *buf, size_t n) {
    char rel[256];
    snprintf(rel, sizeof rel, "tests/data/images/%s", name);
    tu_src_path(rel, buf, n);
}

static void expect_equal_npy(const lk_image *im, const char *npy) {
    char p[512];
    img_path(npy, p, sizeof p);
    lk_tensor *ref = tu_read_npy(p);
    ck_assert_msg(ref != NULL, "cannot read %s", p);
    ck_assert_int_eq(ref->shape[0], im->height);
    ck_assert_int_eq(ref->shape[1], im->width);
    const float *r   = ref->data;
    int64_t      bad = 0, n = im->width * im->height * 3;
    for (int64_t i = 0; i < n; i++)
        if ((float)im->rgb[i] != r[i]) {
            if (bad < 5)
                fprintf(stderr, "%s: element %lld: got %d, PIL %g\n", npy, (long long)i,
                        im->rgb[i], r[i]);
            bad++;
        }
    lk_tensor_free(ref);
    ck_assert_msg(bad == 0, "%s: %lld of %lld bytes differ from PIL", npy, (long long)bad,
                  (long long)n);
}

static const char *inputs[] = {"rgb.png", "gray.png", "palette.png", "rgba.png", "photo.jpg",
                               "gray.jpg"};

START_TEST(decode_matches_pil) {
    char      p[512], ref[256];
    lk_image *im = NULL;
    lk_error  err;
    img_path(inputs[_i], p, sizeof p);
    ck_assert_msg(lk_image_read(p, &im, &err) == LK_OK, "%s", err.msg);
    snprintf(ref, sizeof ref, "%s.decoded.npy", inputs[_i]);
    expect_equal_npy(im, ref);
    lk_image *rs = NULL;
    ck_assert_int_eq(lk_image_resize(im, 40, 30, LK_RESAMPLE_BICUBIC, &rs, &err), LK_OK);
    snprintf(ref, sizeof ref, "%s.40x30.bicubic.npy", inputs[_i]);
    expect_equal_npy(rs, ref);
    lk_image_free(rs);
    lk_image_free(im);
}
END_TEST

START_TEST(resize_filters_match_pil) {
    static const int         sizes[3][2] = {{40, 30}, {120, 90}, {97, 50}};
    static const char *const fn[3]       = {"nearest", "bilinear", "bicubic"};
    char                     p[512], ref[256];
    lk_image                *im = NULL;
    img_path("rgb.png", p, sizeof p);
    ck_assert_int_eq(lk_image_read(p, &im, NULL), LK_OK);
    for (int s = 0; s < 3; s++)
        for (int f = 0; f < 3; f++) {
            lk_image *rs = NULL;
            ck_assert_int_eq(lk_image_resize(im, sizes[s][0], sizes[s][1], (lk_resample)f, &rs, NULL),
                             LK_OK);
            snprintf(ref, sizeof ref, "rgb.png.%dx%d.%s.npy", sizes[s][0], sizes[s][1], fn[f]);
            expect_equal_npy(rs, ref);
            lk_image_free(rs);
        }
    lk_image_free(im);
}
END_TEST

START_TEST(to_tensor_matches_torchvision) {
    char      p[512];
    lk_image *im = NULL;
    img_path("rgb.png", p, sizeof p);
    ck_assert_int_eq(lk_image_read(p, &im, NULL), LK_OK);
    lk_preprocess pp = lk_preprocess_imagenet(40, 30);
    lk_tensor    *t  = NULL;
    ck_assert_int_eq(lk_image_to_tensor(im, &pp, &t, NULL), LK_OK);
    img_path("rgb.tensor.npy", p, sizeof p);
    lk_tensor *ref = tu_read_npy(p);
    ck_assert_ptr_nonnull(ref);
    ck_assert_int_eq(lk_tensor_numel(ref), lk_tensor_numel(t));
    ck_assert_int_eq(t->shape[1], 3);
    ck_assert_int_eq(t->shape[2], 30);
    ck_assert_int_eq(t->shape[3], 40);
    double d = tu_max_abs_diff(t->data, ref->data, lk_tensor_numel(t));
    ck_assert_msg(d == 0.0, "ToTensor+Normalize differs by %g", d);
    lk_tensor_free(ref);
    lk_tensor_free(t);
    lk_image_free(im);
}
END_TEST

START_TEST(bad_images_fail_cleanly) {
    static const char *const bad[] = {"bad-truncated.png", "bad-crc.png", "bad-truncated.jpg",
                                      "bad-notimage.png"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char      p[512];
        lk_image *im = (lk_image *)1;
        lk_error  err;
        img_path(bad[i], p, sizeof p);
        lk_status st = lk_image_read(p, &im, &err);
        ck_assert_msg(st == LK_EFORMAT || st == LK_EUNSUPPORTED, "%s: status %d", bad[i], st);
        ck_assert_ptr_null(im);
        ck_assert_msg(strstr(err.msg, bad[i]) != NULL, "message lacks the file name: %s",
                      err.msg);
    }
    lk_image *im = NULL;
    lk_error  err;
    ck_assert_int_eq(lk_image_read("/nonexistent/x.png", &im, &err), LK_EIO);
    ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent/x.png"));
    /* every prefix of a valid PNG and JPEG fails cleanly or decodes */
    const char *names[2] = {"rgb.png", "photo.jpg"};
    for (int k = 0; k < 2; k++) {
        char p[512];
        img_path(names[k], p, sizeof p);
        FILE *f = fopen(p, "rb");
        ck_assert_ptr_nonnull(f);
        unsigned char buf[65536];
        size_t        n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        for (size_t cut = 0; cut < n; cut += 7) {
            lk_image *o = NULL;
            lk_status st = lk_image_decode(buf, cut, names[k], &o, NULL);
            if (st == LK_OK) lk_image_free(o);
            else ck_assert_ptr_null(o);
        }
    }
}
END_TEST

START_TEST(write_png_roundtrip) {
    lk_image *im = NULL;
    ck_assert_int_eq(lk_image_alloc(5, 3, &im, NULL), LK_OK);
    for (int i = 0; i < 45; i++) im->rgb[i] = (unsigned char)(i * 5);
    char path[] = "/tmp/lkprobe-test-XXXXXX";
    int  fd     = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(lk_image_write_png(im, path, NULL), LK_OK);
    lk_image *back = NULL;
    ck_assert_int_eq(lk_image_read(path, &back, NULL), LK_OK);
    ck_assert_int_eq(memcmp(back->rgb, im->rgb, 45), 0);
    unlink(path);
    lk_error err;
    ck_assert_int_eq(lk_image_write_png(im, "/nonexistent-dir/out.png", &err), LK_EIO);
    ck_assert_int_eq(access("/nonexistent-dir/out.png", F_OK), -1);
    lk_image_free(back);
    lk_image_free(im);
}
END_TEST

static Suite *image_suite(void) {
    Suite *s = suite_create("image");
    TCase *t = tcase_create("image");
    tcase_add_loop_test(t, decode_matches_pil, 0, (int)(sizeof inputs / sizeof inputs[0]));
    tcase_add_test(t, resize_filters_match_pil);
    tcase_add_test(t, to_tensor_matches_torchvision);
    tcase_add_test(t, bad_images_fail_cleanly);
    tcase_add_test(t, write_png_roundtrip);
    suite_add_tcase(s, t);
    return s;
}

int main(void) { return tu_run(image_suite()); }

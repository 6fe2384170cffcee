/* test_util.c: the internal utility library (util/lk_util.h): growable arrays, string
 * builder, JSON writer, atomic files, file maps, base names. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "util/lk_util.h"

START_TEST(grow_doubles_and_keeps) {
    int   *a   = NULL;
    size_t cap = 0;
    for (int i = 0; i < 1000; i++) {
        ck_assert(LK_GROW(a, cap, (size_t)i + 1));
        a[i] = 3 * i + 7;
    }
    ck_assert_uint_ge(cap, 1000);
    for (int i = 0; i < 1000; i++) ck_assert_int_eq(a[i], 3 * i + 7);
    size_t big = cap;
    ck_assert(!lk_grow((void **)&a, &big, SIZE_MAX / 2, 8)); /* overflow refused */
    ck_assert_uint_eq(big, cap);
    lk_free(a);
}
END_TEST

START_TEST(sb_builds_text) {
    lk_sb b = {0};
    ck_assert_str_eq(lk_sb_text(&b), "");
    lk_sb_str(&b, "ab");
    lk_sb_char(&b, 'c');
    lk_sb_printf(&b, "%d-%.3f", 42, 2.385);
    char big[1000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    lk_sb_printf(&b, "%s", big);
    ck_assert_uint_eq(b.n, 3 + 8 + 999);
    ck_assert(strncmp(lk_sb_text(&b), "abc42-2.385xx", 13) == 0);
    ck_assert(!b.oom);
    lk_sb_free(&b);
    ck_assert_ptr_null(b.p);
}
END_TEST

START_TEST(sb_out_of_memory_is_sticky) {
    lk_sb b = {0};
    lk_alloc_fail_after(1);
    lk_sb_str(&b, "abc");
    lk_alloc_fail_after(0);
    lk_sb_str(&b, "def");
    ck_assert(b.oom);
    lk_sb_free(&b);
}
END_TEST

START_TEST(jw_writes_compact_json) {
    lk_sb b = {0};
    lk_jw w;
    lk_jw_init(&w, &b);
    lk_jw_obj(&w);
    lk_jw_key(&w, "s");
    lk_jw_str(&w, "a\"b\\\n\x01");
    lk_jw_key(&w, "n");
    lk_jw_num(&w, 0.125, "%.9g");
    lk_jw_key(&w, "inf");
    lk_jw_num(&w, INFINITY, "%.9g");
    lk_jw_key(&w, "a");
    int64_t sh[3] = {1, 3, 224};
    lk_jw_shape(&w, 3, sh);
    lk_jw_key(&w, "o");
    lk_jw_obj(&w);
    lk_jw_obj_end(&w);
    lk_jw_key(&w, "l");
    lk_jw_arr(&w);
    lk_jw_bool(&w, 1);
    lk_jw_null(&w);
    lk_jw_int(&w, -5);
    lk_jw_str(&w, NULL);
    lk_jw_arr_end(&w);
    lk_jw_obj_end(&w);
    ck_assert_str_eq(lk_sb_text(&b), "{\"s\":\"a\\\"b\\\\\\n\\u0001\",\"n\":0.125,\"inf\":null,"
                                     "\"a\":[1,3,224],\"o\":{},\"l\":[true,null,-5,null]}");
    lk_sb_free(&b);
}
END_TEST

static void tmp_path(const char *name, char *buf, size_t n) {
    snprintf(buf, n, "%s/lkutil-%ld-%s", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (long)getpid(), name);
}

START_TEST(afile_commit_and_abort) {
    char     p[512];
    lk_error err;
    tmp_path("a.txt", p, sizeof p);
    ck_assert_int_eq(lk_file_write_atomic(p, "first", 5, 0, &err), LK_OK);
    lk_afile a;
    ck_assert_int_eq(lk_afile_open(&a, p, &err), LK_OK);
    ck_assert_int_eq(lk_afile_write(&a, "second", 6, &err), LK_OK);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s", a.tmp);
    lk_afile_abort(&a); /* the old content stays, the temporary file is gone */
    ck_assert_int_ne(access(tmp, F_OK), 0);
    lk_file_map fm;
    ck_assert_int_eq(lk_file_map_open(p, &fm, &err), LK_OK);
    ck_assert_uint_eq(fm.len, 5);
    ck_assert(memcmp(fm.base, "first", 5) == 0);
    lk_file_map_release((void *)fm.base, fm.len);
    unlink(p);
    ck_assert_int_eq(lk_file_map_open(p, &fm, &err), LK_EIO);
    ck_assert_ptr_nonnull(strstr(err.msg, "lkutil-"));
    /* A synced write (the filter DB's) replaces the file the same way. */
    ck_assert_int_eq(lk_file_write_atomic(p, "synced", 6, 1, &err), LK_OK);
    ck_assert_int_eq(lk_file_map_open(p, &fm, &err), LK_OK);
    ck_assert_uint_eq(fm.len, 6);
    ck_assert(memcmp(fm.base, "synced", 6) == 0);
    lk_file_map_release((void *)fm.base, fm.len);
    unlink(p);
    ck_assert_int_eq(lk_file_write_atomic("/nonexistent-dir/x", "x", 1, 1, &err), LK_EIO);
    ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent-dir/x"));
}
END_TEST

START_TEST(base_name_after_last_slash) {
    ck_assert_str_eq(lk_base_name("a/b/c.onnx"), "c.onnx");
    ck_assert_str_eq(lk_base_name("c.onnx"), "c.onnx");
    ck_assert_str_eq(lk_base_name("dir/"), "");
}
END_TEST

static Suite *util_suite(void) {
    Suite *s = suite_create("util");
    TCase *t = tcase_create("util");
    tcase_add_test(t, grow_doubles_and_keeps);
    tcase_add_test(t, sb_builds_text);
    tcase_add_test(t, sb_out_of_memory_is_sticky);
    tcase_add_test(t, jw_writes_compact_json);
    tcase_add_test(t, afile_commit_and_abort);
    tcase_add_test(t, base_name_after_last_slash);
    suite_add_tcase(s, t);
    return s;
}

int main(void) { return tu_run(util_suite()); }

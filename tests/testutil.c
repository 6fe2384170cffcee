/* testutil.c: helpers shared by the Check programs. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

const char *tu_src_path(const char *rel, char *buf, size_t n) {
    const char *root = getenv("LK_SOURCE_ROOT");
    snprintf(buf, n, "%s/%s", root ? root : ".", rel);
    return buf;
}

const char *tu_shared_path(const char *rel, char *buf, size_t n) {
    const char *env = getenv("LK_SHARED_DIR");
    const char *root = getenv("LK_SOURCE_ROOT");
    if (env) snprintf(buf, n, "%s/%s", env, rel);
    else snprintf(buf, n, "%s/../shared/%s", root ? root : ".", rel);
    return access(buf, R_OK) == 0 ? buf : NULL;
}

const char *tu_lkprobe_path(char *buf, size_t n) {
    const char *root = getenv("LK_BUILD_ROOT");
    snprintf(buf, n, "%s/cli/lkprobe", root ? root : ".");
    return buf;
}

void tu_fill_uniform(float *p, int64_t n, uint64_t seed, float lo, float hi) {
    uint64_t s = seed;
    for (int64_t i = 0; i < n; i++) {
        s += 0x9E3779B97F4A7C15ull;
        uint64_t z = s;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        double u = (double)(z >> 11) / 9007199254740992.0;
        p[i] = (float)(lo + (hi - lo) * u);
    }
}

double tu_max_abs_diff(const float *a, const float *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = a[i] - b[i];
        if (d < 0) d = -d;
        if (d > m || d != d) m = d != d ? 1e30 : d;
    }
    return m;
}

double tu_max_abs(const float *a, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = a[i] < 0 ? -a[i] : a[i];
        if (d > m) m = d;
    }
    return m;
}

/* Minimal .npy reader for test fixtures (little-endian <f4/<f8, C order). */
lk_tensor *tu_read_npy(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char pre[10];
    lk_tensor    *t = NULL;
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) goto out;
    size_t hlen = pre[8] | (pre[9] << 8);
    if (pre[6] >= 2) {
        unsigned char ex[2];
        if (fread(ex, 1, 2, f) != 2) goto out;
        hlen = pre[8] | (pre[9] << 8) | ((size_t)ex[0] << 16) | ((size_t)ex[1] << 24);
    }
    char *h = calloc(1, hlen + 1);
    if (!h || fread(h, 1, hlen, f) != hlen) {
        free(h);
        goto out;
    }
    int is_f8 = strstr(h, "<f8") != NULL;
    if (!is_f8 && !strstr(h, "<f4")) {
        free(h);
        goto out;
    }
    if (strstr(h, "'fortran_order': True")) {
        free(h);
        goto out;
    }
    int64_t shape[LK_MAX_DIMS];
    int     nd = 0;
    char   *p  = strchr(strstr(h, "'shape'"), '(') + 1;
    while (*p && *p != ')') {
        while (*p == ' ' || *p == ',') p++;
        if (*p == ')') break;
        shape[nd++] = strtoll(p, &p, 10);
    }
    free(h);
    if (lk_tensor_alloc(LK_F32, nd, shape, &t, NULL) != LK_OK) goto out;
    int64_t n = lk_tensor_numel(t);
    if (is_f8) {
        double *tmp = malloc(sizeof(double) * (size_t)(n ? n : 1));
        if (!tmp || fread(tmp, 8, (size_t)n, f) != (size_t)n) {
            free(tmp);
            lk_tensor_free(t);
            t = NULL;
            goto out;
        }
        for (int64_t i = 0; i < n; i++) ((float *)t->data)[i] = (float)tmp[i];
        free(tmp);
    } else if (fread(t->data, 4, (size_t)n, f) != (size_t)n) {
        lk_tensor_free(t);
        t = NULL;
    }
out:
    fclose(f);
    return t;
}

int tu_run(Suite *s) {
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

static void read_fd_all(int fd, char *buf, size_t n) {
    size_t k = 0;
    if (n == 0) return;
    lseek(fd, 0, SEEK_SET);
    for (;;) {
        ssize_t r = read(fd, buf + k, n - 1 - k);
        if (r <= 0) break;
        k += (size_t)r;
        if (k == n - 1) break;
    }
    buf[k] = 0;
}

int tu_lkprobe(const char *const *args, char *out, size_t out_n, char *errb, size_t err_n) {
    char        exe[512];
    const char *argv[128];
    int         n = 0;
    tu_lkprobe_path(exe, sizeof exe);
    argv[n++] = exe;
    while (args[n - 1] && n < 127) {
        argv[n] = args[n - 1];
        n++;
    }
    argv[n]   = NULL;
    char so[] = "/tmp/lkprobe-out-XXXXXX", se[] = "/tmp/lkprobe-err-XXXXXX";
    int  fo = mkstemp(so), fe = mkstemp(se);
    if (fo < 0 || fe < 0) return -2;
    unlink(so);
    unlink(se);
    pid_t pid = fork();
    if (pid == 0) {
        if (dup2(fo, 1) < 0 || dup2(fe, 2) < 0) _exit(127);
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid) st = -1;
    if (out) read_fd_all(fo, out, out_n);
    if (errb) read_fd_all(fe, errb, err_n);
    close(fo);
    close(fe);
    if (pid < 0) return -2;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

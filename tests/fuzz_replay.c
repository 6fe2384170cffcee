/* fuzz_replay.c: runs a libFuzzer target (fuzz/fuzz_<loader>.c) once over every file of its
 * seed corpus, without libFuzzer and without mutation.  Linked against the ordinary static
 * libraries, so in the sanitizer build (build-asan: ASan + UBSan with halt_on_error, see
 * .ci/run) every loader corpus passes through its loader under UBSan at no extra build cost.
 *
 *     ./build-asan/tests/replay_native fuzz/corpus/native
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads path whole into *out (malloc'd; NULL for an empty file); 0 on success. */
static int read_file(const char *path, uint8_t **out, size_t *len) {
    FILE *f = fopen(path, "rb");
    *out    = NULL;
    *len    = 0;
    if (!f) return 1;
    uint8_t *buf = NULL;
    size_t   cap = 0;
    for (;;) {
        if (*len == cap) {
            cap          = cap ? 2 * cap : 65536;
            uint8_t *nb  = realloc(buf, cap);
            if (!nb) break;
            buf = nb;
        }
        size_t got = fread(buf + *len, 1, cap - *len, f);
        *len += got;
        if (got == 0) break;
    }
    int bad = ferror(f) || *len == cap;
    fclose(f);
    if (bad) {
        free(buf);
        return 1;
    }
    *out = buf;
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    DIR *d = opendir(argv[1]);
    if (!d) {
        fprintf(stderr, "%s: cannot open %s\n", argv[0], argv[1]);
        return 1;
    }
    char         **names = NULL;
    size_t         n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap           = cap ? 2 * cap : 64;
            char **nn     = realloc(names, cap * sizeof *names);
            if (!nn) return 1;
            names = nn;
        }
        names[n] = strdup(e->d_name);
        if (!names[n++]) return 1;
    }
    closedir(d);
    qsort(names, n, sizeof *names, by_name);
    int rc = n ? 0 : 1;
    for (size_t i = 0; i < n; i++) {
        char     path[4096];
        uint8_t *buf;
        size_t   len;
        snprintf(path, sizeof path, "%s/%s", argv[1], names[i]);
        if (read_file(path, &buf, &len)) {
            fprintf(stderr, "%s: cannot read %s\n", argv[0], path);
            rc = 1;
        } else {
            /* A copy of exactly len bytes, so that ASan sees reads past the input's end. */
            uint8_t *exact = len ? malloc(len) : NULL;
            if (len && !exact) return 1;
            if (len) memcpy(exact, buf, len);
            LLVMFuzzerTestOneInput(exact, len);
            free(exact);
            free(buf);
        }
        free(names[i]);
    }
    free(names);
    printf("%s: %zu corpus files of %s replayed\n", argv[0], n, argv[1]);
    return rc;
}

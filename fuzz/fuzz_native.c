/* fuzz_native.c: libFuzzer target for the native model.bin loader (doc/model-bin.md).
 *
 * Every section and tensor of a model.bin carries a checksum, so a mutated file almost always
 * stops at the first checksum check.  The target therefore reseals each input before loading
 * it: the file-size field, the per-tensor checksums in section 'values' and of the packed
 * weights in section 'packed' (version 2), the 'data' checksum (over the per-tensor ones),
 * the checksums of the other sections and the header checksum are
 * recomputed, as far as the mutated directory and records allow.  Mutations then reach the
 * graph parser, the model validation (finalize) and, for a model that loads, the MAC counts
 * and the exec planner (a dry run: sizes only, nothing is allocated for activations).
 * Every input must either load or fail with a status and a message; ASan/UBSan catch the
 * rest.  Corpus: fuzz/corpus/native (small files written by gen_native_corpus).
 *
 *     ./build-fuzz/fuzz/fuzz_native fuzz/corpus/native -max_total_time=60
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "lkprobe/lk.h"
#include "loaders/loaders-impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { HDR_FIXED = 40, DIR_ENTRY = 32, N_SEC = 7, VAL_REC = 96, PACK_REC = 48, SEC_VALS = 3,
       SEC_DATA = 6, SEC_PACK = 7, MAX_PARAMS = 4096 };

static uint64_t get64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}
static uint32_t get32(const unsigned char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static void put64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }

/* 1 when [off, off + size) lies inside a buffer of len bytes. */
static int inside(uint64_t off, uint64_t size, size_t len) {
    return off <= len && size <= len - off;
}

/* Recomputes what the format checksums (see the file comment); b has len bytes. */
static void reseal(unsigned char *b, size_t len) {
    static uint64_t sums[MAX_PARAMS];
    if (len < HDR_FIXED) return;
    int    nsec     = get32(b + 8) == 2 ? 7 : 6; /* by the version: 2 has section 'packed' */
    size_t hdr_size = HDR_FIXED + DIR_ENTRY * (size_t)nsec + 8;
    if (len < hdr_size) return;
    put64(b + 16, (uint64_t)len);
    uint64_t off[N_SEC + 1] = {0}, size[N_SEC + 1] = {0};
    int      ok[N_SEC + 1]  = {0};
    for (int i = 0; i < nsec; i++) {
        const unsigned char *e  = b + HDR_FIXED + DIR_ENTRY * i;
        uint32_t             id = get32(e);
        if (id < 1 || id > N_SEC || ok[id]) continue;
        off[id]  = get64(e + 8);
        size[id] = get64(e + 16);
        ok[id]   = inside(off[id], size[id], len);
    }
    /* Per-tensor checksums first: they sit in section 'values', whose own checksum follows. */
    size_t nsum = 0;
    if (ok[SEC_VALS] && size[SEC_VALS] >= 8) {
        unsigned char *vals = b + off[SEC_VALS];
        uint64_t       nv   = get64(vals);
        for (uint64_t v = 0; v < nv && 8 + (v + 1) * VAL_REC <= size[SEC_VALS]; v++) {
            unsigned char *r = vals + 8 + v * VAL_REC;
            if (r[4] != LK_VALUE_PARAM || nsum == MAX_PARAMS) continue;
            uint64_t doff = get64(r + 72), nb = get64(r + 80);
            if (!inside(doff, nb, len)) continue;
            uint64_t ck = lk_native_tensor_checksum(get32(b + 8), b + doff, (size_t)nb);
            put64(r + 88, ck);
            sums[nsum++] = ck;
        }
    }
    if (ok[SEC_PACK] && size[SEC_PACK] >= 16) {
        unsigned char *pk = b + off[SEC_PACK];
        uint64_t       np = get64(pk);
        for (uint64_t k = 0; k < np && 16 + (k + 1) * PACK_REC <= size[SEC_PACK]; k++) {
            unsigned char *r    = pk + 16 + k * PACK_REC;
            uint64_t       doff = get64(r + 16), nb = get64(r + 24);
            if (!inside(doff, nb, len) || nsum == MAX_PARAMS) continue;
            uint64_t ck = lk_native_tensor_checksum(2, b + doff, (size_t)nb);
            put64(r + 32, ck);
            sums[nsum++] = ck;
        }
    }
    for (int i = 0; i < nsec; i++) {
        unsigned char *e  = b + HDR_FIXED + DIR_ENTRY * i;
        uint32_t       id = get32(e);
        if (id < 1 || id > N_SEC || !ok[id]) continue;
        uint64_t ck = id == SEC_DATA ? lk_native_checksum(sums, nsum * 8)
                                     : lk_native_checksum(b + off[id], (size_t)size[id]);
        put64(e + 24, ck);
    }
    put64(b + hdr_size - 8, lk_native_checksum(b, hdr_size - 8));
}

/* A model that loaded: MAC counts and a dry-run plan at the declared shapes must not
 * overflow or crash; a plan that fails says why. */
static void exercise(const lk_model *m) {
    for (int64_t i = 0; i < lk_model_n_nodes(m); i++) (void)lk_model_node_macs(m, i);
    if (lk_model_is_weights_only(m)) return;
    uint64_t bytes = 0;
    lk_error err;
    err.msg[0]  = '\0';
    lk_status s = lk_exec_estimate(m, NULL, 0, NULL, &bytes, &err);
    if (s != LK_OK && err.msg[0] == '\0') __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* The loader takes ownership of a file mapping and unmaps it: an anonymous mapping holds
     * the resealed copy. */
    lk_file_map fm = {NULL, 0};
    if (size) {
        void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return 0;
        memcpy(p, data, size);
        reseal(p, size);
        fm.base = p;
        fm.len  = size;
    }
    lk_model *m = NULL;
    lk_error  err;
    err.msg[0]  = '\0';
    lk_status s = lk_native_load("fuzz.bin", fm, NULL, &m, &err);
    if (s == LK_OK) {
        if (!m) __builtin_trap();
        exercise(m);
        lk_model_free(m);
    } else if (m != NULL || err.msg[0] == '\0') {
        __builtin_trap();
    }
    return 0;
}

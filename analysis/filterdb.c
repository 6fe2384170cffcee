/*
 * filterdb.c: the filter database directory (../shared/docs/filterdb.md §2).
 *
 *   filters.npy       N x 9 float32 rows, C order; a fixed 128-byte header so the row count
 *                     can be rewritten in place
 *   lkprobe-db.tsv    the manifest: the commit record (row count, models, layers)
 *   meta.csv          the paper's meta columns, one row per 3x3 layer (regenerated)
 *   dataset.h5        'filters' N x 9 float32 (+ 'meta_csv' bytes), when built with libhdf5
 *
 * Append protocol (crash-safe): rows are written after the committed rows and synced; the
 * manifest is then replaced atomically (temp + rename): that rename is the commit.  Only then
 * are the npy header, meta.csv and dataset.h5 (temp + rename) refreshed.  Opening a DB drops
 * rows beyond the committed count and repairs the header, so a crash at any point leaves the
 * last committed state.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef LK_HAVE_HDF5
#include <dlfcn.h>
#include <hdf5.h>
#endif

#include "lkprobe/lk_filters.h"
#include "util/lk_util.h"

#define DB_HEADER   128
#define DB_DIM      9
#define DB_MAGIC    "lkprobe-filterdb"
#define DB_MANIFEST "lkprobe-db.tsv"

struct lk_filterdb {
    char    *dir;
    char    *manifest;   /* committed manifest text (without the first line) */
    size_t   manifest_len;
    int64_t  rows, n_models;
    lk_file_map map;    /* filters.npy, mapped on the first load */
};

#ifdef LK_HAVE_HDF5
/* HDF5 through dlopen (LK_HDF5_SONAME, the library the build found): linked, its ~30 shared
 * libraries were loaded by every lkprobe process at start-up.  The header's types check every
 * call; its constant macros (H5T_NATIVE_FLOAT, ...) read globals that dlsym gives here. */
typedef struct h5_api {
    __typeof__(&H5open)                open;
    __typeof__(&H5Fcreate)             fcreate;
    __typeof__(&H5Fclose)              fclose;
    __typeof__(&H5Pcreate)             pcreate;
    __typeof__(&H5Pset_obj_track_times) pset_obj_track_times;
    __typeof__(&H5Pclose)              pclose;
    __typeof__(&H5Screate_simple)      screate_simple;
    __typeof__(&H5Sclose)              sclose;
    __typeof__(&H5Dcreate2)            dcreate2;
    __typeof__(&H5Dwrite)              dwrite;
    __typeof__(&H5Dclose)              dclose;
    hid_t dataset_create, ieee_f32le, native_float, native_uchar; /* after open()        */
} h5_api;
/* H5F_ACC_TRUNC's value; the header's macro also calls H5check() and H5open(), link-time. */
#define H5F_ACC_TRUNC_LK 0x0002u

static int h5_sym(void *lib, const char *name, void *fn, size_t n, char *why, size_t wn) {
    void *p = dlsym(lib, name);
    if (!p) {
        snprintf(why, wn, "%s has no symbol %s", LK_HDF5_SONAME, name);
        return 0;
    }
    memcpy(fn, &p, n); /* object pointer -> function pointer, as POSIX dlsym defines */
    return 1;
}

/* Loads HDF5 once per process; NULL (why set) when it cannot be loaded. */
static const h5_api *h5_load(char *why, size_t wn) {
    static h5_api api;
    static int    state; /* 0 not tried, 1 loaded, -1 failed */
    static char   err[256];
    if (state == 0) {
        void *lib = dlopen(LK_HDF5_SONAME, RTLD_NOW | RTLD_LOCAL);
        state     = -1;
        if (!lib) {
            const char *e = dlerror();
            snprintf(err, sizeof err, "cannot load %s (%s)", LK_HDF5_SONAME, e ? e : "dlopen");
        } else {
#define H5_FN(field, name) h5_sym(lib, name, &api.field, sizeof api.field, err, sizeof err)
            hid_t *g[4] = {NULL};
            int    ok   = H5_FN(open, "H5open") && H5_FN(fcreate, "H5Fcreate") &&
                     H5_FN(fclose, "H5Fclose") && H5_FN(pcreate, "H5Pcreate") &&
                     H5_FN(pset_obj_track_times, "H5Pset_obj_track_times") &&
                     H5_FN(pclose, "H5Pclose") && H5_FN(screate_simple, "H5Screate_simple") &&
                     H5_FN(sclose, "H5Sclose") && H5_FN(dcreate2, "H5Dcreate2") &&
                     H5_FN(dwrite, "H5Dwrite") && H5_FN(dclose, "H5Dclose") &&
                     h5_sym(lib, "H5P_CLS_DATASET_CREATE_ID_g", &g[0], sizeof g[0], err, sizeof err) &&
                     h5_sym(lib, "H5T_IEEE_F32LE_g", &g[1], sizeof g[1], err, sizeof err) &&
                     h5_sym(lib, "H5T_NATIVE_FLOAT_g", &g[2], sizeof g[2], err, sizeof err) &&
                     h5_sym(lib, "H5T_NATIVE_UCHAR_g", &g[3], sizeof g[3], err, sizeof err);
#undef H5_FN
            if (ok && api.open() < 0) {
                snprintf(err, sizeof err, "%s: H5open failed", LK_HDF5_SONAME);
                ok = 0;
            }
            if (ok) {
                api.dataset_create = *g[0], api.ieee_f32le = *g[1];
                api.native_float = *g[2], api.native_uchar = *g[3];
                state = 1;
            } else {
                dlclose(lib);
            }
        }
    }
    if (state < 0) snprintf(why, wn, "%s", err);
    return state > 0 ? &api : NULL;
}
#endif

int lk_filterdb_has_hdf5(void) {
#ifdef LK_HAVE_HDF5
    return 1;
#else
    return 0;
#endif
}

static void path_in(const lk_filterdb *db, const char *name, char *buf, size_t n) {
    snprintf(buf, n, "%s/%s", db->dir, name);
}

static void npy_header(int64_t rows, char *h) {
    int k = snprintf(h, DB_HEADER, "\x93NUMPY\x01%c%c%c{'descr': '<f4', 'fortran_order': False, "
                     "'shape': (%lld, %d), }", 0, (char)(DB_HEADER - 10), 0, (long long)rows, DB_DIM);
    memset(h + k, ' ', (size_t)(DB_HEADER - k));
    h[DB_HEADER - 1] = '\n';
}

static lk_status write_all(int fd, const void *p, size_t n, off_t off, const char *path,
                           lk_error *err) {
    const char *c = p;
    while (n) {
        ssize_t w = pwrite(fd, c, n, off);
        if (w < 0) return LK_FAIL(err, LK_EIO, "%s: write failed: %s", path, strerror(errno));
        c += w;
        n -= (size_t)w;
        off += w;
    }
    return LK_OK;
}

/* Writes text to dir/name atomically and durably (util: temp + fsync + rename). */
static lk_status write_atomic(const lk_filterdb *db, const char *name, const char *text, size_t len,
                              lk_error *err) {
    char path[PATH_MAX];
    path_in(db, name, path, sizeof path);
    return lk_file_write_atomic(path, text, len, 1, err);
}

/* ---------------------------------------------------------------- manifest */

static void clean_field(char *s) {
    for (; *s; s++)
        if (*s == '\t' || *s == '\n' || *s == '\r') *s = ' ';
}

/* Splits a line in place on tabs; returns the field count. */
static int split_tabs(char *line, char **f, int max) {
    int n = 0;
    f[n++] = line;
    for (char *p = line; *p && n < max; p++)
        if (*p == '\t') {
            *p     = 0;
            f[n++] = p + 1;
        }
    return n;
}

static lk_status parse_manifest(lk_filterdb *db, const char *text, int64_t *rows, lk_error *err) {
    char path[PATH_MAX];
    path_in(db, DB_MANIFEST, path, sizeof path);
    const char *nl = strchr(text, '\n');
    char        magic[64];
    long long   r = -1, nm = -1;
    if (!nl || sscanf(text, "%63[^\t]\t1\t%lld\t%lld", magic, &r, &nm) != 3 ||
        strcmp(magic, DB_MAGIC) != 0 || r < 0 || nm < 0)
        return LK_FAIL(err, LK_EFORMAT, "%s: corrupt filter DB manifest (bad first line)", path);
    *rows        = r;
    db->n_models = nm;
    db->manifest = lk_strdup(nl + 1);
    if (!db->manifest) return LK_FAIL(err, LK_ENOMEM, "filterdb: out of memory");
    db->manifest_len = strlen(db->manifest);
    return LK_OK;
}

lk_status lk_filterdb_open(const char *dir, int create, lk_filterdb **out, lk_error *err) {
    *out            = NULL;
    lk_status    st = LK_OK;
    lk_filterdb *db = lk_calloc(1, sizeof *db);
    if (!db || !(db->dir = lk_strdup(dir))) {
        lk_free(db);
        return LK_FAIL(err, LK_ENOMEM, "filterdb: out of memory");
    }
    char mpath[PATH_MAX], npath[PATH_MAX];
    path_in(db, DB_MANIFEST, mpath, sizeof mpath);
    path_in(db, "filters.npy", npath, sizeof npath);
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        if (!create) {
            st = LK_FAIL(err, LK_EIO, "%s: no filter DB here: %s", dir, strerror(errno));
            goto fail;
        }
        if (mkdir(dir, 0755) != 0) {
            st = LK_FAIL(err, LK_EIO, "%s: cannot create the DB directory: %s", dir, strerror(errno));
            goto fail;
        }
    } else if (!S_ISDIR(sb.st_mode)) {
        st = LK_FAIL(err, LK_EIO, "%s: not a directory", dir);
        goto fail;
    }
    FILE *mf = fopen(mpath, "rb");
    if (!mf) {
        if (!create) {
            st = LK_FAIL(err, LK_EIO, "%s: not a filter DB (missing %s)", dir, DB_MANIFEST);
            goto fail;
        }
        /* A fresh DB: an empty committed state. */
        char hdr[DB_HEADER], first[128];
        npy_header(0, hdr);
        int fd = open(npath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) {
            st = LK_FAIL(err, LK_EIO, "%s: cannot create (is the DB directory writable?): %s",
                         npath, strerror(errno));
            goto fail;
        }
        st = write_all(fd, hdr, DB_HEADER, 0, npath, err);
        close(fd);
        if (st != LK_OK) goto fail;
        int k = snprintf(first, sizeof first, "%s\t1\t0\t0\n", DB_MAGIC);
        st    = write_atomic(db, DB_MANIFEST, first, (size_t)k, err);
        if (st != LK_OK) goto fail;
        db->manifest = lk_strdup("");
        if (!db->manifest) {
            st = LK_FAIL(err, LK_ENOMEM, "filterdb: out of memory");
            goto fail;
        }
    } else {
        fseek(mf, 0, SEEK_END);
        long  n   = ftell(mf);
        char *txt = lk_malloc((size_t)(n > 0 ? n : 0) + 1);
        fseek(mf, 0, SEEK_SET);
        size_t got = txt ? fread(txt, 1, (size_t)n, mf) : 0;
        fclose(mf);
        if (!txt) {
            st = LK_FAIL(err, LK_ENOMEM, "filterdb: out of memory");
            goto fail;
        }
        txt[got] = 0;
        st       = parse_manifest(db, txt, &db->rows, err);
        lk_free(txt);
        if (st != LK_OK) goto fail;
    }
    /* filters.npy must hold at least the committed rows; a longer file is a crashed append. */
    int fd = open(npath, O_RDWR);
    if (fd < 0) {
        st = LK_FAIL(err, LK_EFORMAT, "%s: corrupt filter DB: %s", npath, strerror(errno));
        goto fail;
    }
    char hdr[DB_HEADER];
    if (fstat(fd, &sb) != 0 || sb.st_size < DB_HEADER || pread(fd, hdr, DB_HEADER, 0) != DB_HEADER ||
        memcmp(hdr, "\x93NUMPY", 6) != 0 || memmem(hdr, DB_HEADER, "'<f4'", 5) == NULL) {
        close(fd);
        st = LK_FAIL(err, LK_EFORMAT, "%s: corrupt filter DB (bad .npy header)", npath);
        goto fail;
    }
    off_t want = DB_HEADER + (off_t)db->rows * DB_DIM * (off_t)sizeof(float);
    if (sb.st_size < want) {
        close(fd);
        st = LK_FAIL(err, LK_EFORMAT, "%s: corrupt filter DB: %lld bytes, the manifest commits %lld "
                     "rows (%lld bytes)", npath, (long long)sb.st_size, (long long)db->rows,
                     (long long)want);
        goto fail;
    }
    char good[DB_HEADER];
    npy_header(db->rows, good);
    if ((sb.st_size > want && ftruncate(fd, want) != 0) ||
        (memcmp(hdr, good, DB_HEADER) != 0 && pwrite(fd, good, DB_HEADER, 0) != DB_HEADER)) {
        close(fd);
        st = LK_FAIL(err, LK_EIO, "%s: cannot repair the uncommitted tail: %s", npath, strerror(errno));
        goto fail;
    }
    close(fd);
    *out = db;
    return LK_OK;
fail:
    lk_filterdb_close(db);
    return st;
}

void lk_filterdb_close(lk_filterdb *db) {
    if (!db) return;
    lk_file_map_release((void *)db->map.base, db->map.len);
    lk_free(db->manifest);
    lk_free(db->dir);
    lk_free(db);
}

int64_t lk_filterdb_n_models(const lk_filterdb *db) { return db->n_models; }
int64_t lk_filterdb_n_filters(const lk_filterdb *db) { return db->rows; }

/* Identity of a model file: real path, size and mtime. */
static int file_key(const char *path, char *key, size_t n) {
    char        rp[PATH_MAX];
    struct stat sb;
    if (!realpath(path, rp) || stat(rp, &sb) != 0) return 0;
    snprintf(key, n, "%s\t%lld\t%lld", rp, (long long)sb.st_size, (long long)sb.st_mtime);
    clean_field(rp);
    return 1;
}

int lk_filterdb_contains(lk_filterdb *db, const char *path, lk_error *err) {
    char key[PATH_MAX + 64], pat[PATH_MAX + 80];
    if (!file_key(path, key, sizeof key)) return 0;
    snprintf(pat, sizeof pat, "\t%s\t", key);
    for (const char *p = db->manifest; (p = strstr(p, pat)); p++) {
        const char *ls = p;
        while (ls > db->manifest && ls[-1] != '\n') ls--;
        if (ls[0] == 'M' && ls[1] == '\t') return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- meta.csv and dataset.h5 */

/* CSV field with quoting when needed. */
static void sb_csv(lk_sb *b, const char *s) {
    if (!strpbrk(s, ",\"\n")) {
        lk_sb_printf(b, "%s", s);
        return;
    }
    lk_sb_printf(b, "\"");
    for (; *s; s++) lk_sb_printf(b, *s == '"' ? "\"\"" : "%c", *s);
    lk_sb_printf(b, "\"");
}

/* Model fields: M id path size mtime format producer opset depth bn total n3 shapes. */
enum { MF_TAG, MF_ID, MF_PATH, MF_SIZE, MF_MTIME, MF_FORMAT, MF_PRODUCER, MF_OPSET, MF_DEPTH,
       MF_BN, MF_TOTAL, MF_N3, MF_SHAPES, MF_COUNT };
/* Layer fields: L model layer name c_out c_in groups depth conv_depth conv_depth_norm first last. */
enum { LF_TAG, LF_MODEL, LF_LAYER, LF_NAME, LF_COUT, LF_CIN, LF_GROUPS, LF_DEPTH, LF_CDEPTH,
       LF_CDNORM, LF_FIRST, LF_LAST, LF_COUNT };

static lk_status write_meta(lk_filterdb *db, lk_error *err) {
    /* Union of kernel shapes over models for the "(X, Y) filters" columns. */
    char  shapes[64][32];
    int   ns   = 0;
    char *copy = lk_strdup(db->manifest);
    if (!copy) return LK_FAIL(err, LK_ENOMEM, "filterdb: out of memory");
    for (char *line = strtok(copy, "\n"); line; line = strtok(NULL, "\n")) {
        char *f[MF_COUNT + 1];
        if (line[0] != 'M' || split_tabs(line, f, MF_COUNT + 1) != MF_COUNT) continue;
        for (char *s = strtok(f[MF_SHAPES], ";"); s; s = strtok(NULL, ";")) {
            char *eq = strchr(s, '=');
            if (!eq) continue;
            *eq   = 0;
            int k = 0;
            while (k < ns && strcmp(shapes[k], s) != 0) k++;
            if (k == ns && ns < 64) snprintf(shapes[ns++], sizeof shapes[0], "%s", s);
        }
    }
    lk_free(copy);
    lk_sb b = {0};
    lk_sb_printf(&b, "model_id,conv_depth,conv_depth_norm,filter_ids,model,producer,op_set,depth,Name,"
               "Paper,Pretraining-Dataset,Training-Dataset,Visual Category,Task,Accessible,"
               "Dataset URL,total_filters,3x3_filter_share");
    for (int k = 0; k < ns; k++) {
        int kh = 0, kw = 0;
        sscanf(shapes[k], "%dx%d", &kh, &kw);
        lk_sb_printf(&b, ",\"(%d, %d) filters\"", kh, kw);
    }
    lk_sb_printf(&b, ",in_channels,out_channels,layer_id,layer_name,groups,kh,kw,source_format,bn_folded\n");
    /* Models first (they precede their layers in the manifest). */
    char *txt = lk_strdup(db->manifest);
    if (!txt) {
        lk_free(b.p);
        return LK_FAIL(err, LK_ENOMEM, "filterdb: out of memory");
    }
    char *mline[4096];
    int   nm = 0;
    char *save = NULL;
    for (char *line = strtok_r(txt, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == 'M') {
            char *f[MF_COUNT + 1];
            if (split_tabs(line, f, MF_COUNT + 1) == MF_COUNT && nm < 4096) {
                mline[nm++] = line;
            }
            continue;
        }
        char *f[LF_COUNT + 1];
        if (line[0] != 'L' || split_tabs(line, f, LF_COUNT + 1) != LF_COUNT) continue;
        long long mid = atoll(f[LF_MODEL]);
        if (mid < 0 || mid >= nm) continue;
        /* Fields of the model line were split in place: walk them by NULs. */
        char *mf[MF_COUNT];
        char *p = mline[mid];
        for (int k = 0; k < MF_COUNT; k++) {
            mf[k] = p;
            p += strlen(p) + 1;
        }
        double total = atof(mf[MF_TOTAL]), n3 = atof(mf[MF_N3]);
        lk_sb_printf(&b, "%s,%s,%s,%s:%s,", f[LF_MODEL], f[LF_CDEPTH], f[LF_CDNORM], f[LF_FIRST], f[LF_LAST]);
        sb_csv(&b, lk_base_name(mf[MF_PATH]));
        lk_sb_printf(&b, ",");
        sb_csv(&b, mf[MF_PRODUCER]);
        lk_sb_printf(&b, ",%s,%s,,,,,,,,,%.0f,%.17g", mf[MF_OPSET], mf[MF_DEPTH], total,
               total > 0 ? n3 / total : 0.0);
        for (int k = 0; k < ns; k++) {
            char  pat[2100];
            snprintf(pat, sizeof pat, "%s=", shapes[k]);
            char *hit = strstr(mf[MF_SHAPES], pat);
            lk_sb_printf(&b, ",%lld", hit ? atoll(hit + strlen(pat)) : 0LL);
        }
        lk_sb_printf(&b, ",%lld,%s,%s,", atoll(f[LF_CIN]) * atoll(f[LF_GROUPS]), f[LF_COUT], f[LF_LAYER]);
        sb_csv(&b, f[LF_NAME]);
        lk_sb_printf(&b, ",%s,3,3,%s,%s\n", f[LF_GROUPS], mf[MF_FORMAT], mf[MF_BN]);
    }
    lk_free(txt);
    if (b.oom) {
        lk_free(b.p);
        return LK_FAIL(err, LK_ENOMEM, "filterdb: out of memory for meta.csv");
    }
    lk_status st = write_atomic(db, "meta.csv", b.p ? b.p : "", b.n, err);
#ifdef LK_HAVE_HDF5
    if (st == LK_OK) {
        char npath[PATH_MAX], hpath[PATH_MAX];
        path_in(db, "filters.npy", npath, sizeof npath);
        path_in(db, "dataset.h5", hpath, sizeof hpath);
        size_t      len = DB_HEADER + (size_t)db->rows * DB_DIM * sizeof(float);
        lk_file_map fm  = {0};
        lk_afile    af  = {0};
        char          why[256] = "";
        const h5_api *h5       = h5_load(why, sizeof why);
        if (!h5) {
            lk_free(b.p);
            return LK_FAIL(err, LK_EIO, "%s: cannot write the HDF5 dataset: %s", hpath, why);
        }
        /* HDF5 writes by name: it fills the closed temporary file, which is then renamed. */
        int ok = lk_file_map_open(npath, &fm, NULL) == LK_OK && fm.len >= len &&
                 lk_afile_open(&af, hpath, NULL) == LK_OK;
        ok = ok && lk_afile_close(&af, NULL) == LK_OK;
        hid_t file = ok ? h5->fcreate(af.tmp, H5F_ACC_TRUNC_LK, H5P_DEFAULT, H5P_DEFAULT) : -1;
        ok = file >= 0;
        if (ok) {
            /* No modification times in the object headers: the same DB gives the same bytes
             * (a distributed build is compared with a single-process one byte for byte). */
            hid_t dcpl = h5->pcreate(h5->dataset_create);
            ok         = dcpl >= 0 && h5->pset_obj_track_times(dcpl, 0) >= 0;
            hsize_t dims[2] = {(hsize_t)db->rows, DB_DIM};
            hid_t   sp      = h5->screate_simple(2, dims, NULL);
            hid_t   ds      = h5->dcreate2(file, "filters", h5->ieee_f32le, sp, H5P_DEFAULT,
                                         dcpl, H5P_DEFAULT);
            ok = ok && sp >= 0 && ds >= 0 &&
                 (db->rows == 0 || h5->dwrite(ds, h5->native_float, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                            fm.base + DB_HEADER) >= 0);
            if (ds >= 0) h5->dclose(ds);
            if (sp >= 0) h5->sclose(sp);
            hsize_t mdim[1] = {(hsize_t)b.n};
            hid_t   msp     = h5->screate_simple(1, mdim, NULL);
            hid_t   mds     = h5->dcreate2(file, "meta_csv", h5->native_uchar, msp, H5P_DEFAULT,
                                         dcpl, H5P_DEFAULT);
            ok = ok && msp >= 0 && mds >= 0 &&
                 (b.n == 0 || h5->dwrite(mds, h5->native_uchar, H5S_ALL, H5S_ALL, H5P_DEFAULT, b.p) >= 0);
            if (mds >= 0) h5->dclose(mds);
            if (msp >= 0) h5->sclose(msp);
            if (dcpl >= 0) h5->pclose(dcpl);
            if (h5->fclose(file) < 0) ok = 0;
        }
        lk_file_map_release((void *)fm.base, fm.len);
        if (!ok || lk_afile_commit(&af, NULL) != LK_OK) {
            lk_afile_abort(&af);
            st = LK_FAIL(err, LK_EIO, "%s: cannot write the HDF5 dataset", hpath);
        }
    }
#endif
    lk_free(b.p);
    return st;
}

/* ---------------------------------------------------------------- append and load */

lk_status lk_filterdb_append_nosync(lk_filterdb *db, const lk_filters *f, int64_t model_idx,
                                    const char *path, const lk_filterdb_meta *meta, int *skipped,
                                    lk_error *err) {
    *skipped = 0;
    if (lk_filters_get_params(f)->kernel != 3)
        return LK_FAIL(err, LK_EUNSUPPORTED, "filterdb: the database stores 3x3 filters only "
                       "(--kernel %d)", lk_filters_get_params(f)->kernel);
    if (lk_filterdb_contains(db, path, err)) {
        *skipped = 1;
        return LK_OK;
    }
    char key[PATH_MAX + 64];
    if (!file_key(path, key, sizeof key))
        return LK_FAIL(err, LK_EIO, "%s: cannot stat the model file: %s", path, strerror(errno));
    const lk_filters_model *M = lk_filters_model_info(f, model_idx);
    if (!M) return LK_FAIL(err, LK_EINVAL, "filterdb: no model %lld", (long long)model_idx);
    char npath[PATH_MAX];
    path_in(db, "filters.npy", npath, sizeof npath);
    int fd = open(npath, O_WRONLY);
    if (fd < 0) return LK_FAIL(err, LK_EIO, "%s: cannot open for append: %s", npath, strerror(errno));
    lk_sb     b    = {0};
    int64_t   rows = db->rows, n3 = 0;
    lk_status st   = LK_OK;
    char      shp[1024] = "";
    size_t    k = 0;
    for (int i = 0; i < M->n_shapes && k < sizeof shp; i++) {
        k += (size_t)snprintf(shp + k, sizeof shp - k, "%s%lldx%lld=%lld", i ? ";" : "",
                              (long long)M->shape_kh[i], (long long)M->shape_kw[i],
                              (long long)M->shape_count[i]);
        if (M->shape_kh[i] == 3 && M->shape_kw[i] == 3) n3 = M->shape_count[i];
    }
    char prod[256];
    snprintf(prod, sizeof prod, "%s", M->producer);
    clean_field(prod);
    lk_sb_printf(&b, "M\t%lld\t%s\t%s\t%s\t%lld\t%lld\t%s\t%lld\t%lld\t%s\n", (long long)db->n_models, key,
           M->format, prod, (long long)M->opset, (long long)M->depth, M->bn_folded,
           (long long)M->total_filters, (long long)n3, shp[0] ? shp : "-");
    for (int64_t i = 0; i < lk_filters_n_layers(f) && st == LK_OK; i++) {
        const lk_filters_layer *L = lk_filters_get_layer(f, i);
        if (L->model != model_idx) continue;
        st = write_all(fd, lk_filters_layer_data(f, i), sizeof(float) * DB_DIM * (size_t)L->n,
                       DB_HEADER + (off_t)rows * DB_DIM * (off_t)sizeof(float), npath, err);
        char nm[512];
        snprintf(nm, sizeof nm, "%s", L->name);
        clean_field(nm);
        lk_sb_printf(&b, "L\t%lld\t%lld\t%s\t%lld\t%lld\t%lld\t%lld\t%lld\t%.17g\t%lld\t%lld\n",
               (long long)db->n_models, (long long)L->layer_id, nm, (long long)L->c_out,
               (long long)L->c_in, (long long)L->groups, (long long)L->depth,
               (long long)L->conv_depth, L->conv_depth_norm, (long long)rows,
               (long long)(rows + L->n - 1));
        rows += L->n;
    }
    if (st == LK_OK && fsync(fd) != 0)
        st = LK_FAIL(err, LK_EIO, "%s: fsync: %s", npath, strerror(errno));
    if (st == LK_OK && b.oom) st = LK_FAIL(err, LK_ENOMEM, "filterdb: out of memory");
    if (st == LK_OK) {
        /* Commit: the new manifest replaces the old one atomically. */
        lk_sb m = {0};
        lk_sb_printf(&m, "%s\t1\t%lld\t%lld\n%s%s", DB_MAGIC, (long long)rows, (long long)(db->n_models + 1),
               db->manifest, b.p);
        st = m.oom ? LK_FAIL(err, LK_ENOMEM, "filterdb: out of memory")
                   : write_atomic(db, DB_MANIFEST, m.p, m.n, err);
        if (st == LK_OK) {
            char *nmf = lk_strdup(strchr(m.p, '\n') + 1);
            if (nmf) {
                lk_free(db->manifest);
                db->manifest = nmf;
            }
            db->rows = rows;
            db->n_models++;
            char hdr[DB_HEADER];
            npy_header(rows, hdr);
            st = write_all(fd, hdr, DB_HEADER, 0, npath, err);
        }
        lk_free(m.p);
    } else {
        /* Not committed: drop the partial rows now (open would drop them too). */
        if (ftruncate(fd, DB_HEADER + (off_t)db->rows * DB_DIM * (off_t)sizeof(float)) != 0) { }
    }
    close(fd);
    lk_free(b.p);
    (void)meta;
    return st;
}

lk_status lk_filterdb_sync(lk_filterdb *db, lk_error *err) { return write_meta(db, err); }

lk_status lk_filterdb_append(lk_filterdb *db, const lk_filters *f, int64_t model_idx,
                             const char *path, const lk_filterdb_meta *meta, int *skipped,
                             lk_error *err) {
    lk_status st = lk_filterdb_append_nosync(db, f, model_idx, path, meta, skipped, err);
    return st == LK_OK && !*skipped ? write_meta(db, err) : st;
}

lk_status lk_filterdb_load(lk_filterdb *db, lk_filters *f, lk_error *err) {
    if (lk_filters_get_params(f)->kernel != 3)
        return LK_FAIL(err, LK_EUNSUPPORTED, "filterdb: the database holds 3x3 filters only");
    char npath[PATH_MAX], mpath[PATH_MAX];
    path_in(db, "filters.npy", npath, sizeof npath);
    path_in(db, DB_MANIFEST, mpath, sizeof mpath);
    if (db->rows == 0) return LK_FAIL(err, LK_EINVAL, "%s: the filter DB is empty", db->dir);
    size_t need = DB_HEADER + (size_t)db->rows * DB_DIM * sizeof(float);
    if (!db->map.base) {
        lk_status ms = lk_file_map_open(npath, &db->map, err);
        if (ms != LK_OK) return ms;
    }
    if (db->map.len < need)
        return LK_FAIL(err, LK_EFORMAT, "%s: %zu bytes, the manifest needs %zu", npath,
                       db->map.len, need);
    const float *data = (const float *)(db->map.base + DB_HEADER);
    char        *txt  = lk_strdup(db->manifest);
    if (!txt) return LK_FAIL(err, LK_ENOMEM, "filterdb: out of memory");
    lk_status st   = LK_OK;
    int64_t   base = lk_filters_n_models(f), lineno = 1, nm = 0;
    char     *save = NULL;
    for (char *line = strtok_r(txt, "\n", &save); line && st == LK_OK;
         line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        if (line[0] == 'M') {
            char *fl[MF_COUNT + 1];
            if (split_tabs(line, fl, MF_COUNT + 1) != MF_COUNT || atoll(fl[MF_ID]) != nm) {
                st = LK_FAIL(err, LK_EFORMAT, "%s:%lld: corrupt model record", mpath, (long long)lineno);
                break;
            }
            lk_filters_model mi;
            memset(&mi, 0, sizeof mi);
            mi.label     = fl[MF_PATH];
            mi.format    = fl[MF_FORMAT];
            mi.producer  = fl[MF_PRODUCER];
            mi.bn_folded = fl[MF_BN];
            mi.opset     = atoll(fl[MF_OPSET]);
            mi.depth     = atoll(fl[MF_DEPTH]);
            mi.total_filters = atoll(fl[MF_TOTAL]);
            st = lk_filters_add_model_info(f, &mi, NULL, err);
            nm++;
            continue;
        }
        char *fl[LF_COUNT + 1];
        if (line[0] != 'L' || split_tabs(line, fl, LF_COUNT + 1) != LF_COUNT) {
            st = LK_FAIL(err, LK_EFORMAT, "%s:%lld: corrupt manifest line", mpath, (long long)lineno);
            break;
        }
        long long mid = atoll(fl[LF_MODEL]), co = atoll(fl[LF_COUT]), ci = atoll(fl[LF_CIN]);
        long long a = atoll(fl[LF_FIRST]), z = atoll(fl[LF_LAST]);
        if (mid < 0 || mid >= nm || co < 1 || ci < 1 || a < 0 || z >= db->rows || z - a + 1 != co * ci) {
            st = LK_FAIL(err, LK_EFORMAT, "%s:%lld: corrupt layer record (filters %lld:%lld of %lld "
                         "rows, shape %lldx%lld)", mpath, (long long)lineno, a, z,
                         (long long)db->rows, co, ci);
            break;
        }
        lk_filters_layer_desc d;
        memset(&d, 0, sizeof d);
        d.name            = fl[LF_NAME];
        d.w               = data + a * DB_DIM;
        d.c_out           = co;
        d.c_in            = ci;
        d.groups          = atoll(fl[LF_GROUPS]);
        d.kh = d.kw       = 3;
        d.depth           = atoll(fl[LF_DEPTH]);
        d.conv_depth      = atoll(fl[LF_CDEPTH]);
        d.conv_depth_norm = strtod(fl[LF_CDNORM], NULL);
        d.model           = base + mid;
        st                = lk_filters_add_layer(f, &d, err);
    }
    lk_free(txt);
    if (st == LK_OK && nm != db->n_models)
        st = LK_FAIL(err, LK_EFORMAT, "%s: corrupt manifest: %lld model records, header says %lld",
                     mpath, (long long)nm, (long long)db->n_models);
    return st;
}

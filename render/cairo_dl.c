/* cairo_dl.c: loads cairo with dlopen on first use (cairo-dl.h). */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "render-impl.h"

rd_cairo_api rd_cairo;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int            loaded;
static char           why[320];

static void load(void) {
    void *lib = dlopen(LK_CAIRO_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *e = dlerror();
        snprintf(why, sizeof why, "cannot load %s (%s)", LK_CAIRO_SONAME, e ? e : "dlopen");
        return;
    }
    const char *missing = NULL;
    void       *p       = NULL;
#define RD_CAIRO_LOAD(f)                                                                           \
    if (!missing && !(p = dlsym(lib, "cairo_" #f))) missing = "cairo_" #f;                         \
    if (!missing) memcpy(&rd_cairo.f, &p, sizeof p); /* object -> function pointer (POSIX) */
    RD_CAIRO_FNS(RD_CAIRO_LOAD)
#undef RD_CAIRO_LOAD
    if (missing) {
        snprintf(why, sizeof why, "%s has no symbol %s", LK_CAIRO_SONAME, missing);
        dlclose(lib);
        return;
    }
    loaded = 1; /* the library stays loaded for the process */
}

lk_status rd_cairo_load(lk_error *err) {
    pthread_once(&once, load);
    return loaded ? LK_OK : LK_FAIL(err, LK_EIO, "figure: %s", why);
}

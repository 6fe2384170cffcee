/*
 * pickle-impl.h: a restricted pickle virtual machine (formats.md §3.4, §3.5), private to the
 * PyTorch loader.  It decodes protocols 0-5 into a tree of plain values and never imports or
 * calls anything: only allow-listed globals (OrderedDict, torch tensor/parameter rebuilders,
 * torch.*Storage) build real values, every other global becomes an opaque object that records
 * its module.name, call arguments and state.
 *
 *     lk_pickle *vm = NULL;
 *     const lk_pv *root;
 *     size_t used;
 *     if (lk_pickle_alloc(&vm, &err)) return err.code;
 *     if (lk_pickle_run(vm, buf, len, &root, &used, &err) == LK_OK) ... walk root ...
 *     lk_pickle_free(vm);      // releases every value it built
 *
 * Values are owned by the VM and live until lk_pickle_free, so several pickles run on one VM
 * (the legacy format is several pickles back to back) share storages.  Containers hold
 * pointers to other values, so the graph may contain shared nodes and even cycles: walkers
 * must cap their depth (LK_PV_MAX_WALK) or mark visited nodes.
 */
#ifndef LKPROBE_PICKLE_IMPL_H
#define LKPROBE_PICKLE_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "lkprobe/lk_tensor.h"

/* Caps: a hostile file fails with LK_EFORMAT instead of exhausting memory or the C stack. */
#define LK_PICKLE_MAX_STACK   (1u << 20)  /* values on the stack                        */
#define LK_PICKLE_MAX_MARKS   4096u       /* open MARKs                                 */
#define LK_PICKLE_MAX_MEMO    (1u << 22)  /* highest memo index + 1                     */
#define LK_PICKLE_MAX_OBJECTS (1u << 21)  /* values built over the VM's lifetime        */
#define LK_PICKLE_MAX_DEPTH   1000        /* container nesting when a value is inserted */
#define LK_PV_MAX_WALK        64          /* depth limit for walkers over the value graph */

typedef enum lk_pv_kind {
    LK_PV_NONE = 0,
    LK_PV_BOOL,
    LK_PV_INT,      /* fits int64                                              */
    LK_PV_BIGINT,   /* LONG wider than 64 bits: raw little-endian bytes in str */
    LK_PV_FLOAT,
    LK_PV_STR,      /* UTF-8, NUL-terminated copy                              */
    LK_PV_BYTES,
    LK_PV_TUPLE,
    LK_PV_LIST,
    LK_PV_SET,
    LK_PV_DICT,     /* ordered (insertion order) key/value pairs               */
    LK_PV_GLOBAL,   /* a class or function named by GLOBAL/STACK_GLOBAL        */
    LK_PV_OBJECT,   /* opaque result of calling/instantiating a global         */
    LK_PV_STORAGE,  /* persistent-id storage reference                          */
    LK_PV_TENSOR,
    LK_PV_KIND_COUNT
} lk_pv_kind;

/* Globals the VM understands; everything else is LK_PG_OPAQUE. */
typedef enum lk_pg {
    LK_PG_OPAQUE = 0,
    LK_PG_ORDERED_DICT,
    LK_PG_REBUILD_TENSOR,       /* _rebuild_tensor (v1)  */
    LK_PG_REBUILD_TENSOR_V2,
    LK_PG_REBUILD_PARAMETER,
    LK_PG_REBUILD_PARAMETER_STATE,
    LK_PG_PARAMETER,            /* torch.nn.parameter.Parameter */
    LK_PG_REBUILD_QTENSOR,
    LK_PG_STORAGE,              /* torch.<X>Storage; dtype in the global */
    LK_PG_COUNT
} lk_pg;

typedef struct lk_pv lk_pv;

/* A storage reference from ('storage', torch.XStorage, key, location, numel[, view]). */
typedef struct lk_pv_storage {
    lk_dtype    dtype;
    int         complex;     /* ComplexFloat/ComplexDouble: rejected when used */
    size_t      itemsize;
    const char *key;         /* borrowed from the key string value */
    int64_t     numel;
    int64_t     view_offset; /* legacy storage views: element offset into the root, else 0 */
    int64_t     view_numel;  /* -1 when not a view */
    const char *type_name;   /* "FloatStorage" (for messages) */
} lk_pv_storage;

typedef struct lk_pv_tensor {
    const lk_pv *storage;    /* LK_PV_STORAGE */
    int64_t      offset;     /* in elements */
    int          ndim;
    int64_t      shape[LK_MAX_DIMS];
    int64_t      stride[LK_MAX_DIMS];
} lk_pv_tensor;

struct lk_pv {
    lk_pv_kind kind;
    unsigned   mark;         /* scratch for walkers (0 after the VM builds it) */
    int        depth;        /* container nesting at insertion time            */
    union {
        int64_t i;           /* BOOL, INT */
        double  f;
        struct { char *s; size_t n; } str;                    /* STR, BYTES, BIGINT */
        struct { lk_pv **v; size_t n, cap; } seq;             /* TUPLE, LIST, SET */
        struct { lk_pv **k, **v; size_t n, cap; } dict;
        struct { char *module, *name; lk_pg kind; lk_dtype dtype; int complex; } global;
        /* Opaque object: what was called, with what, the BUILD state, and whatever
         * SETITEM(S)/APPEND(S) stored into it (a dict or list built on demand). */
        struct { const lk_pv *cls; const lk_pv *args; const lk_pv *state; lk_pv *items; } obj;
        lk_pv_storage storage;
        lk_pv_tensor  tensor;
    } u;
};

typedef struct lk_pickle lk_pickle;

lk_status lk_pickle_alloc(lk_pickle **out, lk_error *err);
void      lk_pickle_free(lk_pickle *vm);

/* Runs one pickle from buf until STOP.  *root is the value STOP returned and *used the
 * number of bytes consumed (including STOP).  Errors name the opcode and its byte offset. */
lk_status lk_pickle_run(lk_pickle *vm, const unsigned char *buf, size_t len, const lk_pv **root,
                        size_t *used, lk_error *err);

/* Every storage reference built so far (all runs), in creation order. */
size_t       lk_pickle_n_storages(const lk_pickle *vm);
const lk_pv *lk_pickle_storage(const lk_pickle *vm, size_t i);

/* Value lookup helpers (NULL when absent or of another kind). */
const lk_pv *lk_pv_dict_get(const lk_pv *dict, const char *key);
/* "module.name" of an opaque object's class (or of a global) into buf. */
const char  *lk_pv_class_name(const lk_pv *v, char *buf, size_t n);
const char  *lk_pv_kind_name(lk_pv_kind k);

#endif

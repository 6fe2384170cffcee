/* cmd_convert.c: `lkprobe convert MODEL -o OUT.bin`: writes the native model.bin format. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const cli_opt convert_opts[] = {
    CLI_COMMON_OPTS,
    {"--output", "-o", 1, OPT_O, "OUT.bin: destination (written atomically)"},
};
static const cli_spec convert_spec = {
    "convert", "MODEL -o OUT.bin",
    "Convert any supported model to lkprobe's native model.bin (doc/model-bin.md):\n"
    "graph, parameters (64-byte aligned, checksummed) and provenance in one file.",
    convert_opts, sizeof convert_opts / sizeof convert_opts[0],
};

int cmd_convert(int argc, char **argv) {
    cli_item   *items = calloc((size_t)argc + 1, sizeof *items);
    lk_model   *m     = NULL;
    cli_common  c;
    const char *path = NULL, *out = NULL;
    int         n = 0, rc = 1;
    memset(&c, 0, sizeof c);
    if (!items) {
        cli_error("convert", "out of memory");
        return 1;
    }
    int pr = cli_parse(&convert_spec, argc, argv, items, &n);
    if (pr) {
        rc = pr == 2 ? 0 : 1;
        goto done;
    }
    for (int i = 0; i < n; i++) {
        int a = cli_common_apply(&c, &items[i]);
        if (a < 0) goto done;
        if (a) continue;
        if (items[i].id == OPT_O && !out) out = items[i].val;
        else if (items[i].id == OPT_POSITIONAL && !path) path = items[i].val;
        else {
            cli_error("convert", "unexpected argument '%s'", items[i].val ? items[i].val : "");
            goto done;
        }
    }
    if (!path || !out) {
        cli_error("convert", "missing %s (usage: lkprobe convert %s)", !path ? "MODEL" : "-o OUT",
                  convert_spec.usage);
        goto done;
    }
    if (cli_refuse_overwrite(path, 1, &out)) goto done;
    if (cli_load_model(path, &c, &m)) goto done;
    lk_error err;
    memset(&err, 0, sizeof err);
    if (lk_model_save_native(m, out, &err) != LK_OK) {
        cli_error_lk(&err);
        goto done;
    }
    rc = 0;
done:
    lk_model_free(m);
    free(items);
    return rc;
}

/* cmd_convert.c: `lkprobe convert MODEL -o OUT.bin`: writes the native model.bin format. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const cli_opt convert_opts[] = {
    CLI_COMMON_OPTS,
    {"--output", "-o", 1, OPT_O, "OUT.bin: destination (written atomically)"},
    {"--no-pack", NULL, 0, OPT_NO_PACK, "do not store packed convolution weights (a smaller file; "
     "commands then pack at start-up)"},
};
static const cli_spec convert_spec = {
    "convert", "MODEL -o OUT.bin",
    "Convert any supported model to lkprobe's native model.bin (doc/model-bin.md):\n"
    "graph, parameters (64-byte aligned, checksummed) and provenance in one file, and the\n"
    "convolution weights packed for the engine at the model's input shape (--input-shape\n"
    "for dynamic dims), so that commands on the file start without packing.",
    convert_opts, sizeof convert_opts / sizeof convert_opts[0],
};

typedef struct conv_cfg {
    const char *path, *out;
    int         no_pack;
} conv_cfg;

static int apply_item(void *user, const cli_item *it) {
    conv_cfg *g = user;
    if (it->id == OPT_O && !g->out) g->out = it->val;
    else if (it->id == OPT_NO_PACK) g->no_pack = 1;
    else if (it->id == OPT_POSITIONAL && !g->path) g->path = it->val;
    else {
        cli_error("convert", "unexpected argument '%s'", it->val ? it->val : "");
        return 0;
    }
    return 1;
}

int cmd_convert(int argc, char **argv) {
    lk_model  *m = NULL;
    cli_common c;
    conv_cfg   g = {NULL, NULL, 0};
    int        rc = 1;
    memset(&c, 0, sizeof c);
    int pr = cli_parse_apply(&convert_spec, argc, argv, &c, apply_item, &g);
    if (pr != 1) return pr == 2 ? 0 : 1;
    const char *path = g.path, *out = g.out;
    if (!path || !out) {
        cli_error("convert", "missing %s (usage: lkprobe convert %s)", !path ? "MODEL" : "-o OUT",
                  convert_spec.usage);
        goto done;
    }
    if (cli_refuse_overwrite(path, 1, &out)) goto done;
    if (cli_load_model(path, &c, &m)) goto done;
    lk_error err;
    memset(&err, 0, sizeof err);
    if (!g.no_pack) cli_prepack(path, m);
    if (lk_model_save_native(m, out, &err) != LK_OK) {
        cli_error_lk(&err);
        goto done;
    }
    rc = 0;
done:
    lk_model_free(m);
    return rc;
}

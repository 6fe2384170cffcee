/* main.c: the lkprobe command: dispatches to the subcommand table and owns the exit code. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lkprobe/lk_fftconv.h"

static const cli_cmd commands[] = {
    {"info", cmd_info, "describe a model: inputs, outputs, layers, parameters, MACs, receptive fields"},
    {"forward", cmd_forward, "run a model on a .npy batch and write outputs or intermediate tensors"},
    {"convert", cmd_convert, "convert any supported model to the native model.bin format"},
    {"erf", cmd_erf, "effective receptive field maps, area ratios and figures (RepLKNet protocol)"},
    {"filters", cmd_filters, "CNN-Filter-DB statistics, PCA drift, filter database, weight spectra"},
    {"report", cmd_report, "one self-contained HTML report (+ LaTeX tables, PDF figures) of a model"},
    {"kernels", cmd_kernels, "large-kernel anatomy: mean |w| maps, radial energy, effective size, FFT spectra"},
    {"bench", cmd_bench, "time load, plan, first and warm forward (and backward); GFLOP/s vs sgemm peak"},
    {"reparam", cmd_reparam, "structural re-parameterisation: fold BN, merge parallel conv branches into one kernel"},
    {"cam", cmd_cam, "class-activation maps (Grad-CAM family), input-gradient attributions and RISE"},
    {"linscope", cmd_linscope, "LinearScope: F(x0) = A(x0) x0 + c(x0); bias, rows, columns, singular vectors"},
    {"ntk", cmd_ntk, "empirical neural tangent kernel: kernel, eigen-spectrum, power-law alpha"},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f) {
    fprintf(f, "usage: lkprobe [--help] [--version] COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\nRun 'lkprobe COMMAND --help' for the options of a command.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return EXIT_FAILURE;
    }
    const char *a = argv[1];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
        usage(stdout);
        return EXIT_SUCCESS;
    }
    if (strcmp(a, "--version") == 0) {
        printf("lkprobe %s\n", LK_VERSION);
        return EXIT_SUCCESS;
    }
    /* Large depthwise and long 1-D convolutions run as FFT convolutions where the cost model
     * says so (fftconv/, lk_fftconv.h); LKPROBE_NO_FFTCONV=1 keeps every conv direct. */
    const char *no_fft = getenv("LKPROBE_NO_FFTCONV");
    if (!no_fft || strcmp(no_fft, "1") != 0) lk_fftconv_register(NULL);
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, a) == 0)
            return commands[i].run(argc - 2, argv + 2) ? EXIT_FAILURE : EXIT_SUCCESS;
    if (a[0] == '-') cli_error(a, "unknown option (see lkprobe --help)");
    else cli_error(a, "unknown command (see lkprobe --help)");
    return EXIT_FAILURE;
}

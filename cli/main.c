/* main.c: the lkprobe command: dispatches to the subcommand table and owns the exit code. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cblas.h>

#include "cli.h"
#include "lkprobe/lk_fftconv.h"

/* OpenBLAS's pthread build starts its thread server in a library constructor, and an idle
 * server thread spins in sched_yield for its timeout (about 2^28 cycles, 0.1 s) before it
 * sleeps: on a 2-core machine it takes a core from loading and the first forward of every
 * command (ResNet-50 from model.bin: whole process 140-154 ms against 120-125 ms without it).
 * lkprobe runs OpenBLAS single-threaded inside its own pool (lk_sgemm), so the server is
 * stopped at once.  Weak: other OpenBLAS builds (serial, OpenMP) do not have it. */
extern int blas_thread_shutdown_(void) __attribute__((weak));

static void openblas_serial(void) {
    openblas_set_num_threads(1);
    if (blas_thread_shutdown_) blas_thread_shutdown_();
}

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

/* The FFTW wisdom file (lk_fftconv.h) in buf, or NULL for none: $LKPROBE_FFTW_WISDOM ("off"
 * or empty: none), else fftwf-wisdom-<host> in $XDG_CACHE_HOME/lkprobe or ~/.cache/lkprobe.
 * The host name keeps nodes sharing one home directory from mixing wisdom of different CPUs. */
static const char *wisdom_file(char *buf, size_t n) {
    const char *env = getenv("LKPROBE_FFTW_WISDOM");
    if (env) return *env && strcmp(env, "off") != 0 ? env : NULL;
    char host[256] = "unknown";
    int  r         = gethostname(host, sizeof host);
    host[sizeof host - 1] = 0;
    if (r != 0 || !*host) strcpy(host, "unknown");
    for (char *c = host; *c; c++)
        if (*c == '/') *c = '_';
    const char *xdg  = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    int         w    = -1;
    if (xdg && *xdg) w = snprintf(buf, n, "%s/lkprobe/fftwf-wisdom-%s", xdg, host);
    else if (home && *home) w = snprintf(buf, n, "%s/.cache/lkprobe/fftwf-wisdom-%s", home, host);
    return w > 0 && (size_t)w < n ? buf : NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return EXIT_FAILURE;
    }
    openblas_serial();
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
     * says so (fftconv/, lk_fftconv.h); LKPROBE_NO_FFTCONV=1 keeps every conv direct.  FFTW's
     * measured plans persist in a per-host wisdom file, so only a machine's first run pays
     * for the measurement. */
    const char *no_fft = getenv("LKPROBE_NO_FFTCONV");
    if (!no_fft || strcmp(no_fft, "1") != 0) {
        char              wbuf[4096];
        lk_fftconv_params fp = lk_fftconv_params_default();
        fp.wisdom_path       = wisdom_file(wbuf, sizeof wbuf);
        lk_fftconv_register(&fp);
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, a) == 0)
            return commands[i].run(argc - 2, argv + 2) ? EXIT_FAILURE : EXIT_SUCCESS;
    if (a[0] == '-') cli_error(a, "unknown option (see lkprobe --help)");
    else cli_error(a, "unknown command (see lkprobe --help)");
    return EXIT_FAILURE;
}

#!/usr/bin/env node
// Real-model conformance: the ONNX nets fetched by tools/fetch-npm-models.sh run through
// `lkprobe forward` and through onnxruntime-node on the same seeded inputs, every graph output
// compared; then `info`, `erf`, `filters` and `report` run with their default options where
// they apply.  Exit 77 (meson: skipped) with a message when the data or the runtime is absent.
//
// Tolerances: FP32 models <= 1e-4 of the output's max |value|; FP16 models <= four half FP16
// steps at the output's max, i.e. max|y| * 2^-9 (1.95e-3 relative).  Why not half a step:
// onnxruntime (1.20, CPU) has float kernels only for Conv, Resize, Sigmoid..., so it computes
// chains of them in float32 and drops the casts between them (its outputs are not
// half-representable: e.g. 2.0552940 on input.1252), but it rounds to half wherever a value
// enters a node it runs in float16 (Concat, which every U-Net decoder stage uses) and at the
// file's explicit Casts around Resize.  lkprobe computes everything in float32.  Probing
// intermediates (extra graph outputs) agrees to within half a step at each probe (conv_in:
// 3.9e-3 at 8.56, step 7.8e-3), and the roundings accumulate over IS-Net's ~100 convs to
// 1.46e-3 (uniform) and 1.26e-3 (normal) of max|y| on the side outputs; rounding every
// float16-typed value instead (the file's nominal semantics) gives 3.2e-3, rounding only
// Concat inputs 1.3e-3-1.9e-3, so neither reproduces onnxruntime's schedule of roundings
// better.  Both get an absolute floor of 2^-22 (2.4e-7): onnxruntime's
// Sigmoid (MLAS's rational approximation of the logistic) is off by up to 1.2e-7 absolute,
// which is the whole difference on the PaddleOCR detector, whose sigmoid output peaks at 5e-6
// on random inputs (lkprobe's sigmoid agrees with the double-precision logistic to 1.5e-13).
//
// Environment: LK_SOURCE_ROOT, LK_BUILD_ROOT (set by meson); LK_NPM_ONLY=substring limits the
// models; LK_NPM_QUICK=1 skips the analyses.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');

const src = process.env.LK_SOURCE_ROOT || path.join(__dirname, '..', '..');
const bld = process.env.LK_BUILD_ROOT || path.join(src, 'build');
const npm = path.join(src, 'data', 'npm');
const lkprobe = path.join(bld, 'cli', 'lkprobe');
const skip = (why) => { console.log(`SKIP: ${why} (run tools/fetch-npm-models.sh)`); process.exit(77); };

let ort;
try {
    ort = require(path.join(npm, 'ort', 'node_modules', 'onnxruntime-node'));
} catch (e) {
    skip(`onnxruntime-node is not in ${npm}/ort`);
}

// name, file, input shape for the run, fp16, analyses to run, input kind
const MODELS = [
    { name: 'ppocr-det', file: 'ocr-models/assets/ch_PP-OCRv4_det_infer.onnx', shape: [1, 3, 320, 320] },
    { name: 'ppocr-rec', file: 'ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx', shape: [1, 3, 48, 320] },
    { name: 'ppocr-cls', file: 'ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx', shape: [1, 3, 48, 192] },
    { name: 'isnet-fp16', file: 'isnet/isnet_fp16.onnx', shape: [1, 3, 1024, 1024], fp16: true },
];

// Seeded uniform [0, 1) (xorshift32) and, from it, standard normal (Box-Muller).
function rng(seed) {
    let s = (seed >>> 0) || 1;
    return () => {
        s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
        return s / 4294967296;
    };
}
function input(shape, kind, seed) {
    const n = shape.reduce((a, b) => a * b, 1), u = rng(seed), x = new Float32Array(n);
    for (let i = 0; i < n; i++) {
        if (kind === 'uniform') x[i] = u();
        else x[i] = Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
    }
    return x;
}

function writeNpy(file, shape, data) {
    let h = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
    while ((10 + h.length + 1) % 64) h += ' ';
    h += '\n';
    const head = Buffer.alloc(10);
    Buffer.from('\x93NUMPY', 'latin1').copy(head, 0);
    head[6] = 1; head[7] = 0; head.writeUInt16LE(h.length, 8);
    fs.writeFileSync(file, Buffer.concat([head, Buffer.from(h, 'latin1'), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]));
}
function readNpy(file) {
    const b = fs.readFileSync(file), hl = b.readUInt16LE(8), h = b.toString('latin1', 10, 10 + hl);
    if (!h.includes("'<f4'")) throw new Error(`${file}: not float32 (${h})`);
    const shape = (h.match(/\(([^)]*)\)/)[1]).split(',').filter((t) => t.trim()).map(Number);
    const off = 10 + hl, data = new Float32Array(b.buffer.slice(b.byteOffset + off, b.byteOffset + b.length));
    return { shape, data };
}

function run(args, opts) {
    return execFileSync(lkprobe, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20, ...opts });
}

async function compare(m, tmp, kind, seed) {
    const x = input(m.shape, kind, seed), xf = path.join(tmp, `${m.name}-x.npy`);
    writeNpy(xf, m.shape, x);
    const sess = await ort.InferenceSession.create(path.join(npm, m.file), { graphOptimizationLevel: 'all', intraOpNumThreads: 2 });
    const feeds = {};
    feeds[sess.inputNames[0]] = new ort.Tensor('float32', x, m.shape);
    const ref = await sess.run(feeds);
    const args = ['forward', path.join(npm, m.file), '--threads', '2', '--input-shape', m.shape.join(','), '--input', xf];
    sess.outputNames.forEach((o, k) => args.push('--tensor', o, '-o', path.join(tmp, `${m.name}-y${k}.npy`)));
    run(args);
    let worst = 0, worstAbs = 0, ok = true;
    sess.outputNames.forEach((o, k) => {
        const got = readNpy(path.join(tmp, `${m.name}-y${k}.npy`)), want = ref[o];
        if (got.shape.join() !== want.dims.join()) {
            console.log(`FAIL ${m.name} ${o}: shape [${got.shape}] vs onnxruntime [${want.dims}]`);
            ok = false;
            return;
        }
        let amax = 0, dmax = 0, at = 0;
        for (let i = 0; i < want.data.length; i++) {
            amax = Math.max(amax, Math.abs(want.data[i]));
            const d = Math.abs(want.data[i] - got.data[i]);
            if (!(d <= dmax)) { dmax = d; at = i; }
        }
        const tol = Math.max(m.fp16 ? amax * Math.pow(2, -9) : 1e-4 * amax, Math.pow(2, -22)), rel = amax > 0 ? dmax / amax : dmax;
        worst = Math.max(worst, rel);
        worstAbs = Math.max(worstAbs, dmax);
        if (!(dmax <= tol)) {
            console.log(`FAIL ${m.name} ${o} (${kind}): max |diff| ${dmax.toExponential(3)} at ${at} ` +
                        `(lkprobe ${got.data[at]}, onnxruntime ${want.data[at]}), tolerance ${tol.toExponential(3)}`);
            ok = false;
        }
    });
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${m.name} forward (${kind}, seed ${seed}): ${sess.outputNames.length} outputs, ` +
                `max |diff| ${worstAbs.toExponential(3)}, max |diff| / max |y| = ${worst.toExponential(3)}`);
    return ok;
}

function analyses(m, tmp) {
    const f = path.join(npm, m.file), shape = ['--input-shape', m.shape.join(',')];
    const steps = [
        ['info', ['info', f, ...shape]],
        ['filters', ['filters', f, '--json']],
        ['erf', ['erf', f, ...shape, '--noise', '2', '--size', `${m.shape[2]}x${m.shape[3]}`, '-o', path.join(tmp, `${m.name}-erf.png`)]],
        ['report', ['report', f, ...shape, '-o', path.join(tmp, `${m.name}.html`)]],
    ];
    let ok = true;
    for (const [what, args] of steps) {
        const t0 = Date.now();
        try {
            run(args, { timeout: 600e3 });
            console.log(`ok   ${m.name} ${what} (${((Date.now() - t0) / 1e3).toFixed(1)} s)`);
        } catch (e) {
            console.log(`FAIL ${m.name} ${what}: ${(e.stderr || e.message).toString().trim().split('\n').slice(-3).join(' | ')}`);
            ok = false;
        }
    }
    return ok;
}

(async () => {
    const only = process.env.LK_NPM_ONLY, quick = process.env.LK_NPM_QUICK === '1';
    const models = MODELS.filter((m) => (!only || m.name.includes(only)) && fs.existsSync(path.join(npm, m.file)));
    if (!models.length) skip(`no fetched models under ${npm}`);
    if (!fs.existsSync(lkprobe)) skip(`${lkprobe} is not built`);
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lk-npm-'));
    let ok = true;
    try {
        for (const m of models) {
            ok = (await compare(m, tmp, 'uniform', 1)) && ok;
            ok = (await compare(m, tmp, 'normal', 2)) && ok;
            if (!quick) ok = analyses(m, tmp) && ok;
        }
    } finally {
        fs.rmSync(tmp, { recursive: true, force: true });
    }
    process.exit(ok ? 0 : 1);
})().catch((e) => { console.log(`FAIL: ${e.stack || e}`); process.exit(1); });

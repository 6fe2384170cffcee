// ort_bench.js: times onnxruntime-node on one model, as `lkprobe bench --json` times lkprobe.
// Usage: node bench/ort_bench.js MODEL.onnx SHAPE(1,3,48,192) THREADS REPS
// Prints one JSON line: {"load_s","first_s","best_s","median_s","threads","ort_version"}.
// onnxruntime-node comes from npm (`npm install --ignore-scripts onnxruntime-node`); point
// NODE_PATH at the node_modules folder that holds it.
'use strict';
const ort = require('onnxruntime-node');

function now() { return Number(process.hrtime.bigint()) / 1e9; }

async function main() {
    const [model, shapeArg, threadsArg, repsArg] = process.argv.slice(2);
    const shape = shapeArg.split(',').map(Number);
    const threads = Number(threadsArg), reps = Number(repsArg);
    let t0 = now();
    const sess = await ort.InferenceSession.create(model, {
        intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential',
        graphOptimizationLevel: 'all',
    });
    const load = now() - t0;
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    let seed = 0x5eedn;
    for (let i = 0; i < n; i++) {  // the same seeded pattern as lkprobe bench (LCG, [-1, 1))
        seed = (seed * 6364136223846793005n + 1442695040888963407n) & 0xffffffffffffffffn;
        data[i] = Number((seed >> 40n) & 0xffffffn) / 8388608 - 1;
    }
    const feeds = {[sess.inputNames[0]]: new ort.Tensor('float32', data, shape)};
    t0 = now();
    await sess.run(feeds);
    const first = now() - t0;
    const ts = [];
    for (let r = 0; r < reps; r++) {
        t0 = now();
        await sess.run(feeds);
        ts.push(now() - t0);
    }
    ts.sort((a, b) => a - b);
    const median = ts.length % 2 ? ts[(ts.length - 1) / 2] : 0.5 * (ts[ts.length / 2 - 1] + ts[ts.length / 2]);
    console.log(JSON.stringify({load_s: load, first_s: first, best_s: ts[0], median_s: median,
                                threads, ort_version: require('onnxruntime-node/package.json').version}));
}
main().catch((e) => { console.error(e.message || e); process.exit(1); });

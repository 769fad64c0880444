#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// The engine benchmark's ONNX Runtime peer: time ONNX models (tails written by
// `tailgate-model extract`) with onnxruntime-node's CPU execution provider.
//
// Usage: node bench/engine/ort_bench.js [--threads T] [--min-time S] [--min-runs N] [--max-runs N]
//                                [--warmup W] [--warmup-time S] MODEL.onnx...
// For each model: one session (CPU EP, intraOpNumThreads = T, interOpNumThreads = 1,
// sequential execution, graph optimization level "all"), a fixed random input of the model's
// input shape (dim 0 is the batch), untimed runs (at least one, then until --warmup-time
// seconds or W runs), then timed runs until both S seconds and N runs are reached (at most
// --max-runs). Prints one JSON object per model and line:
//   images_per_s  batch / median latency; p50_ms, p99_ms  per run (nearest rank);
//   cpu_util      process CPU time / wall time over the timed runs (~T when T threads work
//                 or spin: the check that the requested threads are really used);
//   os_threads    threads of this process after the runs (/proc/self/task).
// --dump DIR: run once instead and write each output's float32 data to DIR/<name>.bin (for
// bench/engine/torch_bench.py --check).
// onnxruntime-node is looked up in build/peer/node_modules (scripts/deps.sh installs it there).
'use strict';

const fs = require('fs');
const path = require('path');

function loadOrt() {
  const root = path.resolve(__dirname, '..', '..');
  const candidates = [path.join(root, 'build', 'peer', 'node_modules', 'onnxruntime-node'),
    'onnxruntime-node'];
  for (const c of candidates) {
    try {
      return require(c);
    } catch (e) { /* next */ }
  }
  process.stderr.write('ort_bench: onnxruntime-node not found (run scripts/deps.sh)\n');
  process.exit(77);
}

function usage(msg) {
  process.stderr.write(`ort_bench: ${msg}\nUsage: node bench/engine/ort_bench.js [--threads T] ` +
    '[--min-time S] [--min-runs N] [--max-runs N] [--warmup W] [--warmup-time S] MODEL.onnx...\n');
  process.exit(2);
}

function parseArgs(argv) {
  const o = { threads: 2, minTime: 1.0, minRuns: 5, maxRuns: 100000, warmup: 10, warmupTime: 0.2,
    dump: null, models: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = () => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v < 0) usage(`${a}: '${argv[i]}' is not a number`);
      return v;
    };
    if (a === '--threads') o.threads = num();
    else if (a === '--min-time') o.minTime = num();
    else if (a === '--min-runs') o.minRuns = num();
    else if (a === '--max-runs') o.maxRuns = num();
    else if (a === '--warmup') o.warmup = num();
    else if (a === '--warmup-time') o.warmupTime = num();
    else if (a === '--dump') o.dump = argv[++i];
    else if (a.startsWith('--')) usage(`unknown option '${a}'`);
    else o.models.push(a);
  }
  if (o.models.length === 0) usage('missing MODEL');
  if (!(o.threads >= 1)) usage('--threads must be >= 1');
  return o;
}

function osThreads() {
  try {
    return fs.readdirSync('/proc/self/task').length;
  } catch (e) {
    return -1;
  }
}

// Deterministic input in [0, 1): the same xorshift as tailgate-model bench.
function fillInput(a) {
  let x = 2463534242;
  for (let i = 0; i < a.length; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    a[i] = (x >>> 8) / 16777216;
  }
}

async function benchOne(ort, file, o) {
  const t0 = performance.now();
  const sess = await ort.InferenceSession.create(file, {
    executionProviders: ['cpu'],
    intraOpNumThreads: o.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const sessionMs = performance.now() - t0;
  const meta = sess.inputMetadata ? sess.inputMetadata[0] : null;
  if (sess.inputNames.length !== 1 || !meta || !meta.shape ||
      meta.shape.some((d) => typeof d !== 'number' || d < 1))
    throw new Error(`${file}: want one input with fixed dims, got ${JSON.stringify(meta)}`);
  const shape = meta.shape;
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  fillInput(data);
  const feeds = { [sess.inputNames[0]]: new ort.Tensor('float32', data, shape) };
  if (o.dump) {	// one run; each output's float32 data to DIR/<output name, sanitized>.bin
    const res = await sess.run(feeds);
    fs.mkdirSync(o.dump, { recursive: true });
    for (const name of sess.outputNames)
      fs.writeFileSync(path.join(o.dump, name.replace(/[^A-Za-z0-9._-]/g, '_') + '.bin'),
        Buffer.from(res[name].data.buffer, res[name].data.byteOffset, res[name].data.byteLength));
    await sess.release();
    return { runtime: 'ort', model: file, batch: shape[0], dumped: sess.outputNames };
  }

  // Warm up: at least one run, then until --warmup-time has passed or --warmup runs.
  const wu0 = performance.now();
  for (let i = 0; i < Math.max(1, o.warmup); i++) {
    if (i > 0 && (performance.now() - wu0) / 1e3 >= o.warmupTime) break;
    await sess.run(feeds);
  }
  const lat = [];
  const cpu0 = process.cpuUsage();
  const w0 = performance.now();
  for (;;) {
    const a = performance.now();
    if (lat.length >= o.maxRuns ||
        (lat.length >= o.minRuns && (a - w0) / 1e3 >= o.minTime)) break;
    await sess.run(feeds);
    lat.push(performance.now() - a);
  }
  const wall = (performance.now() - w0) / 1e3;
  const cpu = process.cpuUsage(cpu0);
  const threads = osThreads();
  await sess.release();
  lat.sort((x, y) => x - y);
  const pct = (p) => lat[Math.max(0, Math.ceil((p / 100) * lat.length) - 1)];
  const p50 = pct(50);
  return {
    runtime: 'ort',
    model: file,
    batch: shape[0],
    threads: o.threads,
    runs: lat.length,
    session_ms: +sessionMs.toFixed(1),
    images_per_s: +(shape[0] / (p50 / 1e3)).toFixed(1),
    p50_ms: +p50.toFixed(4),
    p99_ms: +pct(99).toFixed(4),
    cpu_util: +((cpu.user + cpu.system) / 1e6 / wall).toFixed(2),
    os_threads: threads,
  };
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const ort = loadOrt();
  let failed = 0;
  for (const f of o.models) {
    try {
      const r = await benchOne(ort, f, o);
      r.ort_version = ort.env && ort.env.versions ? ort.env.versions.common : undefined;
      process.stdout.write(JSON.stringify(r) + '\n');
    } catch (e) {
      failed++;
      process.stdout.write(JSON.stringify({ runtime: 'ort', model: f, error: String(e.message || e) }) + '\n');
    }
  }
  process.exit(failed ? 1 : 0);
}

main();

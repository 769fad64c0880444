#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// The engine benchmark's ONNX Runtime peer: time ONNX models (tails written by
// `tailgate-model extract`) with onnxruntime-node's CPU execution provider.
//
// Usage: node bench/engine/ort_bench.js [--threads T] [--min-time S] [--min-runs N] [--max-runs N]
//                                [--warmup W] [--warmup-time S] MODEL.onnx...
//        node bench/engine/ort_bench.js --dump DIR [--input X.npy] MODEL.onnx
//        node bench/engine/ort_bench.js --profile DIR MODEL.onnx...
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
// bench/engine/torch_bench.py --check). With --input X.npy (f32, C order, dim 0 = samples, the
// other dims the model's), the samples of X.npy are run instead, a model batch at a time (the
// last one padded with zeros), and DIR/<name>.bin holds the outputs of every sample in order
// (for bench/engine/int8_check.py).
// --profile DIR [--profile-runs N]: run N times (2) with ORT's profiler on (session option enableProfiling, the JSON
// it writes under DIR) and print which operators ran, by kind: {"profile": {"QLinearConv": 11,
// ...}} counts the graph nodes of each operator type ORT executed after its graph
// optimizations (each node once, whatever the runs), with "int8_convgemm" (QLinearConv,
// ConvInteger, QGemm, QLinearMatMul, MatMulInteger, MatMulIntegerToFloat,
// DynamicQuantizeMatMul: Conv/Gemm/MatMul run on 8-bit data) and "fp32_convgemm" (Conv,
// FusedConv, NchwcConv, Gemm, FusedGemm, MatMul, FusedMatMul: the same run in float, as ORT
// does where it did not fuse a DequantizeLinear -> Conv pattern).
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
    dump: null, input: null, profile: null, profileRuns: 2, models: [] };
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
    else if (a === '--input') o.input = argv[++i];
    else if (a === '--profile') o.profile = argv[++i];
    else if (a === '--profile-runs') o.profileRuns = num();
    else if (a.startsWith('--')) usage(`unknown option '${a}'`);
    else o.models.push(a);
  }
  if (o.models.length === 0) usage('missing MODEL');
  if (!(o.threads >= 1)) usage('--threads must be >= 1');
  if (o.input && !o.dump) usage('--input needs --dump');
  if (!Number.isInteger(o.profileRuns) || o.profileRuns < 1) usage('--profile-runs must be an integer >= 1');
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


// A .npy of float32 in C order: { shape, data }.
function readNpy(file) {
  const b = fs.readFileSync(file);
  if (b.length < 10 || b.toString('latin1', 0, 6) !== '\x93NUMPY')
    throw new Error(`${file}: not a .npy file`);
  const hl = b[6] === 1 ? b.readUInt16LE(8) : b.readUInt32LE(8);
  const off = b[6] === 1 ? 10 + hl : 12 + hl;
  const h = b.toString('latin1', b[6] === 1 ? 10 : 12, off);
  const descr = /'descr':\s*'([^']*)'/.exec(h);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(h);
  if (!descr || descr[1] !== '<f4' || /'fortran_order':\s*True/.test(h) || !shape)
    throw new Error(`${file}: want little-endian float32 in C order, header ${h.trim()}`);
  const dims = shape[1].split(',').map((x) => x.trim()).filter((x) => x).map(Number);
  const n = dims.reduce((x, y) => x * y, 1);
  if (b.length - off < 4 * n) throw new Error(`${file}: truncated`);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = b.readFloatLE(off + 4 * i);
  return { shape: dims, data };
}

// Every sample of X.npy through the model, a model batch at a time; the outputs concatenated.
async function runSamples(ort, sess, shape, file) {
  const x = readNpy(file);
  const per = shape.slice(1).reduce((a, b) => a * b, 1);
  if (x.shape.length !== shape.length || x.shape.slice(1).join() !== shape.slice(1).join())
    throw new Error(`${file}: shape [${x.shape}] does not fit the model's [${shape}]`);
  const n = x.shape[0];
  const outs = {};
  for (let s0 = 0; s0 < n; s0 += shape[0]) {
    const buf = new Float32Array(shape[0] * per);	/* zeros past the last sample */
    buf.set(x.data.subarray(s0 * per, Math.min(n, s0 + shape[0]) * per));
    const res = await sess.run({ [sess.inputNames[0]]: new ort.Tensor('float32', buf, shape) });
    for (const name of sess.outputNames) {
      const d = res[name].data;
      const rows = Math.min(n - s0, shape[0]);
      (outs[name] = outs[name] || []).push(d.slice(0, (d.length / shape[0]) * rows));
    }
  }
  return outs;
}

const INT8_CONVGEMM = ['QLinearConv', 'ConvInteger', 'QGemm', 'QLinearMatMul', 'MatMulInteger',
  'MatMulIntegerToFloat', 'DynamicQuantizeMatMul'];
const FP32_CONVGEMM = ['Conv', 'FusedConv', 'NchwcConv', 'Gemm', 'FusedGemm', 'MatMul',
  'FusedMatMul'];

// The profile ORT wrote under dir (the newest file of this process's prefix): op -> nodes.
function readProfile(dir, prefix) {
  const files = fs.readdirSync(dir).filter((f) => f.startsWith(prefix) && f.endsWith('.json'));
  if (files.length === 0) throw new Error(`no profile written under ${dir}`);
  files.sort();
  const ev = JSON.parse(fs.readFileSync(path.join(dir, files[files.length - 1]), 'utf8'));
  const nodes = new Map();
  for (const e of ev) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || !e.args || !e.args.op_name)
      continue;
    nodes.set(e.name, e.args.op_name);
  }
  const ops = {};
  for (const op of nodes.values()) ops[op] = (ops[op] || 0) + 1;
  const sum = (list) => list.reduce((a, k) => a + (ops[k] || 0), 0);
  return { file: path.join(dir, files[files.length - 1]), profile: ops,
    int8_convgemm: sum(INT8_CONVGEMM), fp32_convgemm: sum(FP32_CONVGEMM) };
}

async function benchOne(ort, file, o) {
  const t0 = performance.now();
  const prefix = `ort_profile_${process.pid}_${path.basename(file).replace(/[^A-Za-z0-9._-]/g, '_')}`;
  if (o.profile) fs.mkdirSync(o.profile, { recursive: true });
  const sess = await ort.InferenceSession.create(file, {
    executionProviders: ['cpu'],
    intraOpNumThreads: o.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    ...(o.profile ? { enableProfiling: true, profileFilePrefix: path.join(o.profile, prefix) } : {}),
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
  if (o.profile) {	// o.profileRuns runs profiled; the operators of the nodes that ran
    for (let i = 0; i < o.profileRuns; i++) await sess.run(feeds);
    sess.endProfiling();
    await sess.release();
    return { runtime: 'ort', model: file, batch: shape[0], ...readProfile(o.profile, prefix) };
  }
  if (o.dump) {	// each output's float32 data to DIR/<output name, sanitized>.bin
    const res = {};
    if (o.input) {
      const outs = await runSamples(ort, sess, shape, o.input);
      for (const name of sess.outputNames) {
        const parts = outs[name];
        const all = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
        let at = 0;
        for (const p of parts) { all.set(p, at); at += p.length; }
        res[name] = { data: all };
      }
    } else {
      Object.assign(res, await sess.run(feeds));
    }
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

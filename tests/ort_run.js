#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// Runs an ONNX model in ONNX Runtime (onnxruntime-node, CPU) on one f32 .npy input and writes
// its first graph output as an f32 .npy: the independent runtime that tests/model_variants.sh
// checks `tailgate-model drop`'s files with (a standard ONNX file runs anywhere, not only in
// tailgate's engine).
// Usage: node tests/ort_run.js MODEL.onnx INPUT.npy OUTPUT.npy
// Exit status: 0 written, 1 an error (said on stderr), 77 onnxruntime-node is not installed
// (scripts/deps.sh puts it in build/peer/node_modules).
'use strict';

const fs = require('fs');
const path = require('path');

function loadOrt() {
  const root = path.resolve(__dirname, '..');
  for (const c of [path.join(root, 'build', 'peer', 'node_modules', 'onnxruntime-node'),
    'onnxruntime-node']) {
    try {
      return require(c);
    } catch (e) { /* next */ }
  }
  process.stderr.write('ort_run: onnxruntime-node not found (run scripts/deps.sh)\n');
  process.exit(77);
}

// An .npy of little-endian f32 in C order: its shape and data.
function readNpy(file) {
  const b = fs.readFileSync(file);
  if (b.length < 10 || b.toString('latin1', 1, 6) !== 'NUMPY')
    throw new Error(`${file}: not an .npy file`);
  const hlen = b[6] === 1 ? b.readUInt16LE(8) : b.readUInt32LE(8);
  const off = b[6] === 1 ? 10 + hlen : 12 + hlen;
  const hdr = b.toString('latin1', b[6] === 1 ? 10 : 12, off);
  if (!/'descr':\s*'<f4'/.test(hdr) || /'fortran_order':\s*True/.test(hdr))
    throw new Error(`${file}: want little-endian f32 in C order (${hdr.trim()})`);
  const m = /'shape':\s*\(([^)]*)\)/.exec(hdr);
  if (!m)
    throw new Error(`${file}: no shape in the header`);
  const shape = m[1].split(',').map((s) => s.trim()).filter((s) => s).map(Number);
  const n = shape.reduce((a, x) => a * x, 1);
  if (b.length - off !== 4 * n)
    throw new Error(`${file}: ${b.length - off} data bytes for ${n} floats`);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++)
    data[i] = b.readFloatLE(off + 4 * i);
  return { shape, data };
}

function writeNpy(file, dims, data) {
  let hdr = `{'descr': '<f4', 'fortran_order': False, 'shape': (${dims.join(', ')}${dims.length === 1 ? ',' : ''}), }`;
  const pad = 64 - ((10 + hdr.length + 1) % 64);
  hdr += ' '.repeat(pad % 64) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(hdr.length, 8);
  const body = Buffer.alloc(4 * data.length);
  for (let i = 0; i < data.length; i++)
    body.writeFloatLE(data[i], 4 * i);
  fs.writeFileSync(file, Buffer.concat([head, Buffer.from(hdr, 'latin1'), body]));
}

async function main() {
  const [model, input, output] = process.argv.slice(2);
  if (!output || process.argv.length !== 5) {
    process.stderr.write('Usage: node tests/ort_run.js MODEL.onnx INPUT.npy OUTPUT.npy\n');
    process.exit(1);
  }
  const ort = loadOrt();
  const x = readNpy(input);
  const s = await ort.InferenceSession.create(model, { executionProviders: ['cpu'],
    intraOpNumThreads: 1, interOpNumThreads: 1 });
  const feeds = { [s.inputNames[0]]: new ort.Tensor('float32', x.data, x.shape) };
  const out = await s.run(feeds);
  const y = out[s.outputNames[0]];
  writeNpy(output, y.dims, y.data);
}

main().catch((e) => {
  process.stderr.write(`ort_run: ${e.message}\n`);
  process.exit(1);
});

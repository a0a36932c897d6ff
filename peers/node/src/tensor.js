'use strict';
// peerlearn.v1.Tensor <-> JS: dtype + shape + little-endian bytes, C order. Decoding checks everything
// a buggy or hostile sender can get wrong and throws INVALID_ARGUMENT with a readable message.

const { invalid } = require('./errors');

const DTYPE = { FLOAT32: 1, FLOAT64: 2, INT32: 3, INT64: 4 };
const ITEMSIZE = { 1: 4, 2: 8, 3: 4, 4: 8 };
const NAMES = { 1: 'FLOAT32', 2: 'FLOAT64', 3: 'INT32', 4: 'INT64' };
const MAX_ELEMENTS = 1 << 22;
const MAX_BATCH = 4096;

/** Decode a Tensor message into { dtype, shape, values } (values: an Array of Numbers). */
function decode(t, name) {
  if (t === null || t === undefined) throw invalid(`${name}: missing tensor`);
  const dtype = Number(t.dtype);
  const size = ITEMSIZE[dtype];
  if (!size) throw invalid(`${name}: unsupported dtype ${t.dtype}; expected one of FLOAT32, FLOAT64, INT32, INT64`);
  const shape = (t.shape || []).map(Number);
  if (shape.some((d) => d < 0 || !Number.isFinite(d))) throw invalid(`${name}: negative dimension in shape [${shape}]`);
  const count = shape.reduce((a, b) => a * b, 1);
  if (count > MAX_ELEMENTS) throw invalid(`${name}: ${count} elements exceed the limit of ${MAX_ELEMENTS}`);
  const data = t.data || Buffer.alloc(0);
  if (data.length !== count * size) {
    throw invalid(`${name}: shape [${shape}] of ${NAMES[dtype]} needs ${count * size} bytes, got ${data.length}`);
  }
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const values = new Array(count);
  for (let i = 0; i < count; i++) {
    if (dtype === DTYPE.FLOAT32) values[i] = view.getFloat32(4 * i, true);
    else if (dtype === DTYPE.FLOAT64) values[i] = view.getFloat64(8 * i, true);
    else if (dtype === DTYPE.INT32) values[i] = view.getInt32(4 * i, true);
    else values[i] = Number(view.getBigInt64(8 * i, true));
  }
  return { dtype, shape, values };
}

function encode(values, shape, dtype) {
  const size = ITEMSIZE[dtype];
  const buf = Buffer.alloc(values.length * size);
  for (let i = 0; i < values.length; i++) {
    if (dtype === DTYPE.FLOAT32) buf.writeFloatLE(values[i], 4 * i);
    else if (dtype === DTYPE.FLOAT64) buf.writeDoubleLE(values[i], 8 * i);
    else if (dtype === DTYPE.INT32) buf.writeInt32LE(values[i], 4 * i);
    else buf.writeBigInt64LE(BigInt(values[i]), 8 * i);
  }
  return { dtype, shape, data: buf };
}

const isFloat = (dtype) => dtype === DTYPE.FLOAT32 || dtype === DTYPE.FLOAT64;
const isInt = (dtype) => dtype === DTYPE.INT32 || dtype === DTYPE.INT64;

/** A batch of observations, shape (B, ...obsShape), float, finite -> Array of B rows. */
function checkStates(t, obsShape, name) {
  const { dtype, shape, values } = decode(t, name);
  const want = obsShape.join(', ');
  if (shape.length !== 1 + obsShape.length || obsShape.some((d, i) => shape[i + 1] !== d)) {
    throw invalid(`${name}: expected shape (B, ${want}), got (${shape.join(', ')})`);
  }
  if (shape[0] > MAX_BATCH) throw invalid(`${name}: batch of ${shape[0]} exceeds the limit of ${MAX_BATCH}`);
  if (!isFloat(dtype)) throw invalid(`${name}: expected FLOAT32 or FLOAT64 observations, got ${NAMES[dtype]}`);
  if (!values.every(Number.isFinite)) throw invalid(`${name}: contains NaN or Inf`);
  const width = obsShape.reduce((a, b) => a * b, 1);
  const rows = [];
  for (let b = 0; b < shape[0]; b++) rows.push(values.slice(b * width, (b + 1) * width).map(Math.fround));
  return rows;
}

/** Discrete(n) actions: a batch of shape (batch,), or (batch = null) one action of shape () or (1,). */
function checkDiscreteActions(t, n, batch, name) {
  const { dtype, shape, values } = decode(t, name);
  if (!isInt(dtype)) throw invalid(`${name}: a Discrete(${n}) action must be INT32 or INT64, got ${NAMES[dtype]}`);
  if (batch === null) {
    if (!(shape.length === 0 || (shape.length === 1 && shape[0] === 1))) {
      throw invalid(`${name}: expected shape () or (1,), got (${shape.join(', ')})`);
    }
  } else if (shape.length !== 1 || shape[0] !== batch) {
    throw invalid(`${name}: expected shape (${batch},), got (${shape.join(', ')})`);
  }
  const bad = values.filter((a) => a < 0 || a >= n);
  if (bad.length) throw invalid(`${name}: action out of range [0, ${n - 1}]: ${bad.slice(0, 8)}`);
  return values;
}

module.exports = { DTYPE, MAX_BATCH, MAX_ELEMENTS, checkDiscreteActions, checkStates, decode, encode };

'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { Peer } = require('../src/peer');
const { DTYPE, decode, encode } = require('../src/tensor');
const { status } = require('../src/errors');

const i64 = (v, shape = []) => encode(Array.isArray(v) ? v : [v], shape, DTYPE.INT64);
const f32 = (v, shape) => encode(v, shape, DTYPE.FLOAT32);
const code = (fn) => { try { fn(); } catch (e) { return e.code; } return 'ok'; };

test('step ids: replay, ALREADY_EXISTS, FAILED_PRECONDITION, Step before Reset', () => {
  const peer = new Peer({ task: 'room-6', seed: 1 });
  assert.equal(code(() => peer.step({ step_id: 1, action: null })), status.FAILED_PRECONDITION);
  peer.reset({ has_seed: true, seed: 3 });
  const first = peer.step({ step_id: 1, action: i64(2) });
  assert.equal(first.replayed, false);
  const again = peer.step({ step_id: 1, action: i64(2) });
  assert.equal(again.replayed, true);
  assert.deepEqual(again.next_observation, first.next_observation);
  assert.equal(code(() => peer.step({ step_id: 1, action: i64(1) })), status.ALREADY_EXISTS);
  assert.equal(code(() => peer.step({ step_id: 0, action: null })), status.ALREADY_EXISTS);
  assert.equal(code(() => peer.step({ step_id: 5, action: null })), status.FAILED_PRECONDITION);
  assert.equal(code(() => peer.step({ step_id: 2, action: i64(4) })), status.INVALID_ARGUMENT);
  assert.equal(code(() => peer.step({ step_id: 2, action: f32([1], []) })), status.INVALID_ARGUMENT);
  assert.equal(peer.step({ step_id: 2, action: null }).step_id, 2);
});

test('an episode ends after 50 steps on Room-6 with return, length and a reset observation', () => {
  const peer = new Peer({ task: 'room-6' });
  peer.reset({});
  let reply;
  for (let k = 1; k <= 50; k++) reply = peer.step({ step_id: k, action: null });
  assert.equal(reply.truncated, true);
  assert.equal(reply.episode_length, 50);
  assert.ok(reply.reset_observation);
  assert.deepEqual(decode(reply.reset_observation, 'r').values.slice(0, 2), [Math.fround(0.6), Math.fround(0.6)]);
});

test('Evaluate: Q of pairs and V = max_a Q, float32, empty parts allowed', () => {
  const peer = new Peer({ task: 'room-3', totalSteps: 500 });
  peer.reset({});
  for (let k = 1; k <= 300; k++) peer.step({ step_id: k, action: null });
  const states = f32([0.5, 0.5, 1, 0, 0.5, 0.5, 0, 1], [2, 4]);
  const all = [0, 1, 2, 3].map((a) => decode(peer.evaluate({ q_states: f32([0.5, 0.5, 1, 0], [1, 4]),
    q_actions: i64([a], [1]), v_states: null }).q_values, 'q').values[0]);
  const reply = peer.evaluate({ q_states: null, q_actions: null, v_states: states });
  assert.equal(reply.v_values.dtype, DTYPE.FLOAT32);
  assert.equal(decode(reply.v_values, 'v').values[0], Math.fround(Math.max(...all)));
  assert.deepEqual(decode(reply.q_values, 'q').shape, [0]);
  assert.equal(code(() => peer.evaluate({ q_states: states, q_actions: i64([0], [1]), v_states: null })),
    status.INVALID_ARGUMENT);
});

test('tabular Q-learning learns Room-3 far beyond random (exact evaluation)', () => {
  const peer = new Peer({ task: 'room-3', seed: 0, totalSteps: 3000 });
  const before = peer.runEvaluation({ episodes: 0, seed: 0 });
  peer.reset({ has_seed: true, seed: 0 });
  for (let k = 1; k <= 3000; k++) peer.step({ step_id: k, action: null });
  const after = peer.runEvaluation({ episodes: 0, seed: 0 });
  assert.equal(after.exact, true);
  assert.equal(after.returns.length, 8);
  // The optimum on Room-3 is ~18.5 per goal (1-2 steps to walk, then 1.0 per step for the rest of 20).
  assert.ok(after.mean_return > 17, `mean exact return ${after.mean_return} (before: ${before.mean_return})`);
});

test('Save and Load restore the learner exactly; Load needs a Reset before Step', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'node-peer-'));
  const peer = new Peer({ task: 'room-6', seed: 2, totalSteps: 2000, checkpointDir: dir });
  peer.reset({ has_seed: true, seed: 2 });
  for (let k = 1; k <= 400; k++) peer.step({ step_id: k, action: null });
  assert.equal(code(() => peer.save({ step_id: 3, tag: '' })), status.FAILED_PRECONDITION);
  assert.equal(code(() => peer.save({ step_id: 400, tag: '../x' })), status.INVALID_ARGUMENT);
  assert.equal(peer.save({ step_id: 400, tag: '' }).tag, 'step-400');
  const evalAt400 = peer.runEvaluation({ episodes: 0, seed: 0 }).returns;
  const rest = () => { const out = []; for (let k = 401; k <= 500; k++) out.push(peer.step({ step_id: k, action: null })); return out; };
  const trajectory = rest();
  assert.deepEqual(peer.load({ tag: '' }), { tag: 'step-400', last_step_id: 400 });
  assert.equal(code(() => peer.step({ step_id: 401, action: null })), status.FAILED_PRECONDITION);
  assert.deepEqual(peer.runEvaluation({ episodes: 0, seed: 0 }).returns, evalAt400);
  assert.equal(code(() => peer.load({ tag: 'nope' })), status.NOT_FOUND);
  fs.rmSync(dir, { recursive: true });
  assert.ok(trajectory.length === 100);
});

test('advisers answer only GetInfo, Suggest and Evaluate', () => {
  const peer = new Peer({ task: 'room-21', role: 'adversary' });
  const info = peer.getInfo();
  assert.deepEqual(info.capabilities, { advises: true, evaluates: true, acts: false, learns: false });
  assert.equal(info.implementation, 'scripted-adversary');
  const actions = decode(peer.suggest({ states: f32([0.5, 0.5, 1, 0.3], [1, 4]), deterministic: false }).actions, 'a');
  assert.deepEqual(actions.values, [1]); // mirrored goal (0, 0): walk -x first
  // Its critic values the mirrored goal (0, 0) from (10, 10): 20 steps away, the best move is -x.
  const ev = peer.evaluate({ q_states: f32([0.5, 0.5, 1, 0.3, 0.5, 0.5, 1, 0.3], [2, 4]),
    q_actions: encode([0, 1], [2], DTYPE.INT64), v_states: f32([0.5, 0.5, 1, 0.3], [1, 4]) });
  const q = decode(ev.q_values, 'q').values;
  const v = decode(ev.v_values, 'v').values;
  assert.ok(q[1] > q[0], `moving toward the mirrored goal is worth more: ${q}`);
  assert.ok(Math.abs(v[0] - q[1]) < 1e-4, `V is the best Q: ${v[0]} vs ${q[1]}`);
  for (const call of ['reset', 'step', 'runEvaluation', 'save', 'load']) {
    assert.equal(code(() => peer[call]({ step_id: 1, episodes: 1 })), status.UNIMPLEMENTED, call);
  }
});

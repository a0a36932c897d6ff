'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { EPISODE_STEPS, Room, optimalAction, parseTask, roundHalfEven } = require('../src/room');

test('goals enumerate the border, corners twice', () => {
  const env = new Room(6);
  assert.equal(env.numGoals, 20);
  const goals = [...Array(env.numGoals).keys()].map((i) => env.goalFromIndex(i));
  for (const [x, y] of goals) assert.ok(x === 0 || x === 5 || y === 0 || y === 5);
  assert.deepEqual(env.goalFromIndex(0), [0, 0]);
  assert.deepEqual(env.goalFromIndex(7), [5, 2]);
  assert.deepEqual(env.goalFromIndex(12), [2, 0]);
});

test('dynamics: walls hold, goal pays 1.0, time limit truncates', () => {
  const env = new Room(3);
  const obs = env.reset({ goalIndex: 2 }); // axis 0, side 1, coord 0 -> goal (2, 0)
  assert.deepEqual(Array.from(obs), [0.5, 0.5, 1, 0]);
  let out = env.step(0);
  assert.deepEqual(Array.from(out.observation), [1, 0.5, 1, 0]);
  assert.equal(out.reward, -0.001);
  out = env.step(0); // into the wall: stays
  assert.deepEqual(Array.from(out.observation), [1, 0.5, 1, 0]);
  out = env.step(3);
  assert.equal(out.reward, 1.0);
  let steps = 3;
  while (!out.truncated) { out = env.step(1); steps += 1; }
  assert.equal(steps, EPISODE_STEPS[3]);
  assert.equal(out.terminated, false);
});

test('seeded goal draws repeat and land on the border', () => {
  const a = new Room(21, 5);
  const b = new Room(21, 5);
  for (let k = 0; k < 50; k++) {
    a.reset();
    b.reset();
    assert.deepEqual(a.goal, b.goal);
    assert.ok(a.goal.includes(0) || a.goal.includes(20));
  }
});

test('the expert walks to the goal and the adversary to the mirrored goal', () => {
  for (const mirror of [false, true]) {
    for (let g = 0; g < 80; g++) {
      const env = new Room(21);
      let obs = env.reset({ goalIndex: g });
      const target = mirror ? env.goal.map((c) => 20 * (1 - roundHalfEven(c / 20))) : env.goal;
      for (let k = 0; k < 40; k++) obs = env.step(optimalAction(obs, 21, mirror)).observation;
      assert.deepEqual(env.agent, target, `goal ${g} mirror ${mirror}`);
    }
  }
});

test('numpy rounding: halves go to even', () => {
  assert.deepEqual([0.5, 1.5, 2.5, 3.5, 0.49, 0.51].map(roundHalfEven), [0, 2, 2, 4, 0, 1]);
});

test('tasks', () => {
  assert.equal(parseTask('room-21'), 21);
  assert.equal(parseTask('peerlearn/Room-6-v0'), 6);
  assert.throws(() => parseTask('hopper'), /room-3/);
});

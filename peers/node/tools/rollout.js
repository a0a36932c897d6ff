#!/usr/bin/env node
'use strict';
// Parity helper for tests/test_node_peer.py: reads JSON from stdin
//   { "rollouts": [{ "size": 21, "goal_index": 5, "actions": [0, 2, ...] }],
//     "suggest": [{ "size": 21, "mirror": false, "obs": [a, b, c, d] }],
//     "critic": [{ "size": 21, "mirror": true, "obs": [a, b, c, d], "action": 2, "gamma": 0.99 }] }
// and writes the Node env's observations, rewards and truncation flags, the scripted moves, and the
// scripted advisers' critic values ([Q(obs, action), V(obs)] per case).

const { Room, optimalAction } = require('../src/room');
const { qValue, vValue } = require('../src/critic');

const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const rollouts = (input.rollouts || []).map(({ size, goal_index: goalIndex, actions }) => {
  const env = new Room(size);
  const observations = [Array.from(env.reset({ goalIndex }))];
  const rewards = [];
  const truncated = [];
  for (const a of actions) {
    const out = env.step(a);
    observations.push(Array.from(out.observation));
    rewards.push(out.reward);
    truncated.push(out.truncated);
  }
  return { observations, rewards, truncated };
});
const suggest = (input.suggest || []).map(({ size, mirror, obs }) => optimalAction(Float32Array.from(obs), size, mirror));
const critic = (input.critic || []).map(({ size, mirror, obs, action, gamma }) => {
  const o = Float32Array.from(obs);
  return [qValue(o, action, size, mirror, gamma), vValue(o, size, mirror, gamma)];
});
process.stdout.write(JSON.stringify({ rollouts, suggest, critic }));

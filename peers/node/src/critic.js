'use strict';
// The exact critic of a scripted Room adviser, so an adviser-only peer can answer Evaluate. Same
// closed form as peer_service/envs/room_critic.py and peers/cpp/src/room.cc (tests check all three
// agree): the scripted policy walks straight to its target (the goal, or for the adversary the
// mirrored goal 1 - round(goal)), so Q needs no learning. Discounted returns of the task without a
// terminal state: -0.001 per step not ending on the target, +1 per step that does; on a border
// target the agent stays put, elsewhere it steps off and back.

const { GOAL_REWARD, STEP_REWARD, roundHalfEven } = require('./room');

// Action a moves axis a >> 1 by +1 (a even) or -1 (a odd), as Room.step does.
const MOVES = [[1, 0], [-1, 0], [0, 1], [0, -1]];

const clip = (x, lo, hi) => Math.min(Math.max(x, lo), hi);

function cells(obs, size, mirror) {
  const last = size - 1;
  const agent = [0, 1].map((i) => clip(roundHalfEven(obs[i] * last), 0, last));
  const target = [0, 1].map((i) => {
    const t = mirror ? 1.0 - roundHalfEven(obs[2 + i]) : obs[2 + i];
    return clip(roundHalfEven(t * last), 0, last);
  });
  return { agent, target };
}

function valueAtDistance(distance, onBorder, gamma) {
  const atTarget = onBorder ? GOAL_REWARD / (1 - gamma)
    : (STEP_REWARD + gamma * GOAL_REWARD) / (1 - gamma * gamma);
  if (distance === 0) return atTarget;
  const walking = (STEP_REWARD * (1 - gamma ** (distance - 1))) / (1 - gamma);
  return walking + gamma ** (distance - 1) * (GOAL_REWARD + gamma * atTarget);
}

/** Q(s, a) of the scripted adviser. */
function qValue(obs, action, size, mirror, gamma) {
  const { agent, target } = cells(obs, size, mirror);
  const move = MOVES[action];
  const moved = [0, 1].map((i) => clip(agent[i] + move[i], 0, size - 1));
  const distance = Math.abs(moved[0] - target[0]) + Math.abs(moved[1] - target[1]);
  const onBorder = target.some((t) => t === 0 || t === size - 1);
  const reward = distance === 0 ? GOAL_REWARD : STEP_REWARD;
  return reward + gamma * valueAtDistance(distance, onBorder, gamma);
}

/** V(s) = max_a Q(s, a): the scripted policy is optimal for its target. */
function vValue(obs, size, mirror, gamma) {
  return Math.max(...MOVES.map((_, a) => qValue(obs, a, size, mirror, gamma)));
}

module.exports = { qValue, vValue };

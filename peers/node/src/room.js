'use strict';
// The Room grid world (same dynamics as peer_service/envs/room.py, checked by tests/test_node_peer.py):
// an L x L grid, the agent starts at the centre (L // 2, L // 2) and must reach a goal on the border
// and stay there. Observation [agent / (L-1), goal / (L-1)] as float32; actions 0:+x 1:-x 2:+y 3:-y;
// moves into a wall leave the agent in place. Reward 1.0 on every step that ends on the goal, -0.001
// otherwise. Episodes never terminate; they are truncated after EPISODE_STEPS[L] steps.

const { Rng } = require('./rng');

const EPISODE_STEPS = { 3: 20, 6: 50, 21: 100, 27: 150, 33: 250 };
const STEP_REWARD = -0.001;
const GOAL_REWARD = 1.0;

function roomId(size) {
  return `peerlearn/Room-${size}-v0`;
}

/** "room-21" or "peerlearn/Room-21-v0" -> 21; throws for anything else. */
function parseTask(task) {
  const m = /^(?:room-(\d+)|peerlearn\/Room-(\d+)-v0)$/i.exec(String(task).trim());
  const size = m ? Number(m[1] || m[2]) : NaN;
  if (!(size in EPISODE_STEPS)) {
    throw new Error(`unknown task ${task}: the Node peer knows room-3, room-6, room-21, room-27, room-33`);
  }
  return size;
}

class Room {
  constructor(size, seed = 0) {
    if (!(size in EPISODE_STEPS)) throw new Error(`Room size ${size} has no episode length`);
    this.size = size;
    this.maxSteps = EPISODE_STEPS[size];
    this.start = [Math.floor(size / 2), Math.floor(size / 2)];
    this.agent = this.start.slice();
    this.goal = [0, 0];
    this.t = 0;
    this.rng = new Rng(seed, 7);
  }

  get numGoals() {
    return 4 * (this.size - 1);
  }

  /** Goal of draw `index` in 0..numGoals-1: axis (2) x side (2) x coordinate (L-1). */
  goalFromIndex(index) {
    const L1 = this.size - 1;
    const axis = Math.floor(index / (2 * L1));
    const rest = index % (2 * L1);
    const side = Math.floor(rest / L1);
    const coord = rest % L1;
    const goal = [0, 0];
    goal[axis] = side * L1;
    goal[1 - axis] = coord;
    return goal;
  }

  /** Start an episode; `seed` reseeds the goal draw, `goalIndex` fixes the goal. */
  reset({ seed = null, goalIndex = null } = {}) {
    if (seed !== null && seed !== undefined) this.rng = new Rng(seed, 7);
    this.agent = this.start.slice();
    this.t = 0;
    if (goalIndex !== null && goalIndex !== undefined) {
      this.goal = this.goalFromIndex(goalIndex);
    } else {
      // The reference's draw: both coordinates in 0..L-2, then one axis onto a wall.
      this.goal = [this.rng.integer(0, this.size - 1), this.rng.integer(0, this.size - 1)];
      const axis = this.rng.integer(0, 2);
      this.goal[axis] = this.rng.integer(0, 2) === 0 ? 0 : this.size - 1;
    }
    return this.observation();
  }

  step(action) {
    if (!Number.isInteger(action) || action < 0 || action > 3) throw new Error(`action ${action} is not in 0..3`);
    const axis = action >> 1;
    const delta = (action & 1) === 0 ? 1 : -1;
    this.agent[axis] = Math.min(Math.max(this.agent[axis] + delta, 0), this.size - 1);
    this.t += 1;
    const onGoal = this.agent[0] === this.goal[0] && this.agent[1] === this.goal[1];
    return {
      observation: this.observation(),
      reward: onGoal ? GOAL_REWARD : STEP_REWARD,
      terminated: false,
      truncated: this.t >= this.maxSteps,
    };
  }

  observation() {
    const L1 = this.size - 1;
    return Float32Array.from([this.agent[0] / L1, this.agent[1] / L1, this.goal[0] / L1, this.goal[1] / L1]);
  }

  getState() {
    return { agent: this.agent.slice(), goal: this.goal.slice(), t: this.t, rng: this.rng.state };
  }

  setState(s) {
    this.agent = s.agent.slice();
    this.goal = s.goal.slice();
    this.t = s.t;
    this.rng.state = s.rng >>> 0;
  }
}

/** numpy's rint / round: to the nearest integer, halves to even. */
function roundHalfEven(x) {
  const f = Math.floor(x);
  const diff = x - f;
  if (diff > 0.5) return f + 1;
  if (diff < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * The scripted expert's move from an observation: close the larger gap to the target first (the
 * first axis on a tie). The adversary (`mirror`) walks to the goal mirrored, 1 - round(goal).
 * On the target it pushes into the nearest wall (a move that stays put).
 */
function optimalAction(obs, size, mirror = false) {
  const L1 = size - 1;
  const agent = [roundHalfEven(obs[0] * L1), roundHalfEven(obs[1] * L1)];
  const diff = [0, 1].map((i) => {
    const target = mirror ? 1.0 - roundHalfEven(obs[2 + i]) : obs[2 + i];
    return roundHalfEven(target * L1) - agent[i];
  });
  if (diff[0] === 0 && diff[1] === 0) {
    const gaps = agent.map((a) => Math.min(a, L1 - a));
    const axis = gaps[1] < gaps[0] ? 1 : 0;
    return axis * 2 + (agent[axis] <= L1 - agent[axis] ? 1 : 0);
  }
  const axis = Math.abs(diff[1]) > Math.abs(diff[0]) ? 1 : 0;
  return axis * 2 + (diff[axis] > 0 ? 0 : 1);
}

module.exports = { EPISODE_STEPS, GOAL_REWARD, Room, STEP_REWARD, optimalAction, parseTask, roomId, roundHalfEven };

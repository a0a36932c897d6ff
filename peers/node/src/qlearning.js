'use strict';
// Tabular Q-learning over the discretised Room state (agent x, agent y, goal x, goal y), epsilon-greedy,
// with a small replay of past transitions after every step (Dyna-style: the Room is deterministic, so
// replaying stored transitions is exact and speeds learning up). The Q-table is the peer's critic:
// Evaluate answers Q(s, a) and V(s) = max_a Q(s, a).

const { Rng } = require('./rng');

const DEFAULTS = {
  gamma: 0.99,
  alpha: 0.5,
  warmupSteps: 100, // uniformly random actions first (as SB3's learning_starts)
  epsStart: 1.0,
  epsEnd: 0.05,
  explorationFraction: 0.2, // share of total steps over which epsilon decays linearly
  replaySize: 50000,
  replayUpdates: 8, // Q updates from replayed transitions per env step
};

class TabularQ {
  constructor(size, totalSteps, seed, options = {}) {
    this.size = size;
    this.nActions = 4;
    this.totalSteps = Math.max(1, totalSteps);
    Object.assign(this, DEFAULTS, options);
    this.q = new Float64Array(size ** 4 * this.nActions);
    this.steps = 0; // transitions stored (env steps executed)
    this.rng = new Rng(seed, 1); // behaviour policy of Step
    this.suggestRng = new Rng(seed, 2); // stochastic Suggest (kept apart: advice must not perturb training)
    this.replayRng = new Rng(seed, 3);
    this.buffer = { s: new Int32Array(this.replaySize), a: new Int8Array(this.replaySize),
      r: new Float64Array(this.replaySize), s2: new Int32Array(this.replaySize), n: 0, pos: 0 };
  }

  stateIndex(obs) {
    const L1 = this.size - 1;
    let idx = 0;
    for (let i = 0; i < 4; i++) {
      const c = Math.min(Math.max(Math.round(obs[i] * L1), 0), L1);
      idx = idx * this.size + c;
    }
    return idx;
  }

  epsilon() {
    if (this.steps < this.warmupSteps) return 1.0;
    const frac = Math.min(1, this.steps / (this.explorationFraction * this.totalSteps));
    return this.epsStart + frac * (this.epsEnd - this.epsStart);
  }

  qValue(obs, action) {
    return this.q[this.stateIndex(obs) * this.nActions + action];
  }

  value(obs) {
    return this.maxQ(this.stateIndex(obs));
  }

  maxQ(s) {
    const base = s * this.nActions;
    let best = this.q[base];
    for (let a = 1; a < this.nActions; a++) best = Math.max(best, this.q[base + a]);
    return best;
  }

  /** Greedy action; ties go to the lowest action (deterministic) or to a random one (`rng`). */
  greedy(obs, rng = null) {
    const base = this.stateIndex(obs) * this.nActions;
    let best = -Infinity;
    let ties = [];
    for (let a = 0; a < this.nActions; a++) {
      const v = this.q[base + a];
      if (v > best) { best = v; ties = [a]; } else if (v === best) ties.push(a);
    }
    return rng ? ties[rng.integer(0, ties.length)] : ties[0];
  }

  /** The behaviour policy: uniform during warm-up, then epsilon-greedy. */
  behaviour(obs, rng = this.rng) {
    if (rng.random() < this.epsilon()) return rng.integer(0, this.nActions);
    return this.greedy(obs, rng);
  }

  update(s, a, r, s2, terminated) {
    const i = s * this.nActions + a;
    const target = r + (terminated ? 0 : this.gamma * this.maxQ(s2));
    const td = target - this.q[i];
    this.q[i] += this.alpha * td;
    return Math.abs(td);
  }

  /** Learn from one executed transition; returns { updates, tdError }. */
  store(obs, action, reward, nextObs, terminated) {
    const s = this.stateIndex(obs);
    const s2 = this.stateIndex(nextObs);
    let td = this.update(s, action, reward, s2, terminated);
    const b = this.buffer;
    b.s[b.pos] = s; b.a[b.pos] = action; b.r[b.pos] = reward; b.s2[b.pos] = s2;
    b.pos = (b.pos + 1) % this.replaySize;
    b.n = Math.min(b.n + 1, this.replaySize);
    this.steps += 1;
    let updates = 1;
    if (this.steps > this.warmupSteps) {
      for (let k = 0; k < this.replayUpdates; k++) {
        const j = this.replayRng.integer(0, b.n);
        td += this.update(b.s[j], b.a[j], b.r[j], b.s2[j], false); // Room never terminates
        updates += 1;
      }
    }
    return { updates, tdError: td / updates };
  }

  toJSON() {
    const entries = [];
    for (let i = 0; i < this.q.length; i++) if (this.q[i] !== 0) entries.push([i, this.q[i]]);
    const b = this.buffer;
    return {
      size: this.size, steps: this.steps, q: entries,
      rng: [this.rng.state, this.suggestRng.state, this.replayRng.state],
      buffer: { s: Array.from(b.s.subarray(0, b.n)), a: Array.from(b.a.subarray(0, b.n)),
        r: Array.from(b.r.subarray(0, b.n)), s2: Array.from(b.s2.subarray(0, b.n)), n: b.n, pos: b.pos },
    };
  }

  fromJSON(d) {
    if (d.size !== this.size) throw new Error(`checkpoint is for Room-${d.size}, this peer runs Room-${this.size}`);
    this.q.fill(0);
    for (const [i, v] of d.q) this.q[i] = v;
    this.steps = d.steps;
    [this.rng.state, this.suggestRng.state, this.replayRng.state] = d.rng.map((x) => x >>> 0);
    const b = this.buffer;
    b.s.set(d.buffer.s); b.a.set(d.buffer.a); b.r.set(d.buffer.r); b.s2.set(d.buffer.s2);
    b.n = d.buffer.n; b.pos = d.buffer.pos;
  }
}

module.exports = { DEFAULTS, TabularQ };

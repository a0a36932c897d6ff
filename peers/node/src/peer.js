'use strict';
// The peer: its Room env, its learner (or scripted policy) and the protocol's state machine
// (docs/protocol.md). Takes and returns plain protobuf-shaped objects; server.js only wires gRPC.
//
// State machine: CREATED --Reset--> ACTIVE --Step(last+1)--> ACTIVE (episode ends reset inside Step);
// Load puts the peer back into CREATED. Step ids are sequential; repeating the last id with the same
// action replays the stored reply.

const fs = require('fs');
const path = require('path');
const { PeerError, invalid, status } = require('./errors');
const { DTYPE, checkDiscreteActions, checkStates, encode } = require('./tensor');
const { Room, optimalAction, parseTask, roomId } = require('./room');
const { TabularQ } = require('./qlearning');
const critic = require('./critic');

const PROTOCOL_VERSION = 'peerlearn.v1';
const ROLES = ['learner', 'expert', 'adversary'];
const OBS_SHAPE = [4];
const N_ACTIONS = 4;
const DEFAULT_EVAL_EPISODES = 10;
const TAG = /^[A-Za-z0-9_.-]+$/;
// Discount of a scripted adviser's exact critic (the paper's DQN gamma on Room).
const SCRIPTED_GAMMA = 0.99;

const f32 = (values, shape) => encode(values, shape, DTYPE.FLOAT32);
const i64 = (values, shape) => encode(values, shape, DTYPE.INT64);
const f64 = (values, shape) => encode(values, shape, DTYPE.FLOAT64);

class Peer {
  constructor({ peerId = 'peer-0', task = 'room-21', seed = 0, totalSteps = 10000, role = 'learner',
    checkpointDir = null, learner = {} } = {}) {
    if (!ROLES.includes(role)) throw new Error(`unknown role ${role}; expected one of ${ROLES.join(', ')}`);
    this.peerId = peerId;
    this.size = parseTask(task);
    this.envId = roomId(this.size);
    this.role = role;
    this.seed = seed;
    this.checkpointDir = checkpointDir;
    this.agent = role === 'learner' ? new TabularQ(this.size, totalSteps, seed, learner) : null;
    this.env = new Room(this.size, seed);
    this.evalEnv = new Room(this.size, seed + 10000);
    this.evalSeeded = false;
    this.lastStepId = 0;
    this.observation = null; // null: CREATED (Reset needed before Step)
    this.episodeReturn = 0;
    this.episodeLength = 0;
    this.lastReply = null;
    this.lastRequestAction = null;
  }

  get learns() {
    return this.agent !== null;
  }

  // ------------------------------------------------------------------ handshake
  getInfo() {
    const learns = this.learns;
    return {
      protocol_version: PROTOCOL_VERSION,
      peer_id: this.peerId,
      language: `node/${process.versions.node.split('.')[0]}`,
      implementation: learns ? 'tabular-q' : `scripted-${this.role}`,
      env_id: this.envId,
      observation_space: { box: { shape: OBS_SHAPE, low: f64([0, 0, 0, 0], OBS_SHAPE),
        high: f64([1, 1, 1, 1], OBS_SHAPE), dtype: DTYPE.FLOAT32 } },
      action_space: { discrete: { n: N_ACTIONS, start: 0 } },
      // A scripted adviser evaluates with its exact critic (critic.js) but neither acts nor learns.
      capabilities: { advises: true, evaluates: true, acts: learns, learns },
      gamma: learns ? this.agent.gamma : SCRIPTED_GAMMA,
      warmup_steps: learns ? this.agent.warmupSteps : 0,
      last_step_id: this.lastStepId,
      episode_active: this.observation !== null,
    };
  }

  // ------------------------------------------------------------------ advice and critic
  suggest(req) {
    const states = checkStates(req.states, OBS_SHAPE, 'states');
    let actions;
    if (!this.learns) {
      const mirror = this.role === 'adversary';
      actions = states.map((s) => optimalAction(s, this.size, mirror));
    } else if (req.deterministic) {
      actions = states.map((s) => this.agent.greedy(s));
    } else {
      actions = states.map((s) => this.agent.behaviour(s, this.agent.suggestRng));
    }
    return { actions: i64(actions, [actions.length]) };
  }

  evaluate(req) {
    const qStates = req.q_states ? checkStates(req.q_states, OBS_SHAPE, 'q_states') : [];
    const qActions = req.q_actions ? checkDiscreteActions(req.q_actions, N_ACTIONS, qStates.length, 'q_actions')
      : checkDiscreteActions(i64([], [0]), N_ACTIONS, qStates.length, 'q_actions');
    const vStates = req.v_states ? checkStates(req.v_states, OBS_SHAPE, 'v_states') : [];
    let q;
    let v;
    if (this.learns) {
      q = qStates.map((s, b) => this.agent.qValue(s, qActions[b]));
      v = vStates.map((s) => this.agent.value(s));
    } else {
      const mirror = this.role === 'adversary';
      q = qStates.map((s, b) => critic.qValue(s, qActions[b], this.size, mirror, SCRIPTED_GAMMA));
      v = vStates.map((s) => critic.vValue(s, this.size, mirror, SCRIPTED_GAMMA));
    }
    return { q_values: f32(q, [q.length]), v_values: f32(v, [v.length]) };
  }

  // ------------------------------------------------------------------ acting
  reset(req) {
    this.requireLearner('Reset');
    const obs = this.env.reset({ seed: req.has_seed ? Number(req.seed) : null });
    this.observation = obs;
    this.episodeReturn = 0;
    this.episodeLength = 0;
    return { observation: f32(Array.from(obs), OBS_SHAPE), last_step_id: this.lastStepId };
  }

  step(req) {
    const agent = this.requireLearner('Step');
    if (this.observation === null) {
      throw new PeerError(status.FAILED_PRECONDITION, 'Step before Reset: call Reset first');
    }
    const stepId = Number(req.step_id);
    const action = req.action ? checkDiscreteActions(req.action, N_ACTIONS, null, 'action')[0] : null;
    if (stepId === this.lastStepId && this.lastReply !== null) {
      if (action === this.lastRequestAction) return { ...this.lastReply, replayed: true };
      throw new PeerError(status.ALREADY_EXISTS, `step id ${stepId} was already applied with a different action; `
        + `the next step id is ${this.lastStepId + 1}`);
    }
    if (stepId !== this.lastStepId + 1) {
      const code = stepId <= this.lastStepId ? status.ALREADY_EXISTS : status.FAILED_PRECONDITION;
      throw new PeerError(code, `step id ${stepId} out of order: the next step id is ${this.lastStepId + 1}`);
    }
    const obs = this.observation;
    const executed = action === null ? agent.behaviour(obs) : action;
    const out = this.env.step(executed);
    const learned = agent.store(obs, executed, out.reward, out.observation, out.terminated);
    this.lastStepId = stepId;
    this.episodeReturn += out.reward;
    this.episodeLength += 1;
    const reply = {
      step_id: stepId, action: i64([executed], []), reward: out.reward,
      next_observation: f32(Array.from(out.observation), OBS_SHAPE), terminated: out.terminated,
      truncated: out.truncated, replayed: false, gradient_steps: learned.updates,
      losses: { 'losses/td_error': learned.tdError },
    };
    if (out.terminated || out.truncated) {
      reply.episode_return = this.episodeReturn;
      reply.episode_length = this.episodeLength;
      this.observation = this.env.reset();
      reply.reset_observation = f32(Array.from(this.observation), OBS_SHAPE);
      this.episodeReturn = 0;
      this.episodeLength = 0;
    } else {
      this.observation = out.observation;
    }
    this.lastReply = reply;
    this.lastRequestAction = action;
    return reply;
  }

  runEvaluation(req) {
    const agent = this.requireLearner('RunEvaluation');
    const episodes = Number(req.episodes);
    if (!(episodes >= 0 && episodes <= 10000)) throw invalid(`episodes must be in 0..10000, got ${req.episodes}`);
    const exact = episodes === 0;
    const starts = exact ? [...Array(this.evalEnv.numGoals).keys()] : Array(episodes).fill(null);
    const returns = [];
    const lengths = [];
    starts.forEach((goalIndex, i) => {
      const first = !this.evalSeeded && i === 0;
      let obs = this.evalEnv.reset({ seed: first ? Number(req.seed) : null, goalIndex });
      this.evalSeeded = this.evalSeeded || first;
      let total = 0;
      let length = 0;
      for (;;) {
        const out = this.evalEnv.step(agent.greedy(obs));
        total += out.reward;
        length += 1;
        obs = out.observation;
        if (out.terminated || out.truncated) break;
      }
      returns.push(total);
      lengths.push(length);
    });
    const mean = returns.reduce((a, b) => a + b, 0) / returns.length;
    const std = Math.sqrt(returns.reduce((a, r) => a + (r - mean) ** 2, 0) / returns.length);
    return { returns, lengths, mean_return: mean, std_return: std, exact };
  }

  // ------------------------------------------------------------------ checkpoints (JSON files)
  save(req) {
    const agent = this.requireLearner('Save');
    const stepId = Number(req.step_id);
    if (stepId !== this.lastStepId) {
      throw new PeerError(status.FAILED_PRECONDITION, `Save at step id ${stepId}, but the peer is at step ${this.lastStepId}`);
    }
    const tag = req.tag || `step-${stepId}`;
    checkTag(tag);
    const root = this.checkpointRoot();
    const dir = path.join(root, tag);
    fs.mkdirSync(dir, { recursive: true });
    const state = { format: 'peerlearn-node/1', peer_id: this.peerId, env_id: this.envId,
      last_step_id: this.lastStepId, env: this.env.getState(), eval_env: this.evalEnv.getState(),
      eval_seeded: this.evalSeeded, agent: agent.toJSON() };
    writeAtomic(path.join(dir, 'peer.json'), JSON.stringify(state));
    writeAtomic(path.join(root, 'latest'), tag);
    return { location: dir, tag };
  }

  load(req) {
    const agent = this.requireLearner('Load');
    const root = this.checkpointRoot();
    let tag = req.tag;
    if (!tag) {
      const latest = path.join(root, 'latest');
      if (!fs.existsSync(latest)) throw new PeerError(status.NOT_FOUND, `no checkpoint in ${root}`);
      tag = fs.readFileSync(latest, 'utf8').trim();
    }
    checkTag(tag);
    const file = path.join(root, tag, 'peer.json');
    if (!fs.existsSync(file)) throw new PeerError(status.NOT_FOUND, `no checkpoint named '${tag}' in ${root}`);
    const state = JSON.parse(fs.readFileSync(file, 'utf8'));
    if (state.env_id !== this.envId) {
      throw new PeerError(status.FAILED_PRECONDITION, `checkpoint '${tag}' is for ${state.env_id}, not ${this.envId}`);
    }
    agent.fromJSON(state.agent);
    this.env.setState(state.env);
    this.evalEnv.setState(state.eval_env);
    this.evalSeeded = state.eval_seeded;
    this.lastStepId = state.last_step_id;
    this.observation = null; // a restored peer starts with Reset
    this.lastReply = null;
    this.lastRequestAction = null;
    return { tag, last_step_id: this.lastStepId };
  }

  // ------------------------------------------------------------------ helpers
  requireLearner(call) {
    if (!this.learns) {
      throw new PeerError(status.UNIMPLEMENTED, `${call}: peer ${this.peerId} is an adviser (${this.role}); `
        + 'it only answers GetInfo, Suggest and Evaluate');
    }
    return this.agent;
  }

  checkpointRoot() {
    if (!this.checkpointDir) {
      throw new PeerError(status.FAILED_PRECONDITION,
        'this peer has no checkpoint directory (start it with --checkpoint-dir)');
    }
    return this.checkpointDir;
  }
}

function checkTag(tag) {
  if (!TAG.test(tag) || tag.startsWith('.')) {
    throw invalid(`checkpoint tag '${tag}' may only hold letters, digits, '-', '_' and '.'`);
  }
}

function writeAtomic(file, text) {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

module.exports = { PROTOCOL_VERSION, Peer, ROLES };

#!/usr/bin/env node
'use strict';
// `npm start -- --port P [--task room-21] [--peer-id ID] [--role learner|expert|adversary] [--seed S]
//   [--total-steps N] [--checkpoint-dir D] [--host H] [--port-file F] [--exit-with-parent]`
// Serves one peerlearn.v1 peer until SIGTERM / SIGINT.

const fs = require('fs');
const { Peer, ROLES } = require('./peer');
const { serve } = require('./server');

const USAGE = `usage: node src/main.js --port P [--host 127.0.0.1] [--task room-21] [--peer-id peer-0]
  [--role ${ROLES.join('|')}] [--seed 0] [--total-steps 10000] [--checkpoint-dir DIR]
  [--port-file FILE] [--exit-with-parent] [--learner JSON]`;

function parseArgs(argv) {
  const opts = { port: null, host: '127.0.0.1', task: 'room-21', peerId: 'peer-0', role: 'learner', seed: 0,
    totalSteps: 10000, checkpointDir: null, portFile: null, exitWithParent: false, learner: {} };
  const names = { '--port': 'port', '--host': 'host', '--task': 'task', '--peer-id': 'peerId', '--role': 'role',
    '--seed': 'seed', '--total-steps': 'totalSteps', '--checkpoint-dir': 'checkpointDir', '--port-file': 'portFile',
    '--learner': 'learner' };
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    let value = null;
    if (arg.includes('=')) [arg, value] = [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)];
    if (arg === '--help' || arg === '-h') { process.stdout.write(`${USAGE}\n`); process.exit(0); }
    if (arg === '--exit-with-parent') { opts.exitWithParent = true; continue; }
    const key = names[arg];
    if (!key) throw new Error(`unknown option ${arg}\n${USAGE}`);
    if (value === null) {
      if (i + 1 >= argv.length) throw new Error(`${arg} needs a value`);
      value = argv[++i];
    }
    opts[key] = value;
  }
  if (opts.port === null) throw new Error(`--port is required\n${USAGE}`);
  for (const key of ['port', 'seed', 'totalSteps']) {
    if (!/^-?\d+$/.test(String(opts[key]))) throw new Error(`--${key} must be an integer, got ${opts[key]}`);
    opts[key] = Number(opts[key]);
  }
  if (typeof opts.learner === 'string') opts.learner = JSON.parse(opts.learner);
  return opts;
}

async function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${err.message}\n`);
    process.exit(2);
  }
  const peer = new Peer({ peerId: opts.peerId, task: opts.task, seed: opts.seed, totalSteps: opts.totalSteps,
    role: opts.role, checkpointDir: opts.checkpointDir, learner: opts.learner });
  const { port, shutdown } = await serve(peer, { host: opts.host, port: opts.port });
  process.stderr.write(`node peer ${opts.peerId} (${peer.getInfo().implementation}) serving ${peer.envId} `
    + `on ${opts.host}:${port}\n`);
  if (opts.portFile) {
    fs.writeFileSync(`${opts.portFile}.tmp`, String(port));
    fs.renameSync(`${opts.portFile}.tmp`, opts.portFile); // atomic: a reader never sees half a port
  }
  let stopping = false;
  const stop = async (why) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`node peer ${opts.peerId}: ${why}, stopping\n`);
    await shutdown(2000);
    process.exit(0);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  if (opts.exitWithParent) {
    const parent = process.ppid;
    setInterval(() => { if (process.ppid !== parent) stop(`parent ${parent} is gone`); }, 500).unref();
  }
}

main().catch((err) => {
  process.stderr.write(`node peer failed: ${err && err.stack}\n`);
  process.exit(1);
});

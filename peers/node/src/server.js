'use strict';
// gRPC wiring: peerlearn.v1.PeerService (loaded at run time from the repository's .proto files),
// grpc.health.v1.Health (served here from proto/grpc/health/v1/health.proto) and server reflection.

const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const { ReflectionService } = require('@grpc/reflection');
const { PeerError } = require('./errors');

// The repository's protocol definition (peers/node -> ../../proto), unless PEERLEARN_PROTO_DIR says otherwise.
const PROTO_DIR = process.env.PEERLEARN_PROTO_DIR || path.resolve(__dirname, '..', '..', '..', 'proto');
const HEALTH_DIR = path.resolve(__dirname, '..', 'proto');
const LOADER_OPTIONS = { keepCase: true, longs: Number, enums: Number, defaults: true, oneofs: true,
  includeDirs: [PROTO_DIR, HEALTH_DIR] };
const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
const SERVICE = 'peerlearn.v1.PeerService';
const HEALTH = { SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 };

function loadProtos() {
  const definition = protoLoader.loadSync(['peerlearn/v1/peer.proto', 'grpc/health/v1/health.proto'], LOADER_OPTIONS);
  return { definition, loaded: grpc.loadPackageDefinition(definition) };
}

/** Health state shared by Check and Watch; `set` notifies watchers. */
class HealthState {
  constructor() {
    this.statuses = new Map();
    this.watchers = new Set();
  }

  set(service, value) {
    this.statuses.set(service, value);
    for (const w of this.watchers) if (w.service === service) w.call.write({ status: value });
  }

  implementation() {
    return {
      Check: (call, callback) => {
        const value = this.statuses.get(call.request.service);
        if (value === undefined) {
          callback({ code: grpc.status.NOT_FOUND, details: `unknown service '${call.request.service}'` });
        } else {
          callback(null, { status: value });
        }
      },
      Watch: (call) => {
        const w = { service: call.request.service, call };
        this.watchers.add(w);
        call.write({ status: this.statuses.get(w.service) ?? HEALTH.SERVICE_UNKNOWN });
        const drop = () => this.watchers.delete(w);
        call.on('cancelled', drop);
        call.on('close', drop);
      },
    };
  }

  endAll() {
    for (const w of this.watchers) w.call.end();
    this.watchers.clear();
  }
}

function deadlinePassed(call) {
  const d = call.getDeadline();
  const t = d instanceof Date ? d.getTime() : Number(d);
  return Number.isFinite(t) && t < Date.now();
}

/** Unary handler: errors become gRPC statuses; a bug answers INTERNAL and the server keeps serving. */
function unary(name, fn, readOnly, log) {
  return (call, callback) => {
    if (readOnly && deadlinePassed(call)) {
      callback({ code: grpc.status.DEADLINE_EXCEEDED, details: 'deadline passed before the call started' });
      return;
    }
    try {
      callback(null, fn(call.request));
    } catch (err) {
      if (err instanceof PeerError) {
        callback({ code: err.code, details: err.message });
      } else {
        log(`internal error in ${name}: ${err && err.stack}`);
        callback({ code: grpc.status.INTERNAL, details: `${err && err.name}: ${err && err.message}` });
      }
    }
  };
}

/** Start serving `peer`; resolves to { server, port, health, shutdown }. */
async function serve(peer, { host = '127.0.0.1', port = 0, log = (m) => process.stderr.write(`${m}\n`) } = {}) {
  const { definition, loaded } = loadProtos();
  const server = new grpc.Server({
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 5000,
  });
  server.addService(loaded.peerlearn.v1.PeerService.service, {
    GetInfo: unary('GetInfo', () => peer.getInfo(), true, log),
    Suggest: unary('Suggest', (r) => peer.suggest(r), true, log),
    Evaluate: unary('Evaluate', (r) => peer.evaluate(r), true, log),
    Reset: unary('Reset', (r) => peer.reset(r), false, log),
    Step: unary('Step', (r) => peer.step(r), false, log),
    RunEvaluation: unary('RunEvaluation', (r) => peer.runEvaluation(r), false, log),
    Save: unary('Save', (r) => peer.save(r), false, log),
    Load: unary('Load', (r) => peer.load(r), false, log),
  });
  const health = new HealthState();
  server.addService(loaded.grpc.health.v1.Health.service, health.implementation());
  new ReflectionService(definition).addToServer(server);

  const bound = await new Promise((resolve, reject) => {
    server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
  });
  for (const name of ['', SERVICE]) health.set(name, HEALTH.SERVING);

  const shutdown = (graceMs = 2000) => new Promise((resolve) => {
    for (const name of ['', SERVICE]) health.set(name, HEALTH.NOT_SERVING);
    health.endAll();
    const timer = setTimeout(() => { server.forceShutdown(); resolve(); }, graceMs);
    server.tryShutdown(() => { clearTimeout(timer); resolve(); });
  });
  return { server, port: bound, health, shutdown };
}

module.exports = { HEALTH, LOADER_OPTIONS, PROTO_DIR, SERVICE, loadProtos, serve };

'use strict';
// The real server in a child process: handshake, Suggest and health over gRPC, then a clean SIGTERM exit.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const { loadProtos } = require('../src/server');
const { DTYPE, decode, encode } = require('../src/tensor');

const call = (client, method, request) => new Promise((resolve, reject) => {
  client[method](request, { deadline: Date.now() + 5000 }, (err, reply) => (err ? reject(err) : resolve(reply)));
});

test('serves PeerService and health, stops on SIGTERM', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'node-peer-'));
  const portFile = path.join(dir, 'port');
  const child = spawn(process.execPath, [path.join(__dirname, '..', 'src', 'main.js'), '--port', '0',
    '--port-file', portFile, '--task', 'room-6', '--peer-id', 'n1', '--role', 'expert'], { stdio: 'ignore' });
  try {
    for (let i = 0; i < 100 && !fs.existsSync(portFile); i++) await new Promise((r) => setTimeout(r, 50));
    const address = `127.0.0.1:${fs.readFileSync(portFile, 'utf8')}`;
    const { loaded } = loadProtos();
    const peer = new loaded.peerlearn.v1.PeerService(address, grpc.credentials.createInsecure());
    const health = new loaded.grpc.health.v1.Health(address, grpc.credentials.createInsecure());
    const info = await call(peer, 'GetInfo', {});
    assert.equal(info.protocol_version, 'peerlearn.v1');
    assert.equal(info.peer_id, 'n1');
    assert.equal(info.env_id, 'peerlearn/Room-6-v0');
    const reply = await call(peer, 'Suggest', { states: encode([0.4, 0.4, 1, 0.2], [1, 4], DTYPE.FLOAT32) });
    assert.deepEqual(decode(reply.actions, 'actions').values, [0]);
    assert.equal((await call(health, 'Check', { service: 'peerlearn.v1.PeerService' })).status, 1);
    await assert.rejects(call(peer, 'Step', { step_id: 1 }), (err) => err.code === grpc.status.UNIMPLEMENTED);
    await assert.rejects(call(peer, 'Suggest', { states: encode([NaN, 0, 0, 0], [1, 4], DTYPE.FLOAT32) }),
      (err) => err.code === grpc.status.INVALID_ARGUMENT);
    peer.close();
    health.close();
  } finally {
    const exited = new Promise((resolve) => child.on('exit', (c) => resolve(c)));
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

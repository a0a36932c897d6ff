'use strict';
// A request the peer refuses: the gRPC status code travels with the message (docs/protocol.md).
const { status } = require('@grpc/grpc-js');

class PeerError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

const invalid = (msg) => new PeerError(status.INVALID_ARGUMENT, msg);

module.exports = { PeerError, invalid, status };

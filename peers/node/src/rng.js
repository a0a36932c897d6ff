'use strict';
// A small seeded PRNG (mulberry32): reproducible runs, and its whole state is one uint32, so a
// checkpoint stores it exactly.

function mix(seed, stream) {
  // splitmix-style scramble of (seed, stream) into a 32-bit state.
  let z = (Math.imul((seed >>> 0) ^ 0x9e3779b9, 0x85ebca6b) + Math.imul(stream + 1, 0xc2b2ae35)) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x7feb352d) >>> 0;
  z = Math.imul(z ^ (z >>> 15), 0x846ca68b) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

class Rng {
  constructor(seed = 0, stream = 0) {
    this.state = mix(Number(seed) | 0, stream);
  }

  /** Uniform float in [0, 1). */
  random() {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform integer in [lo, hi). */
  integer(lo, hi) {
    return lo + Math.floor(this.random() * (hi - lo));
  }
}

module.exports = { Rng };

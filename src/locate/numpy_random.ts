/**
 * numpy's legacy `RandomState`: the MT19937 generator seeded by an integer (`init_genrand`), its 53-bit
 * uniform doubles (`random_sample`) and its Gaussian draws (`randn`: the Marsaglia polar method, which
 * keeps the second value of each pair for the next call). ROME's causal tracing draws its noise with
 * `numpy.random.RandomState(1).randn(samples, tokens, width)`; this reproduces those values, so a trace
 * corrupts the subject with the very noise ROME adds.
 */

const N = 624, M = 397;
const MATRIX_A = 0x9908b0df, UPPER = 0x80000000, LOWER = 0x7fffffff;

/** numpy `RandomState(seed)` for an integer seed in [0, 2^32). */
export class NumpyRandomState {
  private readonly mt = new Uint32Array(N);
  private pos = N;
  private hasGauss = false;
  private gauss = 0;

  /** A generator seeded as numpy's RandomState(seed) (init_genrand). */
  constructor(seed: number) {
    if (!(Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff)) {
      throw new RangeError(`seed must be an integer in [0, 2^32), got ${seed}`);
    }
    const mt = this.mt;
    mt[0] = seed >>> 0;
    for (let i = 1; i < N; i++) {
      const prev = mt[i - 1] ^ (mt[i - 1] >>> 30);
      // 1812433253 * prev + i mod 2^32 (Math.imul multiplies mod 2^32).
      mt[i] = (Math.imul(1812433253, prev) + i) >>> 0;
    }
  }

  /** Next 32-bit output (genrand_int32). */
  nextUint32(): number {
    const mt = this.mt;
    if (this.pos >= N) {
      for (let k = 0; k < N; k++) {
        const y = (mt[k] & UPPER) | (mt[(k + 1) % N] & LOWER);
        mt[k] = mt[(k + M) % N] ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
      }
      this.pos = 0;
    }
    let y = mt[this.pos++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** Uniform double in [0, 1) from two outputs (27 + 26 bits), as `random_sample`. */
  randomSample(): number {
    const a = this.nextUint32() >>> 5, b = this.nextUint32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }

  /** One standard normal value, as `randn` / legacy `gauss`. */
  gaussian(): number {
    if (this.hasGauss) {
      this.hasGauss = false;
      return this.gauss;
    }
    let x1: number, x2: number, r2: number;
    do {
      x1 = 2 * this.randomSample() - 1;
      x2 = 2 * this.randomSample() - 1;
      r2 = x1 * x1 + x2 * x2;
    } while (r2 >= 1 || r2 === 0);
    const f = Math.sqrt(-2 * Math.log(r2) / r2);
    this.gauss = f * x1;
    this.hasGauss = true;
    return f * x2;
  }

  /** `n` standard normal values in order (randn of any shape with n elements, C order). */
  randn(n: number): Float64Array {
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) out[i] = this.gaussian();
    return out;
  }
}

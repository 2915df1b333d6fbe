/**
 * numpy's legacy `RandomState`: the MT19937 generator seeded by an integer (`init_genrand`), its 53-bit
 * uniform doubles (`random_sample`) and its Gaussian draws (`randn`: the Marsaglia polar method, which
 * keeps the second value of each pair for the next call). ROME's causal tracing draws its noise with
 * `numpy.random.RandomState(1).randn(samples, tokens, width)`; this reproduces those values, so a trace
 * corrupts the subject with the very noise ROME adds. Also its `uniform(low, high)` (ROME's `u<x>` noise
 * rule) and `chisquare(df)` (the Student-t rule `t<d>` draws its scale factors from RandomState(2)), by
 * numpy's legacy definitions (`legacy_standard_gamma`: Marsaglia–Tsang for shape > 1, Johnk-style
 * rejection below 1, the exponential at exactly 1).
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

  /** `uniform(low, high)`: low + (high − low) · random_sample(), numpy's legacy rule. */
  uniform(low: number, high: number): number {
    return low + (high - low) * this.randomSample();
  }

  /** `standard_exponential`: −log(1 − U), U a random_sample (legacy). */
  standardExponential(): number {
    return -Math.log(1 - this.randomSample());
  }

  /** `standard_gamma(shape)`, numpy's legacy algorithm (see the module doc); shape ≥ 0. */
  standardGamma(shape: number): number {
    if (shape === 1) return this.standardExponential();
    if (shape === 0) return 0;
    if (shape < 1) {
      for (;;) {
        const u = this.randomSample(), v = this.standardExponential();
        if (u <= 1 - shape) {
          const x = Math.pow(u, 1 / shape);
          if (x <= v) return x;
        } else {
          const y = -Math.log((1 - u) / shape);
          const x = Math.pow(1 - shape + shape * y, 1 / shape);
          if (x <= v + y) return x;
        }
      }
    }
    const b = shape - 1 / 3, c = 1 / Math.sqrt(9 * b);
    for (;;) {
      let x: number, v: number;
      do {
        x = this.gaussian();
        v = 1 + c * x;
      } while (v <= 0);
      v = v * v * v;
      const u = this.randomSample();
      if (u < 1 - 0.0331 * (x * x) * (x * x)) return b * v;
      if (Math.log(u) < 0.5 * x * x + b * (1 - v + Math.log(v))) return b * v;
    }
  }

  /** `chisquare(df)`: 2 · standard_gamma(df / 2) (legacy). */
  chisquare(df: number): number {
    return 2 * this.standardGamma(df / 2);
  }
}

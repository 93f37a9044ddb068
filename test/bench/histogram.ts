// A fixed-bucket latency histogram in the spirit of HdrHistogram: constant memory, O(1) record,
// and a bounded relative error (< 0.2 %) at every magnitude.
//
// Values are recorded in whole microseconds. Below 1024 µs every microsecond has its own bucket;
// above, each power-of-two range [2^k, 2^(k+1)) is split into 512 equal buckets. Values above
// MAX_US (about 67 s) are clamped into the last bucket.

const SUB_BITS = 10; // 1024 exact buckets, then 512 per octave
const SUB_COUNT = 1 << SUB_BITS;
const HALF = SUB_COUNT >> 1;
const MAX_US = 2 ** 26 - 1;
const TOP_SHIFT = 26 - SUB_BITS; // shift of the highest octave
const BUCKETS = SUB_COUNT + TOP_SHIFT * HALF;

function indexOf(us: number): number {
  if (us < SUB_COUNT) return us;
  const shift = 31 - Math.clz32(us) - SUB_BITS + 1; // so that (us >> shift) is in [512, 1024)
  return SUB_COUNT + (shift - 1) * HALF + ((us >>> shift) - HALF);
}

/** Midpoint (in µs) of the values that land in bucket `i`. */
function valueOf(i: number): number {
  if (i < SUB_COUNT) return i;
  const shift = Math.floor((i - SUB_COUNT) / HALF) + 1;
  const sub = ((i - SUB_COUNT) % HALF) + HALF;
  return (sub << shift) + (1 << (shift - 1));
}

export interface LatencySummary {
  count: number;
  meanMs: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
}

export class LatencyHistogram {
  private readonly counts = new Float64Array(BUCKETS);
  private total = 0;
  private sumUs = 0;
  private maxUs = 0;

  /** Records one latency given in milliseconds (as from performance.now() differences). */
  recordMs(ms: number): void {
    const us = Math.min(MAX_US, Math.max(0, Math.round(ms * 1000)));
    this.counts[indexOf(us)]!++;
    this.total++;
    this.sumUs += us;
    if (us > this.maxUs) this.maxUs = us;
  }

  get count(): number {
    return this.total;
  }

  /** The latency (ms) at quantile q in [0, 1]: the smallest bucket covering q of all samples. */
  quantileMs(q: number): number {
    if (this.total === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.total));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(valueOf(i), this.maxUs) / 1000;
    }
    return this.maxUs / 1000;
  }

  summary(): LatencySummary {
    return {
      count: this.total,
      meanMs: this.total === 0 ? 0 : this.sumUs / this.total / 1000,
      p50Ms: this.quantileMs(0.5),
      p90Ms: this.quantileMs(0.9),
      p99Ms: this.quantileMs(0.99),
      p999Ms: this.quantileMs(0.999),
      maxMs: this.maxUs / 1000,
    };
  }
}

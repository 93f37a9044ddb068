// Per-second counts and latency histograms of a storage node's data requests over the last minute,
// for the admin console. Each worker thread records into its own OpMeter (one bucket increment per
// request); the node's main thread merges the workers' sparse snapshots into NodeMetrics on node_info.
import type { NodeMetrics } from '../../transport/messages.js';

/** Seconds of history kept (the last complete ones are reported; one more slot holds the current second). */
export const METRIC_SECONDS = 60;
const SLOTS = METRIC_SECONDS + 1;
/** Latency buckets: bucket 0 holds up to 10 µs, bucket i up to 10 µs * 2^(i/4) (about 19% wide). */
export const LATENCY_BUCKETS = 100;
const BASE_MS = 0.01;

export function bucketOf(ms: number): number {
  if (!(ms > BASE_MS)) return 0;
  return Math.min(LATENCY_BUCKETS - 1, Math.ceil(4 * Math.log2(ms / BASE_MS)));
}

/** The upper bound of a bucket, in ms. */
export function bucketLimitMs(bucket: number): number {
  return BASE_MS * 2 ** (bucket / 4);
}

/** Sparse snapshot: flat triples [second, bucket, count], only non-empty buckets. */
export type MeterSnapshot = number[];

export class OpMeter {
  private readonly counts = new Uint32Array(SLOTS * LATENCY_BUCKETS);
  /** The unix second each slot currently holds (-1: none). */
  private readonly secondOf = new Float64Array(SLOTS).fill(-1);

  /** One answered request that took `ms`, answered at `nowMs` (wall clock, so workers line up). */
  record(ms: number, nowMs: number): void {
    const sec = Math.floor(nowMs / 1000);
    const slot = sec % SLOTS;
    if (this.secondOf[slot] !== sec) {
      this.counts.fill(0, slot * LATENCY_BUCKETS, (slot + 1) * LATENCY_BUCKETS);
      this.secondOf[slot] = sec;
    }
    this.counts[slot * LATENCY_BUCKETS + bucketOf(ms)]!++;
  }

  /** The non-empty buckets of the METRIC_SECONDS seconds ending with `endSec`. */
  snapshot(endSec: number): MeterSnapshot {
    const out: number[] = [];
    for (let slot = 0; slot < SLOTS; slot++) {
      const sec = this.secondOf[slot]!;
      if (sec > endSec || sec <= endSec - METRIC_SECONDS) continue;
      const base = slot * LATENCY_BUCKETS;
      for (let b = 0; b < LATENCY_BUCKETS; b++) {
        const n = this.counts[base + b]!;
        if (n > 0) out.push(sec, b, n);
      }
    }
    return out;
  }
}

/** The p99 of a histogram (bucket upper bound, ms), or null when it is empty. */
function p99(hist: ArrayLike<number>, offset: number): number | null {
  let total = 0;
  for (let b = 0; b < LATENCY_BUCKETS; b++) total += hist[offset + b]!;
  if (total === 0) return null;
  const rank = Math.ceil(total * 0.99);
  let seen = 0;
  for (let b = 0; b < LATENCY_BUCKETS; b++) {
    seen += hist[offset + b]!;
    if (seen >= rank) return Math.round(bucketLimitMs(b) * 1000) / 1000;
  }
  return null;
}

/** Merges the workers' snapshots of the minute ending with `endSec` into per-second and per-minute figures. */
export function summarize(snapshots: MeterSnapshot[], endSec: number): NodeMetrics {
  const firstSec = endSec - METRIC_SECONDS + 1;
  const perSecond = new Float64Array(METRIC_SECONDS * LATENCY_BUCKETS);
  const minute = new Float64Array(LATENCY_BUCKETS);
  for (const snap of snapshots) {
    for (let i = 0; i + 2 < snap.length; i += 3) {
      const at = snap[i]! - firstSec;
      const b = snap[i + 1]!;
      const n = snap[i + 2]!;
      if (at < 0 || at >= METRIC_SECONDS || b < 0 || b >= LATENCY_BUCKETS) continue;
      perSecond[at * LATENCY_BUCKETS + b]! += n;
      minute[b]! += n;
    }
  }
  const ops: number[] = [];
  const p99Ms: Array<number | null> = [];
  for (let s = 0; s < METRIC_SECONDS; s++) {
    let n = 0;
    for (let b = 0; b < LATENCY_BUCKETS; b++) n += perSecond[s * LATENCY_BUCKETS + b]!;
    ops.push(n);
    p99Ms.push(p99(perSecond, s * LATENCY_BUCKETS));
  }
  const minuteOps = ops.reduce((a, b) => a + b, 0);
  return { endSec, ops, p99Ms, minuteOps, minuteP99Ms: p99(minute, 0) };
}

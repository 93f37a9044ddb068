// Unit tests of the admin console's pure parts: the storage nodes' op meter, value formatting, cursor
// tokens in URLs, the tablet map view (health, last live in-sync replica) and the SVG chart points.
import { describe, expect, it } from 'vitest';
import { bucketLimitMs, bucketOf, LATENCY_BUCKETS, OpMeter, summarize } from '../actors/storage/op-meter.js';
import type { NodeState, TabletMap } from '../transport/messages.js';
import { cursorToken, MAX_TRAIL_CHARS, parseCursor, parseTrail, trailToken } from '../web/admin/cursor.js';
import { formatAgo, formatBytes, formatMs, showName, showValue } from '../web/admin/format.js';
import { holdings, strandedIfStopped, tabletViews } from '../web/admin/tablets.js';
import { chartSegments } from '../web/views/admin-chart.js';

describe('op meter', () => {
  it('puts every latency in a bucket whose limit is at or above it, and at most ~19% above', () => {
    for (const ms of [0.001, 0.01, 0.011, 0.5, 1, 3.3, 250, 10_000]) {
      const b = bucketOf(ms);
      expect(bucketLimitMs(b)).toBeGreaterThanOrEqual(ms * 0.9999);
      if (b > 0) expect(bucketLimitMs(b - 1)).toBeLessThan(ms);
    }
    expect(bucketOf(1e9)).toBe(LATENCY_BUCKETS - 1);
    expect(bucketOf(Number.NaN)).toBe(0);
  });

  it('counts per second, merges workers, and gives p99 per second and per minute', () => {
    const t0 = 1_700_000_000_000; // a whole second
    const a = new OpMeter();
    const b = new OpMeter();
    for (let i = 0; i < 99; i++) a.record(1, t0 + i); // second 0: 99 fast on one worker
    b.record(100, t0 + 500); // ... and one slow on the other
    for (let i = 0; i < 10; i++) b.record(2, t0 + 2000 + i); // second 2
    const end = t0 / 1000 + 2;
    const m = summarize([a.snapshot(end), b.snapshot(end)], end);
    expect(m.ops).toHaveLength(60);
    expect(m.ops.slice(-3)).toEqual([100, 0, 10]);
    expect(m.minuteOps).toBe(110);
    expect(m.p99Ms[57]).toBeCloseTo(bucketLimitMs(bucketOf(1)), 3); // the 99th of 100 is a fast one
    expect(m.p99Ms[58]).toBeNull();
    expect(m.p99Ms[59]).toBeCloseTo(bucketLimitMs(bucketOf(2)), 3);
    expect(m.minuteP99Ms).toBeCloseTo(bucketLimitMs(bucketOf(2)), 3);
    // 61 s later second 0's slot is reused: it starts from zero and no longer counts for second 0.
    a.record(5, t0 + 61_000);
    expect(summarize([a.snapshot(end + 59)], end + 59).minuteOps).toBe(1);
    expect(summarize([a.snapshot(end)], end).minuteOps).toBe(0);
  });
});

describe('value formatting', () => {
  it('shows printable UTF-8 as text, cut at 200 characters with the full size', () => {
    expect(showValue(Buffer.from('héllo\nworld\t!'))).toEqual({ kind: 'text', text: 'héllo\nworld\t!', size: 14, cut: false });
    const long = showValue(Buffer.from('ж'.repeat(1000)));
    expect(long).toEqual({ kind: 'text', text: 'ж'.repeat(200), size: 2000, cut: true });
    // A 4-byte character straddling the decode window does not turn the value into binary.
    const emoji = showValue(Buffer.from('a' + '😀'.repeat(300)));
    expect(emoji.kind).toBe('text');
    expect(emoji.cut).toBe(true);
    expect(showValue(new Uint8Array(0))).toEqual({ kind: 'text', text: '', size: 0, cut: false });
  });

  it('shows anything else as size and a hex preview', () => {
    expect(showValue(new Uint8Array([0xff, 0xfe, 0x41]))).toEqual({ kind: 'binary', hex: 'ff fe 41', size: 3, cut: false });
    expect(showValue(Buffer.from('bell\u0007'))).toEqual({ kind: 'binary', hex: '62 65 6c 6c 07', size: 5, cut: false });
    const big = showValue(new Uint8Array(1 << 20).fill(0));
    expect(big).toEqual({ kind: 'binary', hex: Array(32).fill('00').join(' '), size: 1 << 20, cut: true });
  });

  it('makes control characters in names visible and cuts long names', () => {
    expect(showName('a\u0000b\nc')).toEqual({ text: 'a\\x00b\\x0ac', length: 5, cut: false });
    expect(showName('x'.repeat(5000))).toEqual({ text: 'x'.repeat(120), length: 5000, cut: true });
  });

  it('formats sizes, ages and latencies', () => {
    expect([formatBytes(12), formatBytes(1536), formatBytes(5 << 20)]).toEqual(['12 B', '1.5 KiB', '5.0 MiB']);
    expect([formatAgo(null), formatAgo(120), formatAgo(3200), formatAgo(240_000)]).toEqual(['never', '120 ms ago', '3.2 s ago', '4 min ago']);
    expect([formatMs(null), formatMs(0.25), formatMs(12.34), formatMs(1234)]).toEqual(['–', '250 µs', '12.3 ms', '1234 ms']);
  });
});

describe('cursor tokens', () => {
  it('round-trips cursors with any characters, and refuses damaged ones', () => {
    const c: [string, string] = ['row with spaces/&?=#', 'col\u0000é😀'];
    const token = cursorToken(c);
    expect(token).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(parseCursor(token)).toEqual(c);
    expect(parseCursor(undefined)).toBeNull();
    expect(parseCursor('')).toBeNull();
    for (const bad of ['%%%', 'not json!', Buffer.from('"x"').toString('base64url'), Buffer.from('[1,2]').toString('base64url'), Buffer.from('["a","b","c"]').toString('base64url')]) {
      expect(parseCursor(bad)).toBeUndefined();
    }
    expect(parseCursor(cursorToken(['x'.repeat(5000), 'c']))).toBeUndefined(); // names over the store's limit
  });

  it('keeps trails bounded by dropping their oldest entries', () => {
    const trail = [null, ['a', 'b'], ['c', 'd']] as Array<[string, string] | null>;
    expect(parseTrail(trailToken(trail))).toEqual(trail);
    expect(parseTrail('')).toEqual([]);
    expect(parseTrail(Buffer.from('[1]').toString('base64url'))).toBeUndefined();
    const long = Array.from({ length: 500 }, (_, i): [string, string] => [`row-${i}-${'x'.repeat(40)}`, 'col']);
    const token = trailToken(long);
    expect(token.length).toBeLessThanOrEqual(MAX_TRAIL_CHARS);
    const kept = parseTrail(token)!;
    expect(kept.length).toBeGreaterThan(10);
    expect(kept).toEqual(long.slice(long.length - kept.length)); // the newest are kept
  });
});

describe('tablet map view', () => {
  const map: TabletMap = {
    version: 9,
    tablets: 3,
    replication: 3,
    nodes: [],
    assignments: [
      { id: 0, replicas: ['s1', 's2', 's3'], primary: 's1', epoch: 4, inSync: ['s1', 's2', 's3'], lsn: { s1: 10, s2: 10, s3: 7 } },
      { id: 1, replicas: ['s2', 's3', 's1'], primary: 's2', epoch: 2, inSync: ['s2'], lsn: { s2: 5, s3: 1, s1: 5 } },
      { id: 2, replicas: ['s3', 's1', 's2'], primary: null, epoch: 3, inSync: ['s3', 's1'], lsn: { s3: 3 } },
    ],
  };
  const states = new Map<string, NodeState>([
    ['s1', 'alive'],
    ['s2', 'recovering'],
    ['s3', 'stopped'],
  ]);

  it('marks each replica ok, lagging, catching up or down, and tablets without a live primary', () => {
    const v = tabletViews(map, states);
    expect(v[0]!.replicas.map((r) => [r.node, r.health, r.behind])).toEqual([
      ['s1', 'ok', 0],
      ['s2', 'ok', 0],
      ['s3', 'down', 3],
    ]);
    expect(v[1]!.replicas.map((r) => r.health)).toEqual(['ok', 'down', 'catching_up']);
    expect(v[2]!.available).toBe(false);
    expect(v[2]!.replicas.find((r) => r.node === 's2')!.lsn).toBeNull();
    expect(holdings(map, 's1')).toEqual({ held: 3, primaries: 1 });
  });

  it('finds the tablets a stop would leave without a live in-sync replica', () => {
    expect(strandedIfStopped(map, states, 's2')).toEqual([1]);
    expect(strandedIfStopped(map, states, 's1')).toEqual([2]);
    expect(strandedIfStopped(map, states, 's3')).toEqual([]); // already down: stopping changes nothing
    const allUp = new Map<string, NodeState>([['s1', 'alive'], ['s2', 'alive'], ['s3', 'alive']]);
    expect(strandedIfStopped(map, allUp, 's1')).toEqual([]);
  });
});

describe('chart', () => {
  it('draws runs of values as polylines, leaving gaps for missing seconds', () => {
    const segs = chartSegments([0, 10, null, 5, 5, null, 10], 10);
    expect(segs).toHaveLength(3);
    expect(segs[0]).toBe('2.0,46.0 41.3,2.0');
    expect(segs[2]!.split(' ')).toHaveLength(1);
    expect(chartSegments([0, 0], 0)).toEqual(['2.0,46.0 238.0,46.0']);
  });
});

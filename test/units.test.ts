// Unit tests of the pure parts: codec, message validation, topology, partitioning, tablet state, mailbox, eviction.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Actor } from '../actors/actor.js';
import { FRONTEND_OLD_SPACE_FLOOR_MB, nodeProcessArgs, nodeProcessEnv, STORAGE_MALLOC_ENV } from '../actors/launcher.js';
import { MasterCore, initialAssignments } from '../actors/master-core.js';
import { masterOptions } from '../actors/master.js';
import { fromWire, RecordRing, ReplicaCore } from '../actors/storage/replica-core.js';
import { ColdValue } from '../actors/storage/wal.js';
import { ScavengePacer } from '../actors/storage/young-gc.js';
import { TabletHost } from '../actors/storage/tablet-host.js';
import { WorkerLog } from '../actors/storage/worker-log.js';
import { TabletState } from '../actors/storage/tablet-state.js';
import { VALUE_FILE_BYTES } from '../actors/storage/value-files.js';
import { decodeFrame, encodeFrame, encodeValue, isProblem } from '../transport/codec.js';
import type { DataRequest, Reply, ReplReq } from '../transport/messages.js';
import { catchupRepProblem, MAX_SCAN_BYTES, validateRequest, type WireRecord } from '../transport/messages.js';
import { hashRow, tabletOf, tabletsOfWorker } from '../transport/partition.js';
import { ringBytesPerTablet } from '../actors/storage/node.js';
import { ConfigError, parseTopology } from '../transport/topology.js';
import { topologyText } from './support/cluster.js';

describe('codec', () => {
  it('round-trips every request and reply shape', () => {
    const value = Buffer.from([0, 1, 2, 255]);
    const bodies = [
      { t: 'put', tablet: 3, row: 'r', col: 'c', value },
      { t: 'cput', tablet: 0, row: 'ü', col: '', expect: null, value: Buffer.alloc(0) },
      { t: 'scan', tablet: 1, after: ['a', 'b'], limit: 10 },
      { t: 'scan', tablet: 1, after: null, limit: 10 },
      { t: 'mismatch', current: value },
      { t: 'error', code: 'not_mine', message: 'no' },
    ] as const;
    for (const body of bodies) {
      const f = decodeFrame(encodeFrame(42, body as never), 1 << 20);
      expect(isProblem(f)).toBe(false);
      expect(f).toEqual({ id: 42, body });
    }
  });

  it('reports garbage, wrong shapes and oversized frames without throwing', () => {
    expect(isProblem(decodeFrame(Buffer.from([0xff, 0xfe, 0x00]), 100))).toBe(true);
    expect(isProblem(decodeFrame(encodeFrame(1, { t: 'ok' }).subarray(0, 3), 100))).toBe(true);
    expect(decodeFrame(Buffer.alloc(101), 100)).toMatchObject({ id: null, reason: expect.stringContaining('exceeds') });
    expect(isProblem(decodeFrame(encodeValue('just a string'), 100))).toBe(true);
    expect(isProblem(decodeFrame(encodeValue([-1, { t: 'ok' }]), 100))).toBe(true);
  });

  it('validates requests field by field', () => {
    expect(validateRequest({ t: 'get', tablet: 1, row: 'r', col: 'c' })).toMatchObject({ t: 'get' });
    expect(validateRequest({ t: 'get', tablet: -1, row: 'r', col: 'c' })).toBe('get.tablet must be int');
    expect(validateRequest({ t: 'put', tablet: 1, row: 'r', col: 'c', value: 'text' })).toBe('put.value must be bytes');
    expect(validateRequest({ t: 'nope' })).toMatch(/unknown request type/);
    expect(validateRequest([1, 2])).toMatch(/must be a map/);
    expect(validateRequest({ t: 'get', tablet: 1, row: 'x'.repeat(5000), col: 'c' })).toMatch(/row/);
  });

  it("refuses a peer's catch-up reply whose records or cells are not well-formed", () => {
    const rec = (value: unknown) => [1, 1, 1, 'r', 'c', value] as unknown as WireRecord;
    expect(catchupRepProblem({ t: 'catchup_rep', mode: 'tail', records: [rec(Buffer.from('x')), rec(null)], joined: false })).toBeNull();
    expect(catchupRepProblem({ t: 'catchup_rep', mode: 'tail', records: [rec({ ref: [1, 0, 3, 0], length: 3 })], joined: false })).toMatch(/malformed records/);
    expect(catchupRepProblem({ t: 'catchup_rep', mode: 'snapshot', id: 1, lsn: 1, epoch: 1, cells: [['r', 'c', 'text' as unknown as Uint8Array]], offset: 0, done: true })).toMatch(/malformed cells/);
    expect(catchupRepProblem({ t: 'catchup_rep', mode: 'in_sync' })).toBeNull();
  });
});

describe('topology', () => {
  const good = topologyText({ basePort: 9000, storageNodes: 3 });

  it('parses a good file with defaults', () => {
    const t = parseTopology(good);
    expect(t.storage.map((s) => s.name)).toEqual(['s1', 's2', 's3']);
    expect(t.storage[0]!.workerPorts).toEqual([9011, 9012]);
    expect(t.cluster.mailDomain).toBe('penncloud.local');
  });

  it('names the offending key', () => {
    const bad = (text: string): string => {
      try {
        parseTopology(text);
        return 'no error';
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        return (e as Error).message;
      }
    };
    expect(bad(good.replace('tablets = 16', 'tablets = "many"'))).toMatch(/cluster\.tablets must be an integer/);
    expect(bad(good.replace('replication = 1', 'replication = 5'))).toMatch(/cluster\.replication/);
    expect(bad(good.replace('[cluster]', '[cluster]\ntablet = 3'))).toMatch(/unknown key cluster\.tablet/);
    expect(bad(good.replace('port = 9020', 'port = 9011'))).toMatch(/port 127\.0\.0\.1:9011/);
    expect(bad(good.replace('name = "s2"', 'name = "s1"'))).toMatch(/'s1' is used twice/);
    expect(bad('[cluster\n')).toMatch(/not valid TOML/);
    expect(bad(good.replace(/\[\[storage\]\][^[]*/g, ''))).toMatch(/storage/);
  });

  it('starts a frontend with a floor under its old generation, and the other nodes without V8 flags', () => {
    const t = parseTopology(topologyText({ basePort: 9000, storageNodes: 1, frontends: 1 }));
    const args = (name: string): string[] => nodeProcessArgs(t, name, 'topo.toml', 'data', 'cli.js');
    expect(args('web1')).toEqual([`--initial-old-space-size=${FRONTEND_OLD_SPACE_FLOOR_MB}`, 'cli.js', 'node', 'web1', '--topology', 'topo.toml', '--data', 'data']);
    expect(args('s1')).toEqual(['cli.js', 'node', 's1', '--topology', 'topo.toml', '--data', 'data']);
    expect(args('master')[0]).toBe('cli.js');
  });

  it("starts a storage node with glibc malloc settings, and the other nodes with the launcher's environment only", () => {
    const t = parseTopology(topologyText({ basePort: 9000, storageNodes: 1, frontends: 1 }));
    const base = { PATH: '/bin', MALLOC_TRIM_THRESHOLD_: 'mine' };
    expect(nodeProcessEnv(t, 's1', base)).toEqual({ PATH: '/bin', ...STORAGE_MALLOC_ENV });
    expect(nodeProcessEnv(t, 'web1', base)).toEqual(base);
    expect(nodeProcessEnv(t, 'master', base)).toEqual(base);
    expect(Number(STORAGE_MALLOC_ENV['MALLOC_MMAP_THRESHOLD_'])).toBeGreaterThan(1 << 20); // a 1 MiB chunk comes from the heap
  });

  it('spreads replica sets evenly', () => {
    const a = initialAssignments(['s1', 's2', 's3', 's4'], 32, 3);
    const primaries = new Map<string, number>();
    for (const x of a) {
      expect(new Set(x.replicas).size).toBe(3);
      expect(x.inSync).toEqual(x.replicas);
      primaries.set(x.primary!, (primaries.get(x.primary!) ?? 0) + 1);
    }
    expect([...primaries.values()]).toEqual([8, 8, 8, 8]);
  });
});

describe('partitioning', () => {
  it("splits each worker's catch-up budget evenly over the tablets it serves", () => {
    for (const workers of [1, 2, 3]) {
      const c = { tablets: 32, nodes: 4, workers, replication: 3 };
      let total = 0;
      for (let node = 0; node < 4; node++) {
        const perWorker = Array.from({ length: workers }, (_, w) => tabletsOfWorker(node, w, c));
        if (workers <= 2) expect(new Set(perWorker).size).toBe(1); // 8 runs of 4 tablets split evenly over 1 or 2 workers
        total += perWorker.reduce((a, b) => a + b, 0);
      }
      expect(total).toBe(32 * 3); // every replica of every tablet counted once
    }
    const text = readFileSync(new URL('../topology.toml', import.meta.url), 'utf8');
    const topo = parseTopology(text);
    // 32 tablets x 3 replicas over 4 nodes: 24 tablets per worker share the default 64 MiB.
    expect(ringBytesPerTablet(topo, 0, 0, 1)).toBe(Math.floor((64 << 20) / 24));
    const small = parseTopology(text.replace('catchup_mb = 64', 'catchup_mb = 2'));
    expect(ringBytesPerTablet(small, 0, 0, 1)).toBe(1 << 20); // never under 1 MiB
    expect(() => parseTopology(text.replace('catchup_mb = 64', 'catchup_mb = 0'))).toThrow(ConfigError);
  });

  it('is stable and spreads rows', () => {
    expect(hashRow('alice')).toBe(hashRow('alice'));
    const counts = new Array(16).fill(0);
    for (let i = 0; i < 16_000; i++) counts[tabletOf(`user${i}`, 16)]++;
    for (const c of counts) expect(c).toBeGreaterThan(700);
  });
});

describe('master core', () => {
  const topo = parseTopology(topologyText({ basePort: 9000, storageNodes: 3, replication: 3, tablets: 3 }));
  const report = (id: number, lsn: number) => ({ id, resident: true, lsn, cells: 1, epoch: 1, role: 'replica' as const });

  it('marks nodes alive on heartbeat and dead after node_dead_ms, bumping the map version', () => {
    const m = new MasterCore(masterOptions(topo), null, 0);
    expect(m.takeEffects().some((e) => e.kind === 'persist')).toBe(true);
    expect(m.map().nodes.map((n) => n.state)).toEqual(['unknown', 'unknown', 'unknown']);
    expect(m.heartbeat('s1', 10, [report(0, 7)], false, 1000)).toBe(400);
    expect(m.heartbeat('nobody', 10, [], false, 1000)).toBeNull();
    const v = m.mapVersion;
    m.tick(1100);
    expect(m.map().nodes[0]!.state).toBe('alive');
    expect(m.map().assignments[0]!.lsn).toEqual({ s1: 7 });
    for (let t = 1150; t < 1400; t += 50) m.tick(t); // the master ticks every heartbeat_ms / 2
    m.tick(1000 + 401);
    expect(m.map().nodes[0]!.state).toBe('dead');
    expect(m.mapVersion).toBeGreaterThan(v);
  });

  it('fails over only after the lease expired, to the longest in-sync log, fencing with a new epoch', () => {
    const m = new MasterCore(masterOptions(topo), null, 0);
    const beat = (t: number, ...nodes: string[]): void => {
      for (const n of nodes) m.heartbeat(n, 1, [], false, t);
    };
    for (let t = 0; t <= 1000; t += 100) beat(t, 's1', 's2', 's3');
    m.takeEffects();
    // s1 (primary of tablet 0) falls silent after t=1000; its lease ran until 1000+400 at most.
    for (let t = 1100; t <= 1400; t += 100) beat(t, 's2', 's3');
    m.tick(1420);
    expect(m.map().assignments[0]!.primary).toBe('s1'); // dead, but its lease may still be valid
    beat(1500, 's2', 's3');
    const asks = m.takeEffects().filter((e) => e.kind === 'position');
    expect(m.map().assignments[0]).toMatchObject({ primary: null, epoch: 2 });
    expect(asks.filter((e) => e.kind === 'position' && e.tablet === 0).map((e) => (e as { node: string }).node).sort()).toEqual(['s2', 's3']);
    m.positionReply('s2', 0, 2, 41, 1510);
    expect(m.map().assignments[0]!.primary).toBeNull(); // waits for s3 too
    m.positionReply('s3', 0, 2, 42, 1515);
    expect(m.map().assignments[0]).toMatchObject({ primary: 's3', epoch: 2, inSync: ['s2', 's3'] });
    expect(m.takeEffects().some((e) => e.kind === 'persist')).toBe(true);
    // s1 comes back: not in sync until its new primary says so.
    beat(1600, 's1', 's2', 's3');
    expect(m.status(1600, 1).find((n) => n.name === 's1')!.state).toBe('recovering');
    expect(m.inSync(0, 's1', 1, 1600)).toBe(false); // stale epoch
    expect(m.inSync(0, 's1', 2, 1600)).toBe(true);
    expect(m.map().assignments[0]!.inSync).toContain('s1');
  });

  it('does not take every node for dead after being paused itself, but still finds a node that died meanwhile', () => {
    for (const s1Died of [false, true]) {
      const m = new MasterCore(masterOptions(topo), null, 0);
      let t = 0;
      const run = (until: number, nodes: string[]): void => {
        for (; t <= until; t += 50) {
          if (t % 100 === 0) for (const n of nodes) m.heartbeat(n, 1, [], false, t);
          m.tick(t);
        }
      };
      run(1000, ['s1', 's2', 's3']);
      m.takeEffects();
      // The master does not run from 1000 to 2500; then it reads the heartbeats waiting in its socket.
      t = 2500;
      run(4000, s1Died ? ['s2', 's3'] : ['s2', 's3', 's1']);
      const logs = m.takeEffects().flatMap((e) => (e.kind === 'log' ? [e.msg] : []));
      expect(logs.some((l) => l.includes('did not run for 1500 ms'))).toBe(true);
      if (s1Died) {
        expect(m.map().nodes[0]!.state).toBe('dead');
        expect(logs.some((l) => l.includes('tablet 0: primary s1 is down'))).toBe(true);
      } else {
        expect(logs.filter((l) => / is dead|is down|electing/.test(l))).toEqual([]);
        expect(m.map().assignments.map((a) => [a.primary, a.epoch, a.inSync.length])).toEqual([
          ['s1', 1, 3],
          ['s2', 1, 3],
          ['s3', 1, 3],
        ]);
      }
    }
  });

  it('keeps an in-sync set intact while no primary lives, and refuses to drop the primary', () => {
    const m = new MasterCore(masterOptions(topo), null, 0);
    expect(m.drop(0, 's1', 1, 0)).toBe(false); // s1 is tablet 0's primary
    expect(m.drop(0, 's2', 1, 0)).toBe(true);
    expect(m.map().assignments[0]!.inSync).toEqual(['s1', 's3']);
    m.tick(10_000); // nobody ever heard from: everyone down after the start-up grace
    const a = m.map().assignments[0]!;
    expect(a.primary).toBeNull();
    expect(a.inSync).toEqual(['s1', 's3']);
  });
});

describe('tablet state machine', () => {
  const put = (s: TabletState, row: string, col: string, v: string): Reply => {
    const d = s.decide({ t: 'put', tablet: 0, row, col, value: Buffer.from(v) }, 100);
    if (d.record) s.apply(d.record);
    return d.reply;
  };

  it('decides writes as log records with consecutive lsns and applies them', () => {
    const s = new TabletState(0);
    put(s, 'r', 'a', '1');
    put(s, 'r', 'b', '2');
    expect(s.lsn).toBe(2);
    expect(s.cells).toBe(2);
    const del = s.decide({ t: 'del', tablet: 0, row: 'r', col: 'a' }, 100);
    expect(del.record).toMatchObject({ lsn: 3, kind: 'del' });
    s.apply(del.record!);
    expect(s.decide({ t: 'del', tablet: 0, row: 'r', col: 'a' }, 100)).toEqual({ reply: { t: 'not_found' }, record: null });
    expect(s.decide({ t: 'cols', tablet: 0, row: 'r' }, 100).reply).toEqual({ t: 'cols', cols: ['b'] });
    expect(() => s.apply({ lsn: 9, epoch: 1, kind: 'put', row: 'x', col: 'y', value: Buffer.from('') })).toThrow(/does not follow/);
  });

  it('decides CPUT at the state and logs only its outcome', () => {
    const s = new TabletState(0);
    const absent = s.decide({ t: 'cput', tablet: 0, row: 'r', col: 'c', expect: null, value: Buffer.from('x') }, 100);
    expect(absent.reply).toEqual({ t: 'ok' });
    expect(absent.record).toMatchObject({ kind: 'put', lsn: 1 });
    s.apply(absent.record!);
    const wrong = s.decide({ t: 'cput', tablet: 0, row: 'r', col: 'c', expect: Buffer.from('y'), value: Buffer.from('z') }, 100);
    expect(wrong.record).toBeNull();
    expect(wrong.reply).toEqual({ t: 'mismatch', current: Buffer.from('x') });
    const right = s.decide({ t: 'cput', tablet: 0, row: 'r', col: 'c', expect: Buffer.from('x'), value: Buffer.from('z') }, 100);
    expect(right.reply).toEqual({ t: 'ok' });
  });

  it('pages in (row, col) order with a cursor, each cell once', () => {
    const s = new TabletState(0);
    for (let i = 0; i < 57; i++) put(s, `row${String(i % 19).padStart(2, '0')}`, `c${i}`, 'v');
    const seen: string[] = [];
    let after: [string, string] | null = null;
    do {
      const rep = s.scan(after, 10);
      if (rep.t !== 'scan') throw new Error('scan');
      seen.push(...rep.cells.map(([r, c]) => `${r}/${c}`));
      after = rep.next;
    } while (after);
    expect(seen.length).toBe(57);
    expect([...seen].sort()).toEqual(seen);
  });

  it('ends a scan page once its values pass MAX_SCAN_BYTES, and pages on from there', () => {
    const s = new TabletState(0);
    for (let i = 0; i < 10; i++) put(s, `big${i}`, 'c', 'x'.repeat(1 << 20));
    const first = s.scan(null, 1000);
    if (first.t !== 'scan') throw new Error('scan');
    expect(first.cells.length).toBe(MAX_SCAN_BYTES / (1 << 20)); // 4 of 1 MiB, not 10
    expect(first.next).toEqual(['big3', 'c']);
    const rest = s.scan(first.next, 1000);
    if (rest.t !== 'scan') throw new Error('scan');
    expect(rest.cells.map(([r]) => r)).toEqual(['big4', 'big5', 'big6', 'big7']);
    put(s, 'huge', 'c', 'y'.repeat(5 << 20));
    const one = s.scan(['big9', 'c'], 1000);
    if (one.t !== 'scan') throw new Error('scan');
    expect(one.cells.map(([r]) => r)).toEqual(['huge']); // a cell bigger than the budget still goes, alone
  });

  it('keeps its own copy of a value that arrived inside a bigger message, and an attachment as it came', () => {
    // A frame decoded from a zmq message: the value is a view into the receive buffer.
    const frame = decodeFrame(encodeFrame(7, { t: 'put', tablet: 0, row: 'r', col: 'c', value: Buffer.alloc(1024, 1) }), 1 << 20);
    if (isProblem(frame)) throw new Error(frame.reason);
    const small = (frame.body as { value: Uint8Array }).value;
    expect(small.buffer.byteLength).toBeGreaterThan(small.byteLength); // a view, as decoded
    const s = new TabletState(0);
    const d = s.decide({ t: 'put', tablet: 0, row: 'r', col: 'c', value: small }, 100);
    s.apply(d.record!);
    const kept = s.get('r', 'c')!;
    expect(Buffer.from(kept).equals(Buffer.alloc(1024, 1))).toBe(true);
    expect(kept.buffer).not.toBe(small.buffer); // the received message is not pinned by the cell
    expect(kept.buffer.byteLength).toBe(1024); // nor a shared pool slab
    small.fill(9); // the receive buffer is reused: the cell does not change
    expect(kept[0]).toBe(1);
    // A replica's record from the wire: the same.
    const wired = fromWire([1, 1, 1, 'r', 'c', small]);
    expect(wired.value!.buffer).not.toBe(small.buffer);

    const big = Buffer.alloc(64 << 10, 2); // an attachment: a zmq part of its own
    const d2 = s.decide({ t: 'put', tablet: 0, row: 'r', col: 'big', value: big }, 100);
    expect(d2.record!.value).toBe(big); // a message of its own: no copy
    // A big value sent inline, inside a bigger message: copied, so it does not pin the message.
    const inline = Buffer.alloc((64 << 10) + 100, 3).subarray(50, 50 + (64 << 10));
    const d3 = s.decide({ t: 'put', tablet: 0, row: 'r', col: 'inline', value: inline }, 100);
    expect(d3.record!.value!.buffer.byteLength).toBe(64 << 10);
    expect(Buffer.from(d3.record!.value!).equals(inline)).toBe(true);
  });
});

describe('actor mailbox', () => {
  class Recorder extends Actor<number> {
    log: string[] = [];
    protected override receive(n: number): void | Promise<void> {
      this.log.push(`start ${n}`);
      if (n % 2 === 0) {
        return new Promise((r) =>
          setTimeout(() => {
            this.log.push(`end ${n}`);
            r();
          }, 5),
        );
      }
      if (n === 7) throw new Error('boom');
      this.log.push(`end ${n}`);
    }
  }

  it('handles one message at a time, in order, even when handlers are async', async () => {
    const a = new Recorder('rec', 100);
    for (const n of [1, 2, 3, 4, 5]) a.tell(n);
    await new Promise((r) => setTimeout(r, 50));
    expect(a.log).toEqual(['start 1', 'end 1', 'start 2', 'end 2', 'start 3', 'end 3', 'start 4', 'end 4', 'start 5', 'end 5']);
  });

  it('bounds its mailbox and stops when a handler crashes', async () => {
    const a = new Recorder('rec', 2);
    expect(a.tell(2)).toBe(true); // running
    expect(a.tell(4)).toBe(true);
    expect(a.tell(6)).toBe(true);
    expect(a.tell(8)).toBe(false); // full
    await new Promise((r) => setTimeout(r, 50));
    a.tell(7);
    expect(a.isStopped).toBe(true);
    expect(a.tell(1)).toBe(false);
  });
});

/** Replica core options for unit tests (worker.ts has the production ones). */
const CORE_OPTS = { maxScan: 100, ringRecords: 1000, ringBytes: 1 << 20, batchBytes: 1 << 20, maxInflightBatches: 4, retransmitMs: 200, idleProbeMs: 1000, joinerTimeoutMs: 1000, dropAfterMs: 1000, retryMs: 100, commitTimeoutMs: 5000 };

type CoreInput = Parameters<ReplicaCore['handle']>[0];

/**
 * The primary ('a') of tablet 1 as a pure core, with peers that acknowledge every repl durable up to
 * its last record once `settle` delivers the acknowledgements; `lose(peer)` loses the next repl to it.
 */
class PrimaryHarness {
  readonly core: ReplicaCore;
  now = 0;
  lsn = 0; // where the primary's log ends
  readonly notices: string[] = []; // to the master: "in_sync d", "drop b", ...
  readonly replies: Reply[] = [];
  readonly repls = new Map<string, number>(); // repl requests sent, per peer
  readonly held: CoreInput[] = []; // acknowledgements not yet delivered
  private readonly losing = new Set<string>();

  constructor(overrides: Partial<typeof CORE_OPTS> = {}) {
    this.core = new ReplicaCore({ ...CORE_OPTS, ...overrides, me: 'a', tablet: 1 }, { state: new TabletState(1, 0, 1), lastEpoch: 1, clean: true });
  }

  start(replicas: string[], inSync: string[]): void {
    this.feed({ kind: 'config', cfg: { epoch: 1, primary: 'a', replicas, inSync } });
    this.feed({ kind: 'lease', until: 1e9 });
    this.settle();
  }

  feed(input: CoreInput): void {
    for (const e of this.core.handle(input, this.now)) {
      if (e.kind === 'master') this.notices.push(`${e.req.t} ${e.req.node}`);
      if (e.kind === 'reply') this.replies.push(e.reply);
      if (e.kind === 'append') this.lsn = e.record.lsn;
      if (e.kind !== 'send' || e.req.t !== 'repl') continue;
      this.repls.set(e.to, (this.repls.get(e.to) ?? 0) + 1);
      if (this.losing.delete(e.to)) continue;
      const last = e.req.records.length > 0 ? e.req.records[e.req.records.length - 1]![0] : e.req.prevLsn;
      this.held.push({ kind: 'repl_ack', from: e.to, rep: { t: 'repl_ack', epoch: 1, ok: true, reason: 'ok', lastLsn: last, durable: last } });
    }
  }

  settle(): void {
    while (this.held.length > 0) this.feed(this.held.shift()!);
  }

  lose(peer: string): void {
    this.losing.add(peer);
  }

  /** A client PUT, made durable on the primary (its acknowledgement from peers is up to `settle`). */
  put(token: number, row: string, value: string): void {
    this.feed({ kind: 'client', token, req: { t: 'put', tablet: 1, row, col: 'c', value: Buffer.from(value) } });
    this.feed({ kind: 'durable', lsn: this.lsn });
  }

  tick(ms: number): void {
    this.now += ms;
    this.feed({ kind: 'tick' });
  }
}

describe('replica core pacing', () => {
  it('an idle primary probes each peer once per idleProbeMs, not on every tick', () => {
    const h = new PrimaryHarness();
    h.start(['a', 'b', 'c'], ['a', 'b', 'c']);
    while (h.now < 10_000) {
      h.tick(50);
      h.settle();
    }
    // Ten idle seconds: about ten probes per peer (plus the first ones that learn where their logs end).
    for (const peer of ['b', 'c']) {
      expect(h.repls.get(peer)).toBeGreaterThanOrEqual(8);
      expect(h.repls.get(peer)).toBeLessThanOrEqual(14);
    }
  });
});

describe('replica core drops', () => {
  it('a write to a tablet idle for longer than dropAfterMs does not drop its caught-up replicas before they can answer', () => {
    const h = new PrimaryHarness();
    h.start(['a', 'b', 'c'], ['a', 'b', 'c']);
    h.put(1, 'r', 'x');
    h.settle();
    // Idle for five seconds (peers answer the probes, nothing advances).
    while (h.now < 5000) {
      h.tick(50);
      h.settle();
    }
    // A write; a tick comes before the replicas' acknowledgements.
    h.put(2, 'r', 'y');
    h.tick(10);
    expect(h.notices.filter((n) => n.startsWith('drop'))).toEqual([]);
    h.settle();
    expect(h.replies.filter((r) => r.t === 'ok')).toHaveLength(2);
    // A replica that really stops answering is still dropped.
    h.put(3, 'r', 'z');
    for (let i = 0; i < 40; i++) {
      h.held.length = 0;
      h.tick(50);
    }
    expect(h.notices).toEqual(expect.arrayContaining(['drop b', 'drop c']));
  });
});

describe('replica core joins', () => {
  it('a joiner whose first probe is lost is resent what it lacks, not records it has that the ring no longer holds', () => {
    const h = new PrimaryHarness({ ringRecords: 5 });
    h.start(['a', 'b', 'd'], ['a', 'b']);
    for (let i = 0; i < 20; i++) {
      h.put(i, `r${i}`, 'x');
      h.settle();
    }
    expect(h.lsn).toBe(20);
    // d had records up to 18 (the ring starts at 16); the probe that follows its join is lost.
    h.lose('d');
    h.feed({ kind: 'catchup', token: 99, req: { t: 'catchup', tablet: 1, epoch: 1, from: 'd', lastLsn: 18, lastEpoch: 1, snapshot: null } });
    for (let i = 0; i < 20 && !h.notices.includes('in_sync d'); i++) {
      h.tick(50);
      h.settle();
    }
    expect(h.notices).toContain('in_sync d');
    expect(h.core.peerStates().d).toMatchObject({ joiner: true, acked: 20 });
  });
});

describe('tablet memory', () => {
  it('holds a big value cold once it is durable in its value file: memory holds big values only while they are written', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'penncloud-host-'));
    const core = { ...CORE_OPTS, me: 'solo' };
    const opts = { me: 'solo', resident: 2, checkpointBytes: 1 << 30, logBytes: 1 << 30, mailbox: 100, core };
    const env = { send: () => Promise.reject(new Error('no peers')), master: () => Promise.reject(new Error('no master')), log: () => undefined };
    const host = new TabletHost(opts, env, await WorkerLog.open({ dataDir: dir, worker: 0, owns: () => true, maxRecordBytes: 4 << 20, segmentBytes: 1 << 20 }));
    host.setConfigs(new Map([[0, { epoch: 1, primary: 'solo', replicas: ['solo'], inSync: ['solo'] }]]));
    host.setLease(Number.MAX_SAFE_INTEGER);
    const call = (req: DataRequest): Promise<Reply> => new Promise((resolve) => host.dispatch(req, resolve));
    const big = (i: number): Buffer => Buffer.alloc(VALUE_FILE_BYTES * 2 + i, `big ${i} `);
    for (let i = 0; i < 5; i++) expect(await call({ t: 'put', tablet: 0, row: `r${i}`, col: 'c', value: big(i) })).toEqual({ t: 'ok' });
    expect(await call({ t: 'put', tablet: 0, row: 'small', col: 'c', value: Buffer.from('tiny') })).toEqual({ t: 'ok' });
    expect(host.hotBytes).toBe(4); // no checkpoint yet: the big values went cold when their writes were durable
    for (let i = 0; i < 5; i++) {
      const rep = await call({ t: 'get', tablet: 0, row: `r${i}`, col: 'c' });
      expect(rep.t === 'value' && Buffer.from(rep.value).equals(big(i))).toBe(true);
    }
    await host.closeAll(false);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('catch-up ring with cold values', () => {
  const rec = (lsn: number, value: Uint8Array) => ({ lsn, epoch: 1, kind: 'put' as const, row: `r${lsn}`, col: 'c', value });
  // A stand-in for the value files: value i lies in file 10 + i.
  const files = new Map<Uint8Array, number>();
  const coldOf = (v: Uint8Array): ColdValue | null => (files.has(v) ? new ColdValue([files.get(v)!, 0, v.length, 0]) : null);

  it('holds durable big values cold, keeps the same records within the same limits, and knows the oldest file they lie in', () => {
    const ring = new RecordRing(0, 1, 1000, 2500);
    const values = Array.from({ length: 8 }, (_, i) => Buffer.alloc(i % 2 === 0 ? 1000 : 10, i));
    values.forEach((v, i) => {
      if (v.length === 1000) files.set(v, 10 + i);
    });
    for (let i = 0; i < 4; i++) ring.push(rec(i + 1, values[i]!));
    expect(ring.coldFloor()).toBeNull();
    ring.cool(3, coldOf); // records 1-3 durable: 1 and 3 are big
    expect(ring.get(1)!.value).toBeInstanceOf(ColdValue);
    expect(ring.get(2)!.value).toBe(values[1]); // small: kept as it is
    expect(ring.get(3)!.value).toBeInstanceOf(ColdValue);
    expect(ring.get(4)!.value).toBe(values[3]); // not durable yet
    expect(ring.coldFloor()).toBe(10);
    // Cold values count as if held: the byte limit evicts exactly the records it evicted before.
    for (let i = 4; i < 8; i++) ring.push(rec(i + 1, values[i]!));
    // 4 x 1000 + 4 x 10 + 8 x ~35 of overhead is over 2500: records 1-3 go, as they would if held.
    expect(ring.first).toBe(4);
    expect(ring.coldFloor()).toBeNull(); // the cold ones went with them
    ring.cool(8, coldOf);
    expect(ring.coldFloor()).toBe(14);
    expect(ring.slice(4, 1 << 20).map((r) => r.value instanceof ColdValue)).toEqual([false, true, false, true, false]);
    // The floor is the lowest file of any cold record kept, whichever record lies there.
    const early = Buffer.alloc(1000, 9);
    files.set(early, 3);
    ring.push(rec(9, early));
    ring.cool(9, coldOf);
    expect(ring.coldFloor()).toBe(3);
    ring.reset(100, 2);
    expect(ring.coldFloor()).toBeNull();
  });

  it('a primary holds cold only the records every peer has been sent: a batch waiting for a slot is not read back', () => {
    const h = new PrimaryHarness({ maxInflightBatches: 1 });
    h.start(['a', 'b', 'c'], ['a', 'b', 'c']);
    // Values 'bigN' lie in value file N (a stand-in for the value files).
    const coldOfBig = (v: Uint8Array): ColdValue | null => {
      const t = Buffer.from(v).toString();
      return t.startsWith('big') ? new ColdValue([Number(t.slice(3)), 0, v.length, 0]) : null;
    };
    h.put(1, 'r1', 'big12'); // sent at once (one batch in flight per peer)
    h.put(2, 'r2', 'big10'); // these two wait for the first batch's acknowledgement
    h.put(3, 'r3', 'big11');
    h.core.coolRing(coldOfBig); // all three are durable
    expect(h.core.ringColdFloor()).toBe(12); // only record 1 is cold
    h.settle(); // acknowledged: records 2 and 3 go out
    h.core.coolRing(coldOfBig);
    expect(h.core.ringColdFloor()).toBe(10);
  });

  it('a tablet sends records its ring holds cold with their bytes, read back from the value file, in order', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'penncloud-ring-'));
    const core = { ...CORE_OPTS, me: 'a', retransmitMs: 100 };
    const opts = { me: 'a', resident: 2, checkpointBytes: 1 << 30, logBytes: 1 << 30, mailbox: 100, core };
    // Peer b acknowledges probes at once, but loses the first repl batch of each value: the primary
    // retransmits it from the ring once the values there are durable, and so cold.
    const sent: ReplReq[] = [];
    const lost = new Set<number>();
    const env = {
      send: (_to: string, _tablet: number, req: ReplReq | { t: 'catchup' }): Promise<Reply> => {
        if (req.t !== 'repl') return Promise.reject(new Error('no catch-up here'));
        sent.push(req);
        const last = req.prevLsn + req.records.length;
        if (req.records.length > 0 && !lost.has(last)) {
          lost.add(last);
          return new Promise<Reply>(() => undefined);
        }
        return Promise.resolve({ t: 'repl_ack', epoch: req.epoch, ok: true, reason: 'ok', lastLsn: last, durable: last } as Reply);
      },
      // A primary starting in a configuration asks for a new epoch first (replication.md): granted.
      master: (): Promise<Reply> => {
        setTimeout(() => host.setConfigs(new Map([[0, { epoch: 2, primary: 'a', replicas: ['a', 'b'], inSync: ['a', 'b'] }]])), 1);
        return Promise.resolve({ t: 'ok' });
      },
      log: () => undefined,
    };
    const host: TabletHost = new TabletHost(opts, env, await WorkerLog.open({ dataDir: dir, worker: 0, owns: () => true, maxRecordBytes: 4 << 20, segmentBytes: 1 << 20 }));
    host.setConfigs(new Map([[0, { epoch: 1, primary: 'a', replicas: ['a', 'b'], inSync: ['a', 'b'] }]]));
    host.setLease(Number.MAX_SAFE_INTEGER);
    const ticker = setInterval(() => host.tick(), 20);
    const call = (req: DataRequest): Promise<Reply> => new Promise((resolve) => host.dispatch(req, resolve));
    const big = (i: number): Buffer => Buffer.alloc(VALUE_FILE_BYTES * 2 + i, `big ${i} `);
    try {
      for (let i = 0; i < 3; i++) {
        // (The first waits, as a client would, until the new epoch is served: 'not_primary' until then.)
        let rep = await call({ t: 'put', tablet: 0, row: `r${i}`, col: 'c', value: big(i) });
        for (let tries = 0; rep.t === 'error' && rep.code === 'not_primary' && tries < 100; tries++) {
          await new Promise((r) => setTimeout(r, 10));
          rep = await call({ t: 'put', tablet: 0, row: `r${i}`, col: 'c', value: big(i) });
        }
        expect(rep).toEqual({ t: 'ok' });
      }
    } finally {
      clearInterval(ticker);
    }
    const withRecords = sent.filter((r) => r.records.length > 0);
    expect(withRecords.length).toBeGreaterThanOrEqual(6); // each value sent, lost, and sent again
    for (const req of withRecords) {
      for (const w of req.records) {
        expect(w[5]).toBeInstanceOf(Uint8Array); // never a ColdValue on its way out
        expect(Buffer.from(w[5]!).equals(big(w[0] - 1)), `record ${w[0]}`).toBe(true);
      }
    }
    // Records went out in lsn order: each batch starts where an earlier one (or the log's start) ended.
    const starts = withRecords.map((r) => r.prevLsn);
    expect(starts).toEqual([...starts].sort((x, y) => x - y));
    await host.closeAll(false);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('young GCs paced by bytes received', () => {
  it('asks for one young GC per SCAVENGE_EVERY_BYTES received, and does nothing without a GC function', () => {
    const calls: string[] = [];
    const pacer = new ScavengePacer(16, (o) => calls.push(o.type));
    for (let i = 0; i < 10; i++) pacer.received(5); // 50 bytes: GCs after 20 and 40
    expect(calls).toEqual(['minor', 'minor']);
    pacer.received(100);
    expect(calls).toHaveLength(3);
    const none = new ScavengePacer(16, null);
    expect(none.active).toBe(false);
    none.received(1 << 30);
  });
});

describe('tablet host eviction', () => {
  it('keeps at most `resident` tablets in memory, checkpoints the evicted, and reloads them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'penncloud-host-'));
    const core = { ...CORE_OPTS, me: 'solo' };
    const opts = { me: 'solo', resident: 2, checkpointBytes: 1 << 30, logBytes: 1 << 30, mailbox: 100, core };
    const openLog = (dataDir: string) => WorkerLog.open({ dataDir, worker: 0, owns: () => true, maxRecordBytes: 1 << 20, segmentBytes: 1 << 20 });
    const env = { send: () => Promise.reject(new Error('no peers')), master: () => Promise.reject(new Error('no master')), log: () => undefined };
    const configs = new Map([0, 1, 2, 3, 4].map((t) => [t, { epoch: 1, primary: 'solo', replicas: ['solo'], inSync: ['solo'] }]));
    const host = new TabletHost(opts, env, await openLog(dir));
    host.setConfigs(configs);
    host.setLease(Number.MAX_SAFE_INTEGER);
    const call = (h: TabletHost, tablet: number, row: string, value?: string): Promise<Reply> =>
      new Promise((resolve) =>
        h.dispatch(value === undefined ? { t: 'get', tablet, row, col: 'c' } : { t: 'put', tablet, row, col: 'c', value: Buffer.from(value) }, resolve),
      );
    for (let round = 0; round < 3; round++) {
      for (let t = 0; t < 5; t++) expect(await call(host, t, `r${round}`, `t${t} round ${round}`)).toEqual({ t: 'ok' });
      expect(host.residentCount).toBeLessThanOrEqual(2);
    }
    for (let t = 0; t < 5; t++) {
      for (let round = 0; round < 3; round++) {
        const rep = await call(host, t, `r${round}`);
        expect(rep.t === 'value' && Buffer.from(rep.value).toString()).toBe(`t${t} round ${round}`);
      }
    }
    expect(host.evictions).toBeGreaterThan(5);
    const reports = host.reports();
    expect(reports.filter((r) => r.resident).length).toBeLessThanOrEqual(2);
    expect(reports.filter((r) => !r.resident).every((r) => r.lsn === 3)).toBe(true);
    await host.closeAll(true);
    const again = new TabletHost(opts, env, await openLog(dir));
    again.setConfigs(configs);
    again.setLease(Number.MAX_SAFE_INTEGER);
    const rep = await call(again, 4, 'r2');
    expect(rep.t === 'value' && Buffer.from(rep.value).toString()).toBe('t4 round 2');
    // Without a lease the primary refuses to serve.
    const otherDir = mkdtempSync(join(tmpdir(), 'penncloud-host-'));
    const noLease = new TabletHost(opts, env, await openLog(otherDir));
    noLease.setConfigs(configs);
    expect(await call(noLease, 4, 'r2')).toMatchObject({ t: 'error', code: 'not_primary' });
    await again.closeAll(false);
    await noLease.closeAll(false);
    rmSync(dir, { recursive: true, force: true });
    rmSync(otherDir, { recursive: true, force: true });
  });
});

// The store against real processes, real sockets and real disk: a master and 3 storage nodes.
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as zmq from 'zeromq';
import { StoreError } from '../actors/session.js';
import { encodeFrame } from '../transport/codec.js';
import { tabletOf } from '../transport/partition.js';
import { pool, useCluster } from './support/cluster.js';


describe('store with a master and 3 storage nodes', () => {
  const env = useCluster({ basePort: 21000, storageNodes: 3, tablets: 12 });
  const { cluster } = env;

  it('spreads thousands of rows over every node and reads them all back', async () => {
    const rows = Array.from({ length: 3000 }, (_, i) => `user${i}`);
    await pool(rows, 64, (r) => env.client.put(r, 'name', `name of ${r}`));
    const wrong: string[] = [];
    await pool(rows, 64, async (r) => {
      const v = await env.client.get(r, 'name');
      if (v === null || Buffer.from(v).toString() !== `name of ${r}`) wrong.push(r);
    });
    expect(wrong).toEqual([]);
    // Every node holds tablets that took writes.
    for (const name of cluster.storageNames) {
      const info = await env.client.nodeInfo(name);
      const written = info.tablets.filter((t) => t.lsn > 0);
      expect(written.length, `${name} has written tablets`).toBeGreaterThan(0);
    }
    const tablets = new Set(rows.map((r) => tabletOf(r, 12)));
    expect(tablets.size).toBe(12);
  });

  it('keeps binary values byte for byte, from empty to 16 MiB', async () => {
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const big = randomBytes(16 << 20);
    await env.client.put('bin', 'empty', new Uint8Array(0));
    await env.client.put('bin', 'bytes', all);
    await env.client.put('bin', 'big', big);
    expect(Buffer.from((await env.client.get('bin', 'empty'))!)).toEqual(Buffer.alloc(0));
    expect(Buffer.compare((await env.client.get('bin', 'bytes'))!, all)).toBe(0);
    const back = await env.client.get('bin', 'big');
    expect(back!.length).toBe(big.length);
    expect(createHash('sha256').update(back!).digest('hex')).toBe(createHash('sha256').update(big).digest('hex'));
    await env.client.put('ünïcödé 行', '列 ✓', 'ok');
    expect(await env.client.cols('ünïcödé 行')).toEqual(['列 ✓']);
  });

  it('does CPUT, delete and column listing', async () => {
    expect(await env.client.cput('acct', 'owner', null, 'alice')).toBe(true); // create if absent
    expect(await env.client.cput('acct', 'owner', null, 'bob')).toBe(false); // already there
    expect(await env.client.cput('acct', 'owner', 'bob', 'carol')).toBe(false); // wrong expectation
    expect(await env.client.cput('acct', 'owner', 'alice', 'dave')).toBe(true);
    expect(Buffer.from((await env.client.get('acct', 'owner'))!).toString()).toBe('dave');
    await env.client.put('acct', 'b', '1');
    await env.client.put('acct', 'a', '1');
    expect(await env.client.cols('acct')).toEqual(['a', 'b', 'owner']);
    expect(await env.client.delete('acct', 'a')).toBe(true);
    expect(await env.client.delete('acct', 'a')).toBe(false);
    expect(await env.client.get('acct', 'a')).toBeNull();
    expect(await env.client.cols('acct')).toEqual(['b', 'owner']);
    expect(await env.client.cols('no such row')).toEqual([]);
  });

  it('lets exactly one of many racing CPUTs win', async () => {
    const results = await Promise.all(Array.from({ length: 32 }, (_, i) => env.client.cput('race', 'winner', null, `c${i}`)));
    expect(results.filter(Boolean).length).toBe(1);
  });

  it('pages through a tablet with a cursor, every cell exactly once', async () => {
    const row = (i: number): string => `page${i}`;
    const target = tabletOf(row(0), 12);
    const rows = Array.from({ length: 400 }, (_, i) => row(i)).filter((r) => tabletOf(r, 12) === target);
    await pool(rows, 32, (r) => env.client.put(r, 'c', r));
    const map = await env.client.map();
    const node = map.assignments[target]!.primary!;
    const seen: string[] = [];
    let after: [string, string] | null = null;
    let pages = 0;
    do {
      const page = await env.client.scan(node, target, after, 10);
      expect(page.cells.length).toBeLessThanOrEqual(10);
      for (const [r, c] of page.cells) seen.push(`${r}/${c}`);
      after = page.next;
      pages++;
    } while (after !== null && pages < 10_000);
    expect(new Set(seen).size).toBe(seen.length);
    for (const r of rows) expect(seen).toContain(`${r}/c`);
  });

  it('survives garbage on its sockets and keeps serving', async () => {
    const s1 = cluster.topo.storage[0]!;
    const workerPort = s1.workerPorts[0]!;
    // 1. Raw TCP garbage (not even ZMTP).
    await new Promise<void>((resolve) => {
      const sock = connect(workerPort, '127.0.0.1', () => {
        sock.write(randomBytes(4096));
        sock.end(() => resolve());
      });
      sock.on('error', () => resolve());
    });
    // 2. Well-framed ZeroMQ messages with bad contents: not CBOR, wrong shape, wrong types, extra frames, oversized.
    const dealer = new zmq.Dealer({ linger: 0 });
    dealer.connect(`tcp://127.0.0.1:${workerPort}`);
    const replies: unknown[] = [];
    await dealer.send(randomBytes(100));
    await dealer.send(Buffer.from([0xff, 0x00, 0x13]));
    await dealer.send(encodeFrame(7, { t: 'put', tablet: 'x', row: 1 } as never));
    await dealer.send(encodeFrame(8, { t: 'launch-missiles' } as never));
    await dealer.send([Buffer.from('a'), Buffer.from('b')]); // two frames in one message: two replies
    await dealer.send(Buffer.alloc(40 << 20)); // over max_message_bytes (32 MiB)
    const { forEachFrame } = await import('../transport/codec.js');
    // Replies may share messages (lone frames or bundles).
    while (replies.length < 7) forEachFrame(await dealer.receive(), 0, 1 << 20, (frame) => void replies.push(frame));
    dealer.close();
    const bodies = replies.map((r) => (r as { body: { t: string; code: string } }).body);
    expect(bodies.every((b) => b.t === 'error')).toBe(true);
    expect(bodies.map((b) => b.code)).toContain('bad_request');
    expect(bodies.map((b) => b.code)).toContain('too_big');
    // Still serving, and it counted what it got.
    await env.client.put('after-garbage', 'c', 'fine');
    expect(Buffer.from((await env.client.get('after-garbage', 'c'))!).toString()).toBe('fine');
    const info = await env.client.nodeInfo(s1.name);
    expect(info.stats.malformed).toBeGreaterThanOrEqual(4);
    expect(info.stats.oversized).toBeGreaterThanOrEqual(1);
  });

  it('keeps every acknowledged write across kill -9 of a storage node under concurrent writes', async () => {
    const victim = 's2';
    const acked = new Map<string, string>();
    let stop = false;
    let seq = 0;
    const writers = Array.from({ length: 16 }, async (_, w) => {
      while (!stop) {
        const row = `crash${w}-${seq++}`;
        try {
          await env.client.put(row, 'v', row);
          acked.set(row, row);
        } catch (e) {
          if (!(e instanceof StoreError)) throw e; // unknown / unavailable while the node is down
        }
      }
    });
    await new Promise((r) => setTimeout(r, 700));
    await cluster.kill(victim);
    await new Promise((r) => setTimeout(r, 300));
    cluster.startNode(victim);
    await cluster.waitAlive([victim]);
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    await Promise.all(writers);
    expect(acked.size).toBeGreaterThan(100);
    const map = await env.client.map(true);
    const onVictim = [...acked.keys()].filter((r) => map.assignments[tabletOf(r, 12)]!.primary === victim);
    expect(onVictim.length).toBeGreaterThan(0);
    const lost: string[] = [];
    await pool([...acked.keys()], 64, async (r) => {
      const v = await env.client.get(r, 'v');
      if (v === null || Buffer.from(v).toString() !== acked.get(r)) lost.push(r);
    });
    expect(lost).toEqual([]);
  });
});

describe('store holding more tablets than memory', () => {
  const env = useCluster({ basePort: 21100, storageNodes: 1, tablets: 64, tabletsInMemory: 2, workerThreads: 2 });
  const { cluster } = env;

  it('keeps at most 2 tablets resident and still serves all 64', async () => {
    const rows = Array.from({ length: 1200 }, (_, i) => `m${i}`);
    expect(new Set(rows.map((r) => tabletOf(r, 64))).size).toBe(64);
    await pool(rows, 16, (r) => env.client.put(r, 'v', `value ${r}`));
    const wrong: string[] = [];
    await pool(rows, 16, async (r) => {
      const v = await env.client.get(r, 'v');
      if (v === null || Buffer.from(v).toString() !== `value ${r}`) wrong.push(r);
    });
    expect(wrong).toEqual([]);
    const info = await env.client.nodeInfo('s1');
    expect(info.tablets.length).toBe(64);
    expect(info.tablets.filter((t) => t.resident).length).toBeLessThanOrEqual(2);
    // Evicted tablets were checkpointed: their last known position is reported.
    expect(info.tablets.filter((t) => !t.resident && t.lsn > 0).length).toBeGreaterThan(50);
  });

  it('reloads evicted tablets correctly after a kill -9', async () => {
    await cluster.restart('s1');
    const sample = Array.from({ length: 200 }, (_, i) => `m${i * 6}`);
    for (const r of sample) expect(Buffer.from((await env.client.get(r, 'v'))!).toString()).toBe(`value ${r}`);
  });

  it('keeps big values through evictions, overwrites and kill -9, each written once to value files', async () => {
    // Values of 64 KiB or more go to the tablets' value files when a checkpoint (here: each eviction)
    // first holds them; later checkpoints reference them. Every read below reloads evicted tablets.
    const rows = Array.from({ length: 48 }, (_, i) => `big${i}`);
    const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
    const want = new Map<string, string>();
    const writeAll = async (round: number): Promise<void> => {
      await pool(rows, 8, async (r) => {
        const v = randomBytes(70_000 + round * 1000);
        want.set(r, sha(v));
        await env.client.put(r, 'v', v);
      });
    };
    const readAll = async (): Promise<string[]> => {
      const wrong: string[] = [];
      await pool(rows, 8, async (r) => {
        const v = await env.client.get(r, 'v');
        if (v === null || sha(v) !== want.get(r)) wrong.push(r);
      });
      return wrong;
    };
    const valueFiles = (): string[] => {
      const node = join(cluster.dir, 'data', 's1');
      return readdirSync(node)
        .filter((d) => d.startsWith('tablet-'))
        .flatMap((d) => readdirSync(join(node, d)).filter((f) => f.startsWith('values-')));
    };
    await writeAll(1);
    expect(await readAll()).toEqual([]);
    expect(valueFiles().length).toBeGreaterThan(0);
    await cluster.restart('s1'); // kill -9
    expect(await readAll()).toEqual([]);
    await writeAll(2); // overwrite every value
    expect(await readAll()).toEqual([]);
    await cluster.restart('s1');
    expect(await readAll()).toEqual([]);
  });
});

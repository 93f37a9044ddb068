// Replication against real processes: master + 4 storage nodes, replication 3.
// Failover after kill -9 of a primary, a paused (deposed) primary that must not serve, admin stop /
// restart with the states it shows, catch-up by log tail and by snapshot, identical replicas.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { StoreClient } from '../actors/session.js';
import { StoreError } from '../actors/session.js';
import type { Cell, TabletMap } from '../transport/messages.js';
import { mapNode, tabletOf, workerEndpoint } from '../transport/partition.js';
import { RpcClient } from '../transport/rpc.js';
import { useCluster } from './support/cluster.js';
import { until } from './support/wait.js';

const TABLETS = 8;

/** Every cell of a tablet as one replica holds it, paged by the node. */
async function replicaCells(client: StoreClient, node: string, tablet: number): Promise<string[]> {
  const out: string[] = [];
  let after: [string, string] | null = null;
  do {
    const page = await client.scan(node, tablet, after, 500);
    out.push(...page.cells.map((c: Cell) => `${c[0]}/${c[1]}=${Buffer.from(c[2]).toString('hex')}`));
    after = page.next;
  } while (after !== null);
  return out;
}

async function allInSync(client: StoreClient): Promise<TabletMap> {
  return until('every replica in sync', async () => {
    const st = await client.status();
    const ok = st.map.assignments.every((a) => a.primary !== null && a.inSync.length === a.replicas.length);
    const up = st.nodes.every((n) => n.state === 'alive');
    return ok && up ? st.map : undefined;
  });
}

async function expectIdenticalReplicas(client: StoreClient, map: TabletMap): Promise<void> {
  for (const a of map.assignments) {
    const copies = await Promise.all(a.replicas.map((n) => replicaCells(client, n, a.id)));
    for (let i = 1; i < copies.length; i++) expect(copies[i], `tablet ${a.id}: ${a.replicas[i]} vs ${a.replicas[0]}`).toEqual(copies[0]);
  }
}

function rowsOn(map: TabletMap, primary: string, count: number, prefix: string): string[] {
  const rows: string[] = [];
  for (let i = 0; rows.length < count; i++) {
    const r = `${prefix}${i}`;
    if (map.assignments[tabletOf(r, TABLETS)]!.primary === primary) rows.push(r);
  }
  return rows;
}

describe('replication 3 on 4 storage nodes', () => {
  const env = useCluster({ basePort: 23000, storageNodes: 4, tablets: TABLETS, replication: 3, catchupRecords: 300 });
  const { cluster } = env;

  it('acknowledges a write only once every replica has it', async () => {
    const map = await env.client.map(true);
    expect(map.assignments.every((a) => a.replicas.length === 3 && a.inSync.length === 3)).toBe(true);
    for (let i = 0; i < 200; i++) await env.client.put(`r${i}`, 'c', `v${i}`);
    // Right after the acks, every replica's copy already holds the writes.
    await expectIdenticalReplicas(env.client, map);
    const t = tabletOf('r0', TABLETS);
    for (const node of map.assignments[t]!.replicas) expect((await replicaCells(env.client, node, t)).some((c) => c.startsWith('r0/c='))).toBe(true);
  });

  it('fails over after kill -9 of a primary, loses no acknowledged write, and the node rejoins', async () => {
    const map = await env.client.map(true);
    const victim = 's2';
    const rows = rowsOn(map, victim, 6, 'fo');
    // Per row: the last acknowledged value, and later writes whose outcome is unknown (may have landed).
    const acked = new Map<string, string>();
    const maybe = new Map<string, string[]>();
    let stop = false;
    const writers = rows.map(async (row) => {
      for (let n = 0; !stop; n++) {
        const v = `${row}-${n}`;
        try {
          await env.client.put(row, 'c', v);
          acked.set(row, v);
          maybe.set(row, []);
        } catch (e) {
          if (!(e instanceof StoreError)) throw e;
          if (e.code === 'unknown') maybe.get(row)?.push(v);
        }
      }
    });
    await new Promise((r) => setTimeout(r, 500));
    await cluster.kill(victim);
    const killedAt = Date.now();
    const epochs = await until('new primaries', async () => {
      const m = await env.client.map(true);
      const moved = m.assignments.filter((a) => map.assignments[a.id]!.primary === victim);
      return moved.every((a) => a.primary !== null && a.primary !== victim) ? moved.map((a) => a.epoch) : undefined;
    });
    expect(epochs.every((e) => e >= 2)).toBe(true);
    expect(Date.now() - killedAt).toBeLessThan(10_000);
    await new Promise((r) => setTimeout(r, 500));
    cluster.startNode(victim);
    await cluster.waitAlive([victim]);
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    await Promise.all(writers);
    for (const [row, v] of acked) expect([v, ...(maybe.get(row) ?? [])]).toContain(Buffer.from((await env.client.get(row, 'c'))!).toString());
    await expectIdenticalReplicas(env.client, await allInSync(env.client));
  });

  it('a paused primary loses its lease and, once awake, refuses to serve under its old epoch', async () => {
    // Only an in-sync replica may take over; start from a cluster where every replica is (a node the
    // previous test restarted may still be catching up, and then nobody could safely take over).
    const map = await allInSync(env.client);
    const victim = 's3';
    const pid = cluster.pid(victim)!;
    const row = rowsOn(map, victim, 1, 'pause')[0]!;
    const tablet = tabletOf(row, TABLETS);
    await env.client.put(row, 'c', 'before');
    process.kill(pid, 'SIGSTOP');
    try {
      let seen = 'nothing';
      await until('failover away from the paused node', async () => {
        const m = await env.client.map(true);
        const a = m.assignments[tablet]!;
        seen = `map ${m.version}: tablet ${tablet} primary ${a.primary} epoch ${a.epoch} in sync [${a.inSync.join(', ')}]; nodes ${m.nodes.map((n) => `${n.name} ${n.state}`).join(', ')}`;
        return a.primary !== null && a.primary !== victim;
      }).catch((e: Error) => {
        throw new Error(`${e.message}; last seen: ${seen}`);
      });
      await env.client.put(row, 'c', 'after'); // served by the new primary
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    // Straight to the deposed primary's socket, bypassing the session actor's routing.
    const direct = new RpcClient(workerEndpoint(map, mapNode(map, victim)!, tablet), { timeoutMs: 3000, maxInflight: 4, maxMessageBytes: 1 << 20 });
    try {
      const rep = await direct.request({ t: 'put', tablet, row, col: 'c', value: Buffer.from('stale') });
      expect(rep).toMatchObject({ t: 'error', code: 'not_primary' });
      const read = await direct.request({ t: 'get', tablet, row, col: 'c' });
      expect(read).toMatchObject({ t: 'error', code: 'not_primary' });
    } finally {
      await direct.close();
    }
    expect(Buffer.from((await env.client.get(row, 'c'))!).toString()).toBe('after');
    await allInSync(env.client);
  });

  it('admin stop makes a node behave as crashed; restart recovers it by log tail, or by snapshot when far behind', async () => {
    const victim = 's4';
    await env.client.admin(victim, 'stop');
    await until('s4 stopped', async () => (await env.client.status()).nodes.find((n) => n.name === victim)?.state === 'stopped');
    const info = await env.client.nodeInfo(victim);
    expect(info.stopped).toBe(true);
    // Its tablets are served by others meanwhile; write more than the primaries keep in memory (300 records).
    // Its tablets fail over once its lease has run out.
    const map = await until('failover away from s4', async () => {
      const m = await env.client.map(true);
      const ok = m.assignments.filter((a) => a.replicas.includes(victim)).every((a) => a.primary !== null && a.primary !== victim && !a.inSync.includes(victim));
      return ok ? m : undefined;
    });
    const mine = map.assignments.filter((a) => a.replicas.includes(victim));
    const few = rowsOn(map, mine[0]!.primary!, 1, 'tail')[0]!;
    await env.client.put(few, 'c', 'small gap');
    const bulk = Array.from({ length: 1500 }, (_, i) => `bulk${i}`);
    for (let i = 0; i < bulk.length; i += 50) await Promise.all(bulk.slice(i, i + 50).map((r) => env.client.put(r, 'c', r)));
    await env.client.admin(victim, 'restart');
    const states = new Set<string>();
    const synced = await until('s4 back in sync', async () => {
      const st = await env.client.status();
      states.add(st.nodes.find((n) => n.name === victim)!.state);
      return st.map.assignments.filter((a) => a.replicas.includes(victim)).every((a) => a.inSync.includes(victim)) ? st.map : undefined;
    });
    expect(states.has('alive') || states.has('recovering')).toBe(true);
    await expectIdenticalReplicas(env.client, synced);
    for (const r of bulk.slice(0, 100)) expect(Buffer.from((await env.client.get(r, 'c'))!).toString()).toBe(r);
  });

  it('a client keeps finding primaries across a master restart followed by a failover', async () => {
    const map = await allInSync(env.client);
    const seen = map.version; // the long-lived client has followed many map changes by now
    const victim = 's1';
    const rows = rowsOn(map, victim, 3, 'mr');
    await cluster.kill('master');
    cluster.startNode('master');
    // A restarted master must not number its maps below what clients already hold, or they would
    // ignore every later map (and so every later failover).
    const fresh = await until('the master answers again', async () => (await env.client.status()).map);
    expect(fresh.version).toBeGreaterThan(seen);
    await allInSync(env.client);
    await cluster.kill(victim);
    // A put sent to the killed primary before the client noticed has an unknown outcome; the same
    // put again is harmless. What must not happen is the client never finding the new primary.
    for (const row of rows) await until(`a put of ${row} after the failover`, () => env.client.put(row, 'c', 'after the master restart').then(() => true), 15_000);
    for (const row of rows) expect(Buffer.from((await env.client.get(row, 'c'))!).toString()).toBe('after the master restart');
    cluster.startNode(victim);
    await cluster.waitAlive([victim]);
    await allInSync(env.client);
  });

  it('hands primaries moved by failovers back to their preferred nodes once the cluster is whole, losing no write', async () => {
    // The tests above killed, paused and stopped nodes: some primaries now sit away from the first of
    // their replicas (the preferred node the initial assignment chose).
    const before = await allInSync(env.client);
    const moved = before.assignments.filter((a) => a.primary !== a.replicas[0]);
    expect(moved.length).toBeGreaterThan(0);
    const rows = moved.flatMap((a) => {
      const out: string[] = [];
      for (let i = 0; out.length < 2; i++) if (tabletOf(`hb${a.id}-${i}`, TABLETS) === a.id) out.push(`hb${a.id}-${i}`);
      return out;
    });
    // Writers with pauses between writes (a tablet is handed back only in a lull: with writes in
    // flight its primary's log is ahead and would win the election again).
    const acked = new Map<string, number>();
    const unknown = new Map<string, number[]>();
    let stop = false;
    const writers = rows.map(async (row) => {
      for (let n = 1; !stop; n++) {
        try {
          await env.client.put(row, 'c', String(n));
          acked.set(row, n);
          unknown.set(row, []);
        } catch (e) {
          if (!(e instanceof StoreError)) throw e;
          if (e.code === 'unknown') unknown.get(row)?.push(n);
        }
        await new Promise((r) => setTimeout(r, 300 + Math.random() * 1500));
      }
    });
    const after = await until('primaries back on their preferred nodes', async () => {
      const m = await env.client.map(true);
      return m.assignments.every((a) => a.primary === a.replicas[0]) ? m : undefined;
    }, 60_000);
    stop = true;
    await Promise.all(writers);
    for (const a of moved) expect(after.assignments[a.id]!.epoch).toBeGreaterThan(a.epoch);
    for (const row of rows) {
      expect(acked.get(row)).toBeGreaterThan(0);
      const got = Number(Buffer.from((await env.client.get(row, 'c'))!).toString());
      expect([acked.get(row), ...(unknown.get(row) ?? [])]).toContain(got);
      await env.client.put(row, 'c', 'on the preferred primary');
    }
    await expectIdenticalReplicas(env.client, await allInSync(env.client));
  });
});

describe('big values kept cold (in value files after a checkpoint), replication 3', () => {
  // Small checkpoints, so tablets checkpoint (and their big values go cold) during the test; a small
  // ring, so a replica that misses a few writes catches up with a snapshot of cold values.
  const env = useCluster({ basePort: 23300, storageNodes: 4, tablets: 4, replication: 3, checkpointBytes: 1 << 20, catchupRecords: 20 });

  it("catches a replica up by a log tail of big values that the primary's ring holds cold, read back from value files", async () => {
    // The catch-up ring holds a big value cold once it is durable: a tail sent later reads each value
    // back (tablet.ts). The writes overwrite a few cells and outgrow checkpoint_bytes, so checkpoints
    // run meanwhile, and files no cell references stay only because the ring still needs them.
    const victim = 's3';
    const map = await env.client.map(true);
    const tablets = map.assignments.filter((a) => a.replicas.includes(victim) && a.primary !== victim).map((a) => a.id);
    expect(tablets.length).toBeGreaterThan(0);
    const rows: string[] = [];
    for (let i = 0; rows.length < 3 * tablets.length; i++) if (tablets.includes(tabletOf(`tail${i}`, 4))) rows.push(`tail${i}`);
    const snapshotsBefore = readFileSync(join(env.cluster.dir, `${victim}.log`), 'utf8').split('installed a snapshot').length;
    await env.client.admin(victim, 'stop');
    const want = new Map<string, Buffer>();
    for (let round = 0; round < 4; round++) {
      // (Three cells per tablet, four rounds: 12 records of 110 KB per tablet, within its ring of 20.)
      await Promise.all(
        rows.map(async (r) => {
          const v = Buffer.alloc(110_000 + round, `${r}:${round}:`);
          want.set(r, v);
          await env.client.put(r, 'v', v);
        }),
      );
    }
    await env.client.admin(victim, 'restart');
    const synced = await until(`${victim} back in sync`, async () => {
      const st = await env.client.status();
      return st.map.assignments.filter((a) => a.replicas.includes(victim)).every((a) => a.inSync.includes(victim)) ? st.map : undefined;
    });
    expect(readFileSync(join(env.cluster.dir, `${victim}.log`), 'utf8').split('installed a snapshot').length, 'caught up by tail, not snapshot').toBe(snapshotsBefore);
    await expectIdenticalReplicas(env.client, synced);
    for (const t of tablets) {
      const cells = new Map((await replicaCells(env.client, victim, t)).map((c) => [c.split('=')[0]!, c.split('=')[1]!]));
      for (const r of rows.filter((x) => tabletOf(x, 4) === t)) expect(cells.get(`${r}/v`), `${victim} ${r}`).toBe(want.get(r)!.toString('hex'));
    }
  });

  it('serves GET, CPUT and scans of cold values, and catches a replica up with a snapshot of them', async () => {
    const rows = Array.from({ length: 60 }, (_, i) => `cold${i}`);
    const want = new Map<string, Buffer>();
    const writeRound = async (round: number): Promise<void> => {
      for (let i = 0; i < rows.length; i += 10) {
        await Promise.all(
          rows.slice(i, i + 10).map(async (r) => {
            const v = Buffer.alloc(100_000 + round, `${r}:${round}:`);
            want.set(r, v);
            await env.client.put(r, 'v', v);
          }),
        );
      }
    };
    const expectAll = async (): Promise<void> => {
      for (const r of rows) expect(Buffer.from((await env.client.get(r, 'v'))!).equals(want.get(r)!), r).toBe(true);
    };
    for (let round = 1; round <= 3; round++) await writeRound(round); // 18 MB: every tablet checkpoints
    await expectAll();

    // CPUT compares bytes: a cold cell is read back first.
    const r0 = rows[0]!;
    expect(await env.client.cput(r0, 'v', Buffer.from('not it'), Buffer.from('x'))).toBe(false);
    const next = Buffer.alloc(120_000, 'next');
    expect(await env.client.cput(r0, 'v', want.get(r0)!, next)).toBe(true);
    want.set(r0, next);
    await expectAll();

    // A replica misses more writes than the ring holds, then catches up with a snapshot (cold values read
    // by the primary as it sends them); afterwards every replica holds the same bytes.
    const victim = 's2';
    await env.client.admin(victim, 'stop');
    for (let round = 4; round <= 6; round++) await writeRound(round);
    await env.client.admin(victim, 'restart');
    const synced = await until('s2 back in sync', async () => {
      const st = await env.client.status();
      return st.map.assignments.filter((a) => a.replicas.includes(victim)).every((a) => a.inSync.includes(victim)) ? st.map : undefined;
    });
    await expectIdenticalReplicas(env.client, synced);
    await expectAll();
    for (const a of synced.assignments.filter((x) => x.replicas.includes(victim))) {
      const cells = await replicaCells(env.client, victim, a.id);
      for (const c of cells) {
        const [row] = c.split('/');
        if (want.has(row!)) expect(c.endsWith(`=${want.get(row!)!.toString('hex')}`), `${victim} ${row}`).toBe(true);
      }
    }
  });
});

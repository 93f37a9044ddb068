// Helpers for the Jepsen-style test (test/jepsen.test.ts): a seeded PRNG, a recorder that turns
// StoreClient calls into checker ops, cluster health checks, and the replica comparison.
import { performance } from 'node:perf_hooks';
import { StoreError, type StoreClient } from '../../actors/session.js';
import type { Cell, Cursor, StatusRep } from '../../transport/messages.js';
import { tabletOf } from '../../transport/partition.js';
import type { TestCluster } from '../support/cluster.js';
import type { Op, Value } from '../support/linearizability.js';
export { mulberry32 as rng } from '../sim/prng.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function pick<T>(r: () => number, items: readonly T[]): T {
  return items[Math.floor(r() * items.length)]!;
}

export function shuffle<T>(r: () => number, items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

/** One row name per tablet 0..tablets-1, named `${prefix}<n>` (first n that hashes there). */
export function rowsPerTablet(prefix: string, tablets: number): string[] {
  const rows: (string | undefined)[] = Array.from({ length: tablets });
  let found = 0;
  for (let n = 0; found < tablets; n++) {
    const row = `${prefix}${n}`;
    const t = tabletOf(row, tablets);
    if (rows[t] === undefined) {
      rows[t] = row;
      found++;
    }
  }
  return rows as string[];
}

const text = (v: Uint8Array | null): Value => (v === null ? null : Buffer.from(v).toString('utf8'));

/** What went wrong outside the register model (client bugs, unexpected error codes). */
export interface Oddities {
  /** StoreError codes other than unavailable / unknown, by op kind and code. */
  codes: Map<string, number>;
  /** Exceptions that are not StoreErrors (a bug in the client or the test). */
  exceptions: string[];
}

/**
 * Runs one store call and records it as a checker op.
 *  - put/delete: ok; 'unavailable' -> fail (definitely not applied: the checker drops it);
 *    'unknown' (and any other write error) -> unknown.
 *  - get: ok with the value read; any error -> fail (dropped).
 *  - cput: true -> ok; false (mismatch) -> 'fail', which the checker reads as "completed, saw another
 *    value"; 'unavailable' -> not recorded at all (it did nothing and observed nothing); 'unknown' -> unknown.
 * Returns the recorded op (or null when nothing was recorded).
 */
export async function recordOp(
  client: StoreClient,
  history: Op[],
  odd: Oddities,
  op: { key: string; row: string; col: string; process: number; kind: Op['kind']; value?: string; expect?: Value },
): Promise<Op | null> {
  const base = { key: op.key, process: op.process, kind: op.kind } as const;
  const invoke = performance.now();
  try {
    switch (op.kind) {
      case 'get': {
        const v = await client.get(op.row, op.col);
        const rec: Op = { ...base, invoke, complete: performance.now(), outcome: 'ok', result: text(v) };
        history.push(rec);
        return rec;
      }
      case 'put': {
        await client.put(op.row, op.col, op.value!);
        const rec: Op = { ...base, value: op.value!, invoke, complete: performance.now(), outcome: 'ok' };
        history.push(rec);
        return rec;
      }
      case 'delete': {
        await client.delete(op.row, op.col);
        const rec: Op = { ...base, invoke, complete: performance.now(), outcome: 'ok' };
        history.push(rec);
        return rec;
      }
      case 'cput': {
        const ok = await client.cput(op.row, op.col, op.expect ?? null, op.value!);
        const rec: Op = { ...base, value: op.value!, expect: op.expect ?? null, invoke, complete: performance.now(), outcome: ok ? 'ok' : 'fail' };
        history.push(rec);
        return rec;
      }
    }
  } catch (e) {
    const complete = performance.now();
    if (!(e instanceof StoreError)) {
      odd.exceptions.push(`${op.kind} ${op.row}/${op.col}: ${(e as Error).stack ?? String(e)}`);
      // Treat it as unknown for a write so the check stays sound.
      if (op.kind === 'get') return null;
      const rec: Op = { ...base, value: op.value, expect: op.expect, invoke, complete: null, outcome: 'unknown' };
      history.push(rec);
      return rec;
    }
    if (e.code !== 'unavailable' && e.code !== 'unknown') {
      const k = `${op.kind}:${e.code}`;
      odd.codes.set(k, (odd.codes.get(k) ?? 0) + 1);
    }
    if (op.kind === 'get') return null; // a failed read tells nothing
    if (e.code === 'unavailable') {
      if (op.kind === 'cput') return null; // not applied, observed nothing
      const rec: Op = { ...base, value: op.value, invoke, complete, outcome: 'fail' };
      history.push(rec);
      return rec;
    }
    const rec: Op = { ...base, value: op.value, expect: op.expect, invoke, complete: null, outcome: 'unknown' };
    history.push(rec);
    return rec;
  }
}

/** Every storage node alive, every tablet with a primary and all replicas in sync. */
export function healthy(st: StatusRep): boolean {
  const storage = st.nodes.filter((n) => n.kind === 'storage');
  return storage.every((n) => n.state === 'alive') && st.map.assignments.every((a) => a.primary !== null && a.inSync.length === a.replicas.length);
}

export function describeStatus(st: StatusRep | null): string {
  if (st === null) return '(no status)';
  const nodes = st.nodes.map((n) => `${n.name}:${n.state}(pid ${n.pid ?? '-'})`).join(' ');
  const tablets = st.map.assignments
    .map((a) => `  t${a.id} e${a.epoch} primary ${a.primary ?? 'NONE'} replicas [${a.replicas.join(',')}] inSync [${a.inSync.join(',')}] lsn ${JSON.stringify(a.lsn)}`)
    .join('\n');
  return `map v${st.map.version}; ${nodes}\n${tablets}`;
}

/** Waits until `name`'s current process heartbeats (state alive or recovering); does not wait for sync. */
export async function waitUp(client: StoreClient, cluster: TestCluster, name: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: StatusRep | null = null;
  for (;;) {
    try {
      last = await client.status();
      const n = last.nodes.find((x) => x.name === name);
      if (n && (n.state === 'alive' || n.state === 'recovering') && n.pid === cluster.pid(name)) return;
    } catch {
      // master busy or unreachable for a moment
    }
    if (Date.now() > deadline) throw new Error(`${name} did not come back within ${timeoutMs} ms; logs in ${cluster.dir}\n${describeStatus(last)}`);
    await sleep(50);
  }
}

/** Waits until `healthy(status)`; returns the status and how long it took. */
export async function waitHealthy(client: StoreClient, cluster: TestCluster, timeoutMs: number): Promise<{ status: StatusRep; ms: number }> {
  const t0 = Date.now();
  let last: StatusRep | null = null;
  for (;;) {
    try {
      last = await client.status();
      if (healthy(last)) return { status: last, ms: Date.now() - t0 };
    } catch {
      // retry
    }
    if (Date.now() - t0 > timeoutMs) {
      throw new Error(`cluster not healthy (every node alive, every tablet fully in sync) within ${timeoutMs} ms; logs in ${cluster.dir}\n${describeStatus(last)}`);
    }
    await sleep(50);
  }
}

/** Every cell of a tablet as one replica holds it, page by page. */
export async function scanAll(client: StoreClient, node: string, tablet: number, pageSize = 256): Promise<Cell[]> {
  const cells: Cell[] = [];
  let after: Cursor | null = null;
  for (let pages = 0; ; pages++) {
    if (pages > 100_000) throw new Error(`scan of tablet ${tablet} on ${node} does not end`);
    // A page request may time out (an overloaded machine, a transport hiccup): ask again a few times.
    let rep: Awaited<ReturnType<StoreClient['scan']>> | null = null;
    for (let attempt = 1; rep === null; attempt++) {
      try {
        rep = await client.scan(node, tablet, after, pageSize);
      } catch (e) {
        if (attempt >= 5) throw new Error(`scan of tablet ${tablet} on ${node} failed ${attempt} times: ${(e as Error).message}`);
        await sleep(200);
      }
    }
    cells.push(...rep.cells);
    if (rep.next === null) return cells;
    after = rep.next;
  }
}

/** Differences between two replicas' cell lists (empty when identical), at most `max` lines. */
export function diffCells(aName: string, a: Cell[], bName: string, b: Cell[], max = 8): string[] {
  const key = (c: Cell): string => `${c[0]}\u0000${c[1]}`;
  const am = new Map(a.map((c) => [key(c), c]));
  const bm = new Map(b.map((c) => [key(c), c]));
  const out: string[] = [];
  const show = (v: Uint8Array): string => {
    const s = Buffer.from(v).toString('utf8');
    return s.length > 40 ? `${JSON.stringify(s.slice(0, 40))}… (${v.length} B)` : JSON.stringify(s);
  };
  for (const [k, c] of am) {
    const d = bm.get(k);
    if (!d) out.push(`${c[0]}/${c[1]}: ${aName} has ${show(c[2])}, ${bName} has nothing`);
    else if (Buffer.compare(c[2], d[2]) !== 0) out.push(`${c[0]}/${c[1]}: ${aName} has ${show(c[2])}, ${bName} has ${show(d[2])}`);
  }
  for (const [k, d] of bm) if (!am.has(k)) out.push(`${d[0]}/${d[1]}: ${aName} has nothing, ${bName} has ${show(d[2])}`);
  // Order matters too: a scan must return cells sorted by (row, col), each once.
  const sortedOk = (cells: Cell[]): boolean => cells.every((c, i) => i === 0 || key(cells[i - 1]!) < key(c));
  if (!sortedOk(a)) out.push(`${aName}: scan pages out of order or with duplicates`);
  if (!sortedOk(b)) out.push(`${bName}: scan pages out of order or with duplicates`);
  if (out.length > max) return [...out.slice(0, max), `… and ${out.length - max} more differences`];
  return out;
}

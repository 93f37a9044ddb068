// The replication measurements of the bench that are not closed-loop throughput cases (those run in
// load-worker.js like every other case): run in the orchestrator against a replication-3 cluster.
//
//  - failover gap: lanes of one StoreClient PUT continuously to rows whose tablet's primary is node X;
//    X is kill -9'd; the longest time between two successful writes the client saw is the gap.
//  - catch-up: a node is stopped (admin stop), 10k 1 KiB values are written to tablets it replicates,
//    it is restarted (admin restart), and the master's status is polled until it is in sync again.
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import { StoreError, type StoreClient } from '../../actors/session.js';
import type { StatusRep, TabletMap } from '../../transport/messages.js';
import { tabletOf } from '../../transport/partition.js';
import type { TestCluster } from '../support/cluster.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function errorKey(e: unknown): string {
  return e instanceof StoreError ? e.code : (e as Error).name;
}

/** `count` row names `${prefix}<n>` whose tablet satisfies `want`. */
function rowsWhere(prefix: string, map: TabletMap, count: number, want: (tablet: number) => boolean): string[] {
  const rows: string[] = [];
  for (let n = 0; rows.length < count; n++) {
    if (n > count * map.tablets * 100) throw new Error(`no rows found for ${prefix}`);
    const row = `${prefix}${n}`;
    if (want(tabletOf(row, map.tablets))) rows.push(row);
  }
  return rows;
}

/** Every storage node alive and every tablet with a primary and all its replicas in sync. */
function healthy(st: StatusRep): boolean {
  return st.nodes.every((n) => n.kind !== 'storage' || n.state === 'alive') && st.map.assignments.every((a) => a.primary !== null && a.inSync.length === a.replicas.length);
}

export async function waitHealthy(client: StoreClient, timeoutMs: number, pollMs = 25): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    try {
      if (healthy(await client.status())) return performance.now() - t0;
    } catch {
      // master busy: poll again
    }
    if (performance.now() - t0 > timeoutMs) throw new Error(`the cluster did not become healthy (all alive, all in sync) within ${timeoutMs} ms`);
    await sleep(pollMs);
  }
}

export interface FailoverResult {
  /** The node killed: the primary of every tablet the writer used. */
  node: string;
  tabletsMoved: number;
  lanes: number;
  valueBytes: number;
  okBeforeKill: number;
  okAfterKill: number;
  /** Failed writes after the kill, by StoreError code (unknown = in flight when it died). */
  errors: Record<string, number>;
  /** Longest time between two consecutive successful writes, over the whole run (ms). */
  maxGapMs: number | null;
  /** From the kill to the first write that succeeded after it (ms). */
  killToFirstOkMs: number | null;
  /** Where the longest gap lies relative to the kill (ms). */
  gapFromMs: number | null;
  gapToMs: number | null;
  /** Time until the cluster was healthy again after restarting the killed node (ms). */
  rejoinMs: number | null;
}

export async function measureFailover(
  cluster: TestCluster,
  client: StoreClient,
  opts: { lanes: number; valueBytes: number; beforeMs: number; afterMs: number; log: (line: string) => void },
): Promise<FailoverResult> {
  await waitHealthy(client, 20_000);
  const map = await client.map(true);
  const node = map.assignments[0]!.primary!;
  const mine = new Set(map.assignments.filter((a) => a.primary === node).map((a) => a.id));
  const rows = rowsWhere('failover-', map, 256, (t) => mine.has(t));
  const value = randomBytes(opts.valueBytes);
  const oks: number[] = [];
  const errors: Record<string, number> = {};
  let killAt = Infinity;
  let stop = false;
  let next = 0;
  const lane = async (): Promise<void> => {
    while (!stop) {
      const row = rows[next++ % rows.length]!;
      try {
        await client.put(row, 'v', value);
        oks.push(performance.now());
      } catch (e) {
        if (performance.now() >= killAt) errors[errorKey(e)] = (errors[errorKey(e)] ?? 0) + 1;
        else throw e; // before the kill every write must succeed
      }
    }
  };
  const lanes = Array.from({ length: opts.lanes }, () => lane());
  const lanesDone = Promise.all(lanes).finally(() => (stop = true));
  await Promise.race([sleep(opts.beforeMs), lanesDone]);
  if (stop) await lanesDone; // a lane failed before the kill: rethrow
  killAt = performance.now();
  await cluster.kill(node);
  opts.log(`bench r3: kill -9 ${node} (primary of ${mine.size} tablets) while ${opts.lanes} lanes write to them`);
  // Keep writing until afterMs has passed and writes flow again: every lane has had two writes
  // succeed since the kill (a lane stuck on a request to the dead node counts as not flowing); at most 15 s.
  const okBefore = oks.filter((t) => t < killAt).length;
  const flowing = (): boolean => oks.length - okBefore >= 2 * opts.lanes && performance.now() - oks[oks.length - 1]! < 200;
  while ((performance.now() - killAt < opts.afterMs || !flowing()) && performance.now() - killAt < 15_000) await sleep(20);
  stop = true;
  const stoppedAt = performance.now();
  await lanesDone;

  oks.sort((a, b) => a - b);
  let maxGap: number | null = null;
  let gapFrom: number | null = null;
  // Gaps between consecutive successful writes, and the one from the last success to the end of the
  // measurement (when writes never resumed, the gap is at least that long).
  const points = [...oks, Math.max(stoppedAt, oks[oks.length - 1] ?? stoppedAt)];
  for (let i = 1; i < points.length; i++) {
    const g = points[i]! - points[i - 1]!;
    if (maxGap === null || g > maxGap) {
      maxGap = g;
      gapFrom = points[i - 1]! - killAt;
    }
  }
  const firstAfter = oks.find((t) => t >= killAt);
  const after = await client.map(true);
  const moved = after.assignments.filter((a) => mine.has(a.id) && a.primary !== node && a.primary !== null).length;
  // Bring the node back and wait until it is in sync everywhere (it rejoins as a replica).
  cluster.startNode(node);
  let rejoinMs: number | null = null;
  try {
    rejoinMs = Math.round(await waitHealthy(client, 30_000));
  } catch (e) {
    opts.log(`bench r3: ${(e as Error).message}`);
  }
  const r1 = (x: number | null): number | null => (x === null ? null : Math.round(x * 10) / 10);
  return {
    node,
    tabletsMoved: moved,
    lanes: opts.lanes,
    valueBytes: opts.valueBytes,
    okBeforeKill: okBefore,
    okAfterKill: oks.length - okBefore,
    errors,
    maxGapMs: r1(maxGap),
    killToFirstOkMs: firstAfter === undefined ? null : r1(firstAfter - killAt),
    gapFromMs: r1(gapFrom),
    gapToMs: gapFrom === null || maxGap === null ? null : r1(gapFrom + maxGap),
    rejoinMs,
  };
}

export interface CatchupResult {
  node: string;
  /** Tablets the node replicates (and must be back in sync for). */
  tablets: number;
  writes: number;
  valueBytes: number;
  /** Writing the values while the node was stopped. */
  writeMs: number;
  writeErrors: number;
  /** Failed writes by StoreError code, and the first message. */
  writeErrorCodes: Record<string, number>;
  firstWriteError: string | null;
  /** Records the node was behind, summed over its tablets (primary lsn - its lsn, from the map at restart). */
  recordsBehind: number | null;
  /** admin restart request until it returned (workers up). */
  restartCallMs: number;
  /** admin restart sent until the master showed the node in sync for every one of its tablets. */
  catchupMs: number;
  pollMs: number;
}

export async function measureCatchup(
  cluster: TestCluster,
  client: StoreClient,
  opts: { writes: number; valueBytes: number; concurrency: number; pollMs: number; log: (line: string) => void },
): Promise<CatchupResult> {
  await waitHealthy(client, 30_000);
  // Let every primary see the latest map (a few heartbeats) before stopping a node. A node stopped
  // within a heartbeat of rejoining can stall its tablets' primaries for as long as it stays down (a
  // store bug: a joiner the primary never saw marked in sync is never dropped and still counts for
  // commits); the catch-up figure is meant for the ordinary case.
  await sleep(1000);
  const map = await client.map(true);
  // A node that is not the primary of tablet 0 (the failover measurement may have moved primaries).
  const node = cluster.storageNames.find((n) => n !== map.assignments[0]!.primary)!;
  const theirs = new Set(map.assignments.filter((a) => a.replicas.includes(node)).map((a) => a.id));
  await client.admin(node, 'stop');
  opts.log(`bench r3: admin stop ${node}; writing ${opts.writes} x ${opts.valueBytes} B to its ${theirs.size} tablets`);
  // Wait until every tablet it led has a new primary, so the writes measure writing, not failover.
  const t0 = performance.now();
  for (;;) {
    const st = await client.status().catch(() => null);
    if (st && st.map.assignments.every((a) => !theirs.has(a.id) || (a.primary !== null && a.primary !== node))) break;
    if (performance.now() - t0 > 15_000) throw new Error(`tablets of ${node} got no new primary within 15 s of admin stop`);
    await sleep(opts.pollMs);
  }
  const rows = rowsWhere('catchup-', map, opts.writes, (t) => theirs.has(t));
  const value = randomBytes(opts.valueBytes);
  let next = 0;
  let writeErrors = 0;
  const writeErrorCodes: Record<string, number> = {};
  let firstWriteError: string | null = null;
  const w0 = performance.now();
  await Promise.all(
    Array.from({ length: opts.concurrency }, async () => {
      while (next < rows.length) {
        const row = rows[next++]!;
        try {
          await client.put(row, 'v', value);
        } catch (e) {
          writeErrors++;
          writeErrorCodes[errorKey(e)] = (writeErrorCodes[errorKey(e)] ?? 0) + 1;
          firstWriteError ??= `${row}: ${(e as Error).message}`;
        }
      }
    }),
  );
  const writeMs = performance.now() - w0;
  const before = await client.map(true);
  let behind = 0;
  for (const a of before.assignments) {
    if (!theirs.has(a.id) || a.primary === null) continue;
    behind += Math.max(0, (a.lsn[a.primary] ?? 0) - (a.lsn[node] ?? 0));
  }
  const r0 = performance.now();
  await client.admin(node, 'restart');
  const restartCallMs = performance.now() - r0;
  for (;;) {
    const st = await client.status().catch(() => null);
    if (st && st.map.assignments.every((a) => !theirs.has(a.id) || a.inSync.includes(node))) break;
    if (performance.now() - r0 > 60_000) throw new Error(`${node} not in sync for all its tablets within 60 s of admin restart`);
    await sleep(opts.pollMs);
  }
  const catchupMs = performance.now() - r0;
  return {
    node,
    tablets: theirs.size,
    writes: opts.writes,
    valueBytes: opts.valueBytes,
    writeMs: Math.round(writeMs),
    writeErrors,
    writeErrorCodes,
    firstWriteError,
    recordsBehind: behind,
    restartCallMs: Math.round(restartCallMs),
    catchupMs: Math.round(catchupMs),
    pollMs: opts.pollMs,
  };
}

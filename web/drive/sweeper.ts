// Finishes the work of frontends that died mid-way: uploads whose chunks are not reachable from any
// folder (deleted, with their quota reservation given back) and deletes of trees left half-done
// (completed). At start a frontend sweeps what its own earlier run left; then every SWEEP_EVERY_MS it
// sweeps records of any frontend that have not been touched for STALE_PENDING_MS (a frontend that never
// came back). A record is taken over with CPUT, so two sweepers never do the same job.
import type { Logger } from 'pino';
import type { StoreClient } from '../../actors/session.js';
import type { Topology } from '../../transport/topology.js';
import { deleteChunks } from './chunks.js';
import type { PendingLog } from './pending.js';
import { release } from './quota.js';
import { purge } from './remove.js';
import { nodeRow, pendingRow, META, type Pending } from './rows.js';
import { cputSure, deleteSure, getJson } from '../../actors/store-writes.js';
import { childNamed, readMeta, unlink } from './tree.js';

/** Work not touched for this long belongs to a dead frontend (running uploads touch theirs every 30 s). */
export const STALE_PENDING_MS = 10 * 60_000;
const SWEEP_EVERY_MS = 60_000;
/** Records handled per sweep of one row (the rest wait for the next sweep). */
const PER_SWEEP = 200;

/** Undoes an upload unless it completed (its file is in its folder). */
async function finishUpload(store: StoreClient, id: string, rec: Extract<Pending, { kind: 'upload' }>): Promise<void> {
  const meta = await readMeta(store, id);
  if (meta && !meta.value.deleted && meta.value.parent !== null && (await childNamed(store, meta.value.parent, meta.value.name))?.id === id) return;
  if (meta?.value.parent) await unlink(store, meta.value.parent, meta.value.name, id);
  const chunks = Math.max(meta?.value.chunks ?? 0, Math.ceil(rec.reserved / rec.chunkSize));
  await deleteChunks(store, id, chunks);
  if (meta) await deleteSure(store, nodeRow(id), META);
  await release(store, rec.user, rec.reserved);
}

/** Completes a delete that got as far as marking the node deleted. */
async function finishDelete(store: StoreClient, id: string): Promise<void> {
  const meta = await readMeta(store, id);
  if (!meta?.value.deleted) return; // never started (or already done)
  if (meta.value.parent !== null) await unlink(store, meta.value.parent, meta.value.name, id);
  await purge(store, id, meta.value);
}

/** One pass over the pending rows. `startup`: this frontend's own row, every record of an earlier run. */
export async function sweepOnce(store: StoreClient, topo: Topology, pending: PendingLog, log: Logger, startup: boolean): Promise<number> {
  const now = Date.now();
  const rows = startup ? [pending.node] : topo.frontends.map((f) => f.name);
  let swept = 0;
  for (const node of rows) {
    const row = pendingRow(node);
    for (const id of (await store.cols(row)).slice(0, PER_SWEEP)) {
      const rec = await getJson<Pending>(store, row, id);
      if (!rec) continue;
      const ours = node === pending.node && rec.value.boot === pending.boot;
      const due = startup ? !ours : !ours && rec.value.at < now - STALE_PENDING_MS;
      if (!due) continue;
      const taken = JSON.stringify({ ...rec.value, sweeper: pending.node, at: Date.now() } satisfies Pending);
      if (!(await cputSure(store, row, id, rec.raw, taken))) continue; // someone else is on it
      if (rec.value.kind === 'upload') await finishUpload(store, id, rec.value);
      else await finishDelete(store, id);
      await deleteSure(store, row, id);
      log.info({ id, kind: rec.value.kind, frontend: node, user: rec.value.user }, 'drive: finished the pending work of a dead frontend');
      swept++;
    }
  }
  return swept;
}

/** Sweeps at start (retrying while the store comes up) and then periodically; returns a stop function. */
export function startSweeper(store: StoreClient, topo: Topology, pending: PendingLog, log: Logger): () => void {
  let stopped = false;
  const run = async (startup: boolean): Promise<boolean> => {
    try {
      await sweepOnce(store, topo, pending, log, startup);
      return true;
    } catch (e) {
      log.warn({ err: (e as Error).message }, 'drive sweep failed; will retry');
      return false;
    }
  };
  const first = setTimeout(function again(attempt: number) {
    void run(true).then((ok) => {
      if (!ok && !stopped && attempt < 20) setTimeout(again, 1000, attempt + 1).unref();
    });
  }, 200, 0);
  first.unref();
  const periodic = setInterval(() => void run(false), SWEEP_EVERY_MS);
  periodic.unref();
  return () => {
    stopped = true;
    clearTimeout(first);
    clearInterval(periodic);
  };
}

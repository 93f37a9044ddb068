// Storing one uploaded file: checks, quota reservations as bytes arrive, chunks written with a bounded
// number in flight, and only when every chunk is stored the file's meta and its folder entry: so a file
// is either complete and visible or not there at all. A failed or broken-off upload deletes what it
// wrote; one whose frontend died is undone by the sweeper from its pending record.
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { StoreClient } from '../../actors/session.js';
import { ChunkWriter } from './chunks.js';
import { DriveError } from './errors.js';
import type { PendingLog } from './pending.js';
import { formatBytes, release, reserve } from './quota.js';
import { CHUNK_SIZE, nodeRow, META, type NodeMeta } from './rows.js';
import { deleteSure, putSure } from '../../actors/store-writes.js';
import { assertRoom, childNamed, link, ownedFolder, readMeta, unlink } from './tree.js';

/** Quota is reserved this much at a time (fewer CPUTs on the usage cell); the last step is exact. */
const RESERVE_STEP = 16 << 20;
/** An upload that sends nothing for this long is broken off. */
export const IDLE_MS = 120_000;
/** A long upload refreshes its pending record at least this often (the sweeper leaves fresh ones alone). */
const TOUCH_MS = 30_000;

export interface UploadTarget {
  store: StoreClient;
  user: string;
  quota: number;
  pending: PendingLog;
}

export function overQuota(quota: number): DriveError {
  return new DriveError(413, `Not enough space: your drive is limited to ${formatBytes(quota)}. Delete some files and try again.`);
}

/** Refuses a name that is already taken in `folder`, before any byte is read. */
export async function checkUploadTarget(t: UploadTarget, folder: string, name: string): Promise<void> {
  await ownedFolder(t.store, t.user, folder);
  await assertRoom(t.store, folder);
  if (await childNamed(t.store, folder, name)) {
    throw new DriveError(409, `There is already a file or folder named “${name}” in this folder; rename or delete it first.`);
  }
}

/** Reads `data` to its end into a new file `name` of `folder`; returns its id and size. */
export async function storeUpload(t: UploadTarget, folder: string, name: string, data: Readable): Promise<{ id: string; size: number }> {
  const { store, user, pending } = t;
  await checkUploadTarget(t, folder, name);
  const id = randomUUID();
  await pending.begin(id, { kind: 'upload', user, reserved: 0, chunkSize: CHUNK_SIZE });
  const writer = new ChunkWriter(store, id, CHUNK_SIZE);
  let reserved = 0;
  let lastTouch = Date.now();
  let lastData = Date.now();
  let stage: 'chunks' | 'meta' | 'linked' = 'chunks';
  let stored = 0;
  // The next step of quota is asked for while half of the current one is still unused, so the loop
  // rarely waits for it (a reservation and its record are two round trips at R=3, every 16 MiB).
  // At most one is under way; the loop records nothing meanwhile, so the pending record never
  // understates what is reserved.
  let ahead: Promise<{ got: number; error?: unknown }> | null = null;
  let aheadRefused = false; // near the quota: no more asking ahead, only for what is needed
  const reserveAhead = (): void => {
    const base = reserved;
    ahead = (async () => {
      let got = 0;
      try {
        if (await reserve(store, user, RESERVE_STEP, t.quota)) got = RESERVE_STEP; // refused: the loop asks for exactly what it needs
        if (got > 0) await pending.touchUpload(id, base + got); // recorded before a byte of it is used
        return { got };
      } catch (error) {
        return { got, error };
      }
    })();
  };
  /** Waits for the reservation under way and counts it; `quiet`: even when it failed (the upload is failing anyway). */
  const takeAhead = async (quiet = false): Promise<void> => {
    if (!ahead) return;
    const a = await ahead;
    ahead = null;
    reserved += a.got;
    if (a.got > 0) lastTouch = Date.now();
    else aheadRefused = true;
    if (a.error !== undefined && !quiet) throw a.error;
  };
  const idle = setInterval(() => {
    if (Date.now() - lastData > IDLE_MS) data.destroy(new DriveError(400, 'The upload stalled and was broken off.'));
  }, Math.min(IDLE_MS, 5000));
  try {
    for await (const piece of data as AsyncIterable<Buffer>) {
      lastData = Date.now();
      const need = writer.size + piece.length;
      if (need > reserved) await takeAhead();
      if (need > reserved) {
        reserved += await reserveMore(t, need - reserved);
        await pending.touchUpload(id, reserved);
        lastTouch = Date.now();
      } else if (!ahead && Date.now() - lastTouch > TOUCH_MS) {
        await pending.touchUpload(id, reserved);
        lastTouch = Date.now();
      }
      if (!ahead && !aheadRefused && reserved - need < RESERVE_STEP / 2) reserveAhead();
      await writer.write(piece);
    }
    await takeAhead(); // (its quota is given back below, beyond the file's size)
    const { size, chunks } = await writer.finish();
    const now = Date.now();
    const meta: NodeMeta = { kind: 'file', owner: user, name, parent: folder, movedAt: now, modified: now, size, chunks, chunkSize: CHUNK_SIZE };
    await pending.touchUpload(id, reserved); // still ours (not taken over by a sweeper)?
    stage = 'meta';
    await putSure(store, nodeRow(id), META, JSON.stringify(meta));
    await link(store, folder, name, id);
    stage = 'linked';
    const parent = await readMeta(store, folder);
    if (!parent || parent.value.deleted) throw new DriveError(404, 'The folder was deleted during the upload.');
    stored = size;
  } catch (e) {
    data.resume(); // let the rest of the request flow past
    await takeAhead(true); // what it reserved is given back by undo, with the rest
    await undo(t, { folder, name, id }, writer, stage, reserved).catch(() => {
      // the pending record stays: the sweeper finishes the cleanup
    });
    throw e;
  } finally {
    clearInterval(idle);
  }
  // The file is complete and visible; give back what was reserved beyond its size.
  await release(store, user, reserved - stored);
  await pending.end(id);
  return { id, size: stored };
}

/** Reserves at least `bytes` more: a whole step when there is room for it, else exactly `bytes`. */
async function reserveMore(t: UploadTarget, bytes: number): Promise<number> {
  const step = Math.max(RESERVE_STEP, bytes);
  if (await reserve(t.store, t.user, step, t.quota)) return step;
  if (step > bytes && (await reserve(t.store, t.user, bytes, t.quota))) return bytes;
  throw overQuota(t.quota);
}

async function undo(t: UploadTarget, f: { folder: string; name: string; id: string }, writer: ChunkWriter, stage: 'chunks' | 'meta' | 'linked', reserved: number): Promise<void> {
  if (stage === 'linked') await unlink(t.store, f.folder, f.name, f.id);
  await writer.abort();
  if (stage !== 'chunks') await deleteSure(t.store, nodeRow(f.id), META);
  await release(t.store, t.user, reserved);
  await t.pending.end(f.id);
}

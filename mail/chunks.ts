// Large values spread over many cells of one row: `<prefix>0000`, `<prefix>0001`, ... of at most
// CHUNK_BYTES each (a store value must stay well under limits.max_message_bytes). Writers put every
// chunk before publishing whatever points at them, so a reader never sees a half-written value.
import type { StoreClient } from '../actors/session.js';
import { again, deleteSure, eachLimited, putSure } from '../actors/store-writes.js';

export const CHUNK_BYTES = 1 << 20;
/** 4 digits of chunk number: up to 10,000 chunks (10 GiB), far above any mail size limit. */
const DIGITS = 4;

export const chunkCol = (prefix: string, i: number): string => prefix + String(i).padStart(DIGITS, '0');

export function chunkCount(size: number): number {
  return Math.max(1, Math.ceil(size / CHUNK_BYTES));
}

/** Chunk operations in flight per value. */
const PARALLEL = 4;

/** Writes `data` as chunks (a few at a time, each ridden over failovers); returns how many. */
export async function writeChunks(store: StoreClient, row: string, prefix: string, data: Uint8Array): Promise<number> {
  const n = chunkCount(data.length);
  const indexes = Array.from({ length: n }, (_, i) => i);
  await eachLimited(indexes, PARALLEL, (i) => putSure(store, row, chunkCol(prefix, i), data.subarray(i * CHUNK_BYTES, Math.min(data.length, (i + 1) * CHUNK_BYTES))));
  return n;
}

/** Reads `n` chunks back into one buffer; null when any is missing (deleted meanwhile). */
export async function readChunks(store: StoreClient, row: string, prefix: string, n: number): Promise<Buffer | null> {
  const parts: Array<Uint8Array | null> = new Array(n).fill(null);
  let missing = false;
  await eachLimited(parts, PARALLEL, async (_, i) => {
    if (missing) return;
    parts[i] = await again(() => store.get(row, chunkCol(prefix, i)));
    if (parts[i] === null) missing = true;
  });
  return missing ? null : Buffer.concat(parts as Uint8Array[]);
}

export async function deleteChunks(store: StoreClient, row: string, prefix: string, n: number): Promise<void> {
  await eachLimited(Array.from({ length: n }, (_, i) => i), 2 * PARALLEL, (i) => deleteSure(store, row, chunkCol(prefix, i)));
}

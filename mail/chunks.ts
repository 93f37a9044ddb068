// Large values spread over many cells of one row: `<prefix>0000`, `<prefix>0001`, ... of at most
// CHUNK_BYTES each (a store value must stay well under limits.max_message_bytes). Writers put every
// chunk before publishing whatever points at them, so a reader never sees a half-written value.
import type { StoreClient } from '../actors/session.js';
import { again, putAgain } from './durable.js';

export const CHUNK_BYTES = 1 << 20;
/** 4 digits of chunk number: up to 10,000 chunks (10 GiB), far above any mail size limit. */
const DIGITS = 4;

export const chunkCol = (prefix: string, i: number): string => prefix + String(i).padStart(DIGITS, '0');

export function chunkCount(size: number): number {
  return Math.max(1, Math.ceil(size / CHUNK_BYTES));
}

/** Writes `data` as chunks (in parallel, a few at a time, each again after a failover); returns how many. */
export async function writeChunks(store: StoreClient, row: string, prefix: string, data: Uint8Array): Promise<number> {
  const n = chunkCount(data.length);
  const parallel = 4;
  for (let first = 0; first < n; first += parallel) {
    const batch: Promise<void>[] = [];
    for (let i = first; i < Math.min(n, first + parallel); i++) {
      batch.push(putAgain(store, row, chunkCol(prefix, i), data.subarray(i * CHUNK_BYTES, Math.min(data.length, (i + 1) * CHUNK_BYTES))));
    }
    await Promise.all(batch);
  }
  return n;
}

/** Reads `n` chunks back into one buffer; null when any is missing (deleted meanwhile). */
export async function readChunks(store: StoreClient, row: string, prefix: string, n: number): Promise<Buffer | null> {
  const parts: Uint8Array[] = [];
  const parallel = 4;
  for (let first = 0; first < n; first += parallel) {
    const got = await Promise.all(Array.from({ length: Math.min(parallel, n - first) }, (_, k) => again(() => store.get(row, chunkCol(prefix, first + k)))));
    for (const g of got) {
      if (g === null) return null;
      parts.push(g);
    }
  }
  return Buffer.concat(parts);
}

export async function deleteChunks(store: StoreClient, row: string, prefix: string, n: number): Promise<void> {
  const parallel = 8;
  for (let first = 0; first < n; first += parallel) {
    await Promise.all(Array.from({ length: Math.min(parallel, n - first) }, (_, k) => store.delete(row, chunkCol(prefix, first + k))));
  }
}

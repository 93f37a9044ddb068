// Small helpers over the session actor that the drive needs everywhere: writes that ride over an
// "outcome unknown" reply, compare-and-set loops on JSON cells, and bounded parallel loops.
import { StoreError, type Bytes, type StoreClient } from '../../actors/session.js';

/** How often an idempotent write is re-sent after its outcome came back unknown. */
const UNKNOWN_RETRIES = 3;
/** Compare-and-set loops give up after this many lost races (each retry re-reads the cell). */
const CAS_ATTEMPTS = 64;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function isUnknown(e: unknown): boolean {
  return e instanceof StoreError && e.code === 'unknown';
}

/** Worth sending an idempotent write again: its outcome is unknown, or the store was busy (after a pause). */
async function retryable(e: unknown, attempt: number): Promise<boolean> {
  if (attempt >= UNKNOWN_RETRIES || !(e instanceof StoreError)) return false;
  if (e.code === 'unavailable') await sleep(250 * (attempt + 1));
  return e.code === 'unknown' || e.code === 'unavailable';
}

function sameBytes(a: Uint8Array | null, b: Bytes | null): boolean {
  if (a === null || b === null) return a === null && b === null;
  return Buffer.from(a).equals(typeof b === 'string' ? Buffer.from(b, 'utf8') : b);
}

/** A put (idempotent): re-sent when its outcome is unknown or the store was busy. */
export async function putSure(store: StoreClient, row: string, col: string, value: Bytes): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await store.put(row, col, value);
    } catch (e) {
      if (!(await retryable(e, attempt))) throw e;
    }
  }
}

/** A delete (idempotent): re-sent when its outcome is unknown or the store was busy. */
export async function deleteSure(store: StoreClient, row: string, col: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await store.delete(row, col);
      return;
    } catch (e) {
      if (!(await retryable(e, attempt))) throw e;
    }
  }
}

/**
 * A CPUT whose outcome is always known: when the reply is lost, the cell is read back; holding `value`
 * means it landed, holding `expect` means it did not (and it is tried again).
 */
export async function cputSure(store: StoreClient, row: string, col: string, expect: Bytes | null, value: Bytes): Promise<boolean> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await store.cput(row, col, expect, value);
    } catch (e) {
      if (!isUnknown(e) || attempt >= UNKNOWN_RETRIES) throw e;
      const now = await store.get(row, col);
      if (sameBytes(now, value)) return true;
      if (!sameBytes(now, expect)) return false;
    }
  }
}

/** The cell parsed as JSON (null when absent), with the raw bytes to compare-and-set against. */
export async function getJson<T>(store: StoreClient, row: string, col: string): Promise<{ raw: Uint8Array; value: T } | null> {
  const raw = await store.get(row, col);
  if (raw === null) return null;
  return { raw, value: JSON.parse(Buffer.from(raw).toString('utf8')) as T };
}

/**
 * Read-modify-write of a JSON cell with CPUT, retried while other writers win the race. `change` gets
 * the current value (null when absent) and returns the new one, or undefined to leave the cell alone.
 * Returns what the cell holds afterwards (the new value, or the current one when left alone).
 */
export async function updateJson<T>(store: StoreClient, row: string, col: string, change: (old: T | null) => T | undefined): Promise<T | null> {
  for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
    const cur = await getJson<T>(store, row, col);
    const next = change(cur?.value ?? null);
    if (next === undefined) return cur?.value ?? null;
    if (await cputSure(store, row, col, cur?.raw ?? null, JSON.stringify(next))) return next;
    await sleep(Math.min(50, attempt * 2) + Math.random() * 5);
  }
  throw new StoreError('unavailable', `too much contention on ${row}/${col}; try again`);
}

/** Runs `fn` over `items` with at most `limit` at a time; the first failure is thrown after all settle. */
export async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: unknown = null;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length && failure === null) {
        try {
          await fn(items[next++]!);
        } catch (e) {
          failure ??= e;
        }
      }
    }),
  );
  if (failure !== null) throw failure;
}

// Store operations whose outcome is always known, for every component above the session actor (the
// frontends' accounts and sessions, the drive, mail). During a failover the session actor answers
// `unavailable` (nothing was applied) or `unknown` (a write may or may not have landed); these helpers
// ride over both, bounded: ATTEMPTS tries with doubling pauses (about 1.5 s in all), then the error
// goes to the caller (a 503 page, an SMTP 451).
//   - `again(op)`: any idempotent operation (a read, a put of the same bytes, a delete) tried again;
//   - `cputSure`: a CPUT whose lost reply is settled by reading the cell back;
//   - `getJson` / `updateJson`: compare-and-set loops on JSON cells;
//   - `eachLimited`: a bounded number of operations in flight.
import { StoreError, type Bytes, type StoreClient } from './session.js';

const ATTEMPTS = 6;
const FIRST_PAUSE_MS = 50;
/** Compare-and-set loops give up after this many lost races (each retry re-reads the cell). */
const CAS_ATTEMPTS = 64;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const pause = (attempt: number): Promise<void> => sleep(FIRST_PAUSE_MS * 2 ** attempt);

/** A failover error: the same request may succeed once a primary is back. (Writes that fail 'internal' come back as 'unknown'.) */
function isFailover(e: unknown): e is StoreError {
  return e instanceof StoreError && (e.code === 'unavailable' || e.code === 'unknown' || e.code === 'internal');
}

function sameBytes(a: Uint8Array | null, b: Bytes | null): boolean {
  if (a === null || b === null) return a === null && b === null;
  return Buffer.from(a).equals(typeof b === 'string' ? Buffer.from(b, 'utf8') : b);
}

/** Runs an idempotent store operation, again after a failover error. */
export async function again<T>(op: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await op();
    } catch (e) {
      if (!isFailover(e) || attempt + 1 >= ATTEMPTS) throw e;
      await pause(attempt);
    }
  }
}

/** A put (idempotent: the same bytes again), ridden over failovers. `sends` counts every attempt's sends (StoreClient.put). */
export function putSure(store: StoreClient, row: string, col: string, value: Bytes, sends?: { count: number }): Promise<void> {
  return again(() => store.put(row, col, value, sends));
}

/** A delete (idempotent), ridden over failovers. */
export async function deleteSure(store: StoreClient, row: string, col: string): Promise<void> {
  await again(() => store.delete(row, col));
}

/**
 * A CPUT whose outcome is always known: when the reply is lost, the cell is read back; holding `value`
 * means it landed, holding something other than `expect` means it did not; otherwise it is tried again.
 */
export async function cputSure(store: StoreClient, row: string, col: string, expect: Bytes | null, value: Bytes): Promise<boolean> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await store.cput(row, col, expect, value);
    } catch (e) {
      if (!isFailover(e) || attempt + 1 >= ATTEMPTS) throw e;
      await pause(attempt);
      if (e.code === 'unavailable') continue; // nothing was applied
      const now = await again(() => store.get(row, col));
      if (sameBytes(now, value)) return true;
      if (!sameBytes(now, expect)) return false;
    }
  }
}

/** The cell parsed as JSON (null when absent), with the raw bytes to compare-and-set against. */
export async function getJson<T>(store: StoreClient, row: string, col: string): Promise<{ raw: Uint8Array; value: T } | null> {
  const raw = await again(() => store.get(row, col));
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
export async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: unknown = null;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length && failure === null) {
        const i = next++;
        try {
          await fn(items[i]!, i);
        } catch (e) {
          failure ??= e;
        }
      }
    }),
  );
  if (failure !== null) throw failure;
}

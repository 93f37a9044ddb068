// Writes that ride over a failover. During an election the store answers `unavailable` (nothing was
// applied) or `unknown` (a write may or may not have been applied). Mail writes are safe to repeat:
// a chunk put writes the same bytes again, and creating a cell (CPUT from absent) is checked by
// reading it back. Bounded: a few attempts with growing pauses, then the error goes to the caller
// (SMTP then answers 451 and the client tries again later).
import { StoreError, type Bytes, type StoreClient } from '../actors/session.js';

const ATTEMPTS = 6;
const FIRST_PAUSE_MS = 50;

const retryable = (e: unknown): boolean => e instanceof StoreError && (e.code === 'unavailable' || e.code === 'unknown' || e.code === 'internal');
const pause = (i: number): Promise<void> => new Promise((r) => setTimeout(r, FIRST_PAUSE_MS * 2 ** i));

/** Runs an idempotent store operation, again after a failover error. */
export async function again<T>(op: () => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await op();
    } catch (e) {
      if (!retryable(e) || i + 1 >= ATTEMPTS) throw e;
      await pause(i);
    }
  }
}

export function putAgain(store: StoreClient, row: string, col: string, value: Bytes): Promise<void> {
  return again(() => store.put(row, col, value));
}

const same = (a: Uint8Array | null, b: Bytes): boolean => a !== null && Buffer.from(a).equals(typeof b === 'string' ? Buffer.from(b) : Buffer.from(b));

/**
 * Creates a cell that must not exist yet (CPUT from absent). After an `unknown` outcome the cell is read
 * back: holding our value means our write was applied. False: someone else's value is there.
 */
export async function createCell(store: StoreClient, row: string, col: string, value: Bytes): Promise<boolean> {
  for (let i = 0; ; i++) {
    try {
      return await store.cput(row, col, null, value);
    } catch (e) {
      if (!retryable(e) || i + 1 >= ATTEMPTS) throw e;
      await pause(i);
      const now = await again(() => store.get(row, col));
      if (now !== null) return same(now, value);
    }
  }
}

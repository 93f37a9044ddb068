// The outbound queue in the store (see docs/mail.md):
//   row `mailq`, one column per (message, remote recipient) named by a fresh id, value: QueueEntry JSON.
//   row `mailq:<id>`, columns `raw0000`, ...: the raw message to send, in 1 MiB cells.
// Senders on any SMTP node claim an entry by CPUT-ing a lease into it; only the holder of an unexpired
// lease sends, retries (CPUT with the next attempt time) or finishes (deletes) the entry.
import type { StoreClient } from '../actors/session.js';
import { deleteChunks, readChunks, writeChunks } from './chunks.js';
import { cputSure, deleteSure } from '../actors/store-writes.js';
import { isMessageId, newMessageId } from './ids.js';

export const QUEUE_ROW = 'mailq';
const dataRow = (id: string): string => `mailq:${id}`;
const RAW = 'raw';

export interface QueueEntry {
  id: string;
  /** The local account that sent it: failure notices go to its inbox. */
  sender: string;
  /** Envelope sender (MAIL FROM). */
  from: string;
  /** The one remote recipient of this entry. */
  rcpt: string;
  created: number;
  attempts: number;
  /** Not before this time (ms since 1970). */
  nextAt: number;
  lastError: string | null;
  size: number;
  chunks: number;
  lease: { owner: string; until: number } | null;
}

/** An entry as read, with the exact bytes to CPUT against. */
export interface QueueCell {
  raw: Uint8Array;
  entry: QueueEntry;
}

const decode = (raw: Uint8Array): QueueEntry => JSON.parse(Buffer.from(raw).toString('utf8')) as QueueEntry;

/** Queues `raw` for each remote recipient; resolves once every entry is durably stored. */
export async function enqueue(store: StoreClient, o: { sender: string; from: string; rcpts: string[]; raw: Buffer; now?: number }): Promise<QueueEntry[]> {
  const now = o.now ?? Date.now();
  return Promise.all(
    o.rcpts.map(async (rcpt) => {
      const id = newMessageId(now);
      const chunks = await writeChunks(store, dataRow(id), RAW, o.raw);
      const entry: QueueEntry = { id, sender: o.sender, from: o.from, rcpt, created: now, attempts: 0, nextAt: now, lastError: null, size: o.raw.length, chunks, lease: null };
      if (!(await cputSure(store, QUEUE_ROW, id, null, JSON.stringify(entry)))) throw new Error(`queue id ${id} collided`);
      return entry;
    }),
  );
}

/** The ids of every queued entry (oldest last: ids sort newest first). */
export async function queuedIds(store: StoreClient): Promise<string[]> {
  return (await store.cols(QUEUE_ROW)).filter((c) => isMessageId(c));
}

export async function readEntry(store: StoreClient, id: string): Promise<QueueCell | null> {
  const raw = await store.get(QUEUE_ROW, id);
  return raw === null ? null : { raw, entry: decode(raw) };
}

/** Whether a sender may take the entry now: due, and not leased by anyone (or the lease ran out). */
export function claimable(e: QueueEntry, now: number): boolean {
  return e.nextAt <= now && (e.lease === null || e.lease.until <= now);
}

/** Takes the entry for `leaseMs` (CPUT: of two senders racing, one wins). */
export async function claim(store: StoreClient, cell: QueueCell, owner: string, leaseMs: number, now = Date.now()): Promise<QueueCell | null> {
  const entry: QueueEntry = { ...cell.entry, lease: { owner, until: now + leaseMs } };
  const raw = Buffer.from(JSON.stringify(entry));
  return (await cputSure(store, QUEUE_ROW, entry.id, cell.raw, raw)) ? { raw, entry } : null;
}

export async function readMessage(store: StoreClient, e: QueueEntry): Promise<Buffer | null> {
  return readChunks(store, dataRow(e.id), RAW, e.chunks);
}

/** After a temporary failure: the next attempt time, the lease given back. */
export async function reschedule(store: StoreClient, cell: QueueCell, nextAt: number, error: string): Promise<boolean> {
  const entry: QueueEntry = { ...cell.entry, attempts: cell.entry.attempts + 1, nextAt, lastError: error.slice(0, 500), lease: null };
  return cputSure(store, QUEUE_ROW, entry.id, cell.raw, JSON.stringify(entry));
}

/** Removes a sent (or bounced) entry: the column first (a lost reply is retried, or the entry would be sent again), then its cells. */
export async function finish(store: StoreClient, e: QueueEntry): Promise<void> {
  await deleteSure(store, QUEUE_ROW, e.id);
  await deleteChunks(store, dataRow(e.id), RAW, e.chunks);
}

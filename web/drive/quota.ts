// Per-user space accounting: the cell `drive:<user>` / `usage` counts the bytes of the user's files
// plus what running uploads have reserved. Reservations are taken with CPUT before bytes are stored,
// so concurrent uploads from several frontends can never together go over the quota.
import type { StoreClient } from '../../actors/session.js';
import { driveRow } from './rows.js';
import { updateJson } from '../../actors/store-writes.js';

const USAGE = 'usage';

export async function usage(store: StoreClient, user: string): Promise<number> {
  const raw = await store.get(driveRow(user), USAGE);
  return raw === null ? 0 : Number(Buffer.from(raw).toString('utf8')) || 0;
}

/** Adds `bytes` to the user's usage unless that would pass `quota`; false when it would. */
export async function reserve(store: StoreClient, user: string, bytes: number, quota: number): Promise<boolean> {
  let granted = false;
  await updateJson<number>(store, driveRow(user), USAGE, (old) => {
    const next = (old ?? 0) + bytes;
    granted = next <= quota;
    return granted ? next : undefined;
  });
  return granted;
}

/** Gives `bytes` back (never below zero). */
export async function release(store: StoreClient, user: string, bytes: number): Promise<void> {
  if (bytes <= 0) return;
  await updateJson<number>(store, driveRow(user), USAGE, (old) => Math.max(0, (old ?? 0) - bytes));
}

/** "3.4 MB": sizes for people (decimal units, as file managers show them). */
export function formatBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = -1;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v >= 100 ? Math.round(v) : v.toFixed(1)} ${units[u]}`;
}

// Message ids: short strings that sort newest first. A mailbox index lists its columns in sorted order,
// so an id that sorts ascending from the newest message makes the first page of an inbox the first
// columns of the index, with no reading of the messages themselves.
import { randomBytes } from 'node:crypto';

/** Times are microseconds since 1970 subtracted from this (2^53 - 1): larger times sort first. */
const TOP = Number.MAX_SAFE_INTEGER;
const TIME_DIGITS = 11; // base 36 of 2^53 - 1 has 11 digits
let lastMicros = 0;

/** A new id: 11 base-36 digits of the inverted time, then 8 random hex digits (unique across processes). */
export function newMessageId(now = Date.now()): string {
  // Within one process, ids made in the same millisecond (or while the clock steps back a little) still
  // strictly increase in time; a time given far in the past (imports, tests) is kept as it is.
  const asked = now * 1000;
  const micros = asked <= lastMicros && asked > lastMicros - 1_000_000 ? lastMicros + 1 : asked;
  lastMicros = micros;
  return (TOP - micros).toString(36).padStart(TIME_DIGITS, '0') + randomBytes(4).toString('hex');
}

const ID = /^[0-9a-z]{11}[0-9a-f]{8}$/;

export function isMessageId(s: string | undefined | null): s is string {
  return typeof s === 'string' && ID.test(s);
}

/** The arrival time (ms since 1970) an id was made at. */
export function idTime(id: string): number {
  return Math.floor((TOP - parseInt(id.slice(0, TIME_DIGITS), 36)) / 1000);
}

// Identity of a log: chain[i] is a hash of the (lsn, epoch, content) sequence of records 1..i, so
// "log A is a prefix of log B" is the O(1) test `A.length <= B.length && A[A.length-1] === B[A.length-1]`.
// A hash is 53 bits (two lanes), so an accidental collision is negligible.
import type { LogRecord } from '../../actors/storage/wal.js';

function mixStr(h: number, s: string): number {
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function mixNum(h: number, n: number): number {
  h ^= n & 0xffffffff;
  h = Math.imul(h, 0x01000193);
  h ^= Math.floor(n / 4294967296);
  return Math.imul(h, 0x01000193) >>> 0;
}

/** Hash of one record: lsn, epoch, kind, row, col and value. */
export function recordHash(r: LogRecord): number {
  let h = 0x811c9dc5;
  h = mixNum(h, r.lsn);
  h = mixNum(h, r.epoch);
  h = mixStr(h, r.kind);
  h = mixStr(h, r.row);
  h = mixStr(h, '\u0000');
  h = mixStr(h, r.col);
  if (r.value) {
    h = mixNum(h, r.value.length + 1);
    for (const b of r.value) h = Math.imul(h ^ b, 0x01000193);
  }
  return h >>> 0;
}

const TWO32 = 4294967296;

/** The chain value after appending a record with hash `e` to a log whose chain value is `prev`. */
export function extendChain(prev: number, e: number): number {
  const lo = prev % TWO32;
  const hi = Math.floor(prev / TWO32);
  let nlo = Math.imul((lo ^ e) >>> 0, 0x9e3779b1) >>> 0;
  nlo = (nlo ^ (nlo >>> 15) ^ Math.imul(hi, 0x85ebca6b)) >>> 0;
  let nhi = Math.imul((hi ^ e ^ (lo >>> 7)) >>> 0, 0xc2b2ae35) >>> 0;
  nhi = (nhi ^ (nhi >>> 13)) & 0x1fffff;
  return nhi * TWO32 + nlo;
}

/** Is the log with chain `a` a prefix of (or equal to) the log with chain `b`? */
export function isPrefix(a: readonly number[], b: readonly number[]): boolean {
  const n = a.length - 1;
  return n < b.length && a[n] === b[n];
}

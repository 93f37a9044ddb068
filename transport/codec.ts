// CBOR framing of messages. A frame is the CBOR array [requestId, body].
// Request id 0 means "no reply expected". Decoding never throws: it returns a FrameProblem.
//
// Attachments. On the wire (transport/rpc.ts) a byte string of ATTACH_BYTES or more is not copied into
// its frame: it travels as a zmq part of its own after the frame's part (in a bundle, after those of
// the frames before it), and the frame holds the CBOR tag ATTACHMENT_TAG around its index (0, 1, ...
// among that frame's attachments). ZeroMQ sends a part straight from the caller's buffer and hands
// the receiver the part as it read it, so a 1 MiB drive chunk is never copied by an encoder on its way
// from a frontend to the primary and on to every replica (cbor-x copied each into a freshly allocated
// buffer: a third of a storage worker's time during uploads). `encodeFrameParts`, `messageParts` and
// `forEachFrame` frame with attachments (and bundles, below); `encodeFrame` / `decodeFrame` are the
// single-part forms (big values inline), for tests.
import { addExtension, Encoder } from 'cbor-x';
import type { Reply, Request } from './messages.js';

const cbor = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false });

export type Body = Request | Reply;

export interface Frame {
  id: number;
  body: unknown;
}

export interface FrameProblem {
  /** The request id, when it could be read: an error reply can then be addressed to it. */
  id: number | null;
  reason: string;
  /** The frame (with its attachments) exceeds the size limit. */
  tooBig?: boolean;
}

export function encodeFrame(id: number, body: Body): Buffer {
  return cbor.encode([id, body]);
}

/** Byte strings at least this long travel as attachments (smaller ones are cheaper to copy than to send as parts). */
export const ATTACH_BYTES = 64 << 10;
/** The CBOR tag of an attachment reference (cbor-x leaves tags above 40500 to applications). */
export const ATTACHMENT_TAG = 40_600;
/** At most this many attachments per frame. */
const MAX_ATTACHMENTS = 1024;

class AttachmentRef {
  constructor(readonly index: number) {}
}

/** The parts of the message being decoded, and where the current frame's attachments start. */
let decoding: { parts: readonly Uint8Array[]; first: number; used: number } | null = null;

// (cbor-x's types want encode to return bytes; it writes through the given encode and ignores the result.)
addExtension({
  Class: AttachmentRef,
  tag: ATTACHMENT_TAG,
  encode(ref: AttachmentRef, encode: (v: unknown) => void) {
    encode(ref.index);
  },
  decode(index: unknown): Uint8Array {
    const d = decoding;
    if (d === null) throw new Error('an attachment reference outside a message');
    if (typeof index !== 'number' || !Number.isSafeInteger(index) || index < 0 || index >= MAX_ATTACHMENTS) throw new Error('a bad attachment index');
    const part = d.parts[d.first + index];
    if (part === undefined) throw new Error(`attachment ${index} is missing from the message`);
    d.used = Math.max(d.used, index + 1);
    return part;
  },
} as unknown as Parameters<typeof addExtension>[0]);

/**
 * `v` with every byte string of ATTACH_BYTES or more replaced by a reference to its place in `out`.
 * Containers are copied only along the way to a replaced value: a body without big values is returned
 * as it is, and nothing is allocated.
 */
function detach(v: unknown, out: Uint8Array[], depth: number): unknown {
  if (v instanceof Uint8Array) {
    if (v.length < ATTACH_BYTES || out.length >= MAX_ATTACHMENTS) return v;
    out.push(v);
    return new AttachmentRef(out.length - 1);
  }
  if (typeof v !== 'object' || v === null || depth > 8) return v;
  if (Array.isArray(v)) {
    let copy: unknown[] | null = null;
    for (let i = 0; i < v.length; i++) {
      const d = detach(v[i], out, depth + 1);
      if (d !== v[i]) (copy ??= v.slice())[i] = d;
    }
    return copy ?? v;
  }
  if (Object.getPrototypeOf(v) !== Object.prototype) return v;
  let copy: Record<string, unknown> | null = null;
  for (const k in v) {
    const item = (v as Record<string, unknown>)[k];
    const d = detach(item, out, depth + 1);
    if (d !== item) (copy ??= { ...(v as Record<string, unknown>) })[k] = d;
  }
  return copy ?? v;
}

function asBuffer(v: Uint8Array): Buffer {
  return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

/** The parts of one frame on the wire: the frame, then its attachments (big byte strings, not copied). */
export function encodeFrameParts(id: number, body: Body): Buffer[] {
  const attachments: Uint8Array[] = [];
  const framed = detach(body, attachments, 0);
  const frame = cbor.encode([id, framed]);
  if (attachments.length === 0) return [frame];
  return [frame, ...attachments.map(asBuffer)];
}

/** Total bytes of a frame's parts. */
export function partsBytes(parts: readonly Uint8Array[]): number {
  let n = 0;
  for (const p of parts) n += p.length;
  return n;
}

/** The frame in `buf` and its attachments, `parts[first]`, ... (as many as it refers to). */
function decodeWith(buf: Uint8Array, parts: readonly Uint8Array[], first: number, maxBytes: number): { frame: Frame | FrameProblem; used: number } {
  const d = { parts, first, used: 0 };
  decoding = d;
  let frame: Frame | FrameProblem;
  try {
    frame = decodeFrame(buf, maxBytes);
  } finally {
    decoding = null;
  }
  if (!isProblem(frame) && d.used > 0) {
    let total = buf.length;
    for (let i = first; i < first + d.used; i++) total += parts[i]!.length;
    if (total > maxBytes) return { frame: { id: frame.id, reason: `frame of ${total} bytes with its attachments exceeds the limit of ${maxBytes}`, tooBig: true }, used: 1 + d.used };
  }
  return { frame, used: 1 + d.used };
}

/** The first byte of a bundle part (a frame never starts with it: a frame is a CBOR array). */
const BUNDLE_MARK = 0x00;
const LENGTH_BYTES = 4;
/** At most this many frames per message (and so per bundle). */
export const MAX_FRAMES_PER_MESSAGE = 256;

/**
 * The parts of one zmq message carrying `frames` (each the parts of one frame, from encodeFrameParts).
 * A lone frame goes as it is. Several go as one bundle part, `0x00` then `u32 LE length, frame` for
 * each, followed by every frame's attachments in order: ZeroMQ handles each part above 128 bytes with
 * a reference the sending thread must release and a buffer with a finalizer at the receiver, which
 * cost ~3 us per part on each side here, more than copying a few KiB of frames into one part.
 */
export function messageParts(frames: readonly Buffer[][]): Buffer[] {
  if (frames.length === 1) return frames[0]!;
  let size = 1;
  let attachments = 0;
  for (const f of frames) {
    size += LENGTH_BYTES + f[0]!.length;
    attachments += f.length - 1;
  }
  const bundle = Buffer.allocUnsafe(size);
  bundle[0] = BUNDLE_MARK;
  let at = 1;
  for (const f of frames) {
    const frame = f[0]!;
    bundle.writeUInt32LE(frame.length, at);
    frame.copy(bundle, at + LENGTH_BYTES);
    at += LENGTH_BYTES + frame.length;
  }
  if (attachments === 0) return [bundle];
  const out: Buffer[] = [bundle];
  for (const f of frames) for (let i = 1; i < f.length; i++) out.push(f[i]!);
  return out;
}

/**
 * Decodes every frame of a message, from `parts[start]` on, in order, and calls `fn` with each (or
 * with its problem). A part is a lone frame or a bundle (see messageParts); a frame's attachments
 * follow its part, after those of the frames before it in the same bundle. A bundle whose lengths do
 * not add up (or name an empty frame) yields one problem for the rest of it. `fn` returning false
 * stops the walk.
 */
export function forEachFrame(parts: readonly Uint8Array[], start: number, maxBytes: number, fn: (frame: Frame | FrameProblem) => boolean | void): void {
  let at = start;
  while (at < parts.length) {
    const part = parts[at]!;
    if (part.length === 0 || part[0] !== BUNDLE_MARK) {
      const { frame, used } = decodeWith(part, parts, at + 1, maxBytes);
      if (fn(frame) === false) return;
      at += used;
      continue;
    }
    if (part.length > maxBytes + 1 + LENGTH_BYTES * MAX_FRAMES_PER_MESSAGE) {
      // messageParts bundles only frames that fit in one message together.
      if (fn({ id: null, reason: `a bundle of ${part.length} bytes exceeds the limit of ${maxBytes}`, tooBig: true }) === false) return;
      at++;
      continue;
    }
    let next = at + 1; // where the next frame's attachments start
    let pos = 1;
    while (pos < part.length) {
      const len = pos + LENGTH_BYTES <= part.length ? part[pos]! | (part[pos + 1]! << 8) | (part[pos + 2]! << 16) | (part[pos + 3]! * 2 ** 24) : -1;
      if (len <= 0 || pos + LENGTH_BYTES + len > part.length) {
        if (fn({ id: null, reason: `a bundle of ${part.length} bytes whose frame lengths do not add up` }) === false) return;
        break;
      }
      const { frame, used } = decodeWith(part.subarray(pos + LENGTH_BYTES, pos + LENGTH_BYTES + len), parts, next, maxBytes);
      if (fn(frame) === false) return;
      next += used - 1;
      pos += LENGTH_BYTES + len;
    }
    at = next;
  }
}

export function decodeFrame(buf: Uint8Array, maxBytes: number): Frame | FrameProblem {
  if (buf.length > maxBytes) return { id: null, reason: `frame of ${buf.length} bytes exceeds the limit of ${maxBytes}`, tooBig: true };
  let v: unknown;
  try {
    v = cbor.decode(buf);
  } catch (e) {
    return { id: null, reason: `undecodable CBOR: ${(e as Error).message}` };
  }
  if (!Array.isArray(v) || v.length !== 2) return { id: null, reason: 'a frame must be the CBOR array [id, body]' };
  const [id, body] = v as [unknown, unknown];
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) return { id: null, reason: 'frame id must be a non-negative integer' };
  return { id, body };
}

export function isProblem(f: Frame | FrameProblem): f is FrameProblem {
  return 'reason' in f;
}

/** Encodes any value as CBOR (for files and worker messages that share the wire format). */
export function encodeValue(v: unknown): Buffer {
  return cbor.encode(v);
}

export function decodeValue(buf: Uint8Array): unknown {
  return cbor.decode(buf);
}

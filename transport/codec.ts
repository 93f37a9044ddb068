// CBOR framing of messages. A frame is the CBOR array [requestId, body].
// Request id 0 means "no reply expected". Decoding never throws: it returns a FrameProblem.
//
// Attachments. On the wire (transport/rpc.ts) a byte string of ATTACH_BYTES or more is not copied into
// its frame: it travels as a zmq part of its own right after the frame, and the frame holds the CBOR tag
// ATTACHMENT_TAG around its index (0, 1, ... among that frame's attachments). ZeroMQ sends a part
// straight from the caller's buffer and hands the receiver the part as it read it, so a 1 MiB drive
// chunk is never copied by an encoder on its way from a frontend to the primary and on to every
// replica (cbor-x copied each into a freshly allocated buffer: a third of a storage worker's time
// during uploads). `encodeFrameParts` / `decodeFrameAt` frame with attachments; `encodeFrame` /
// `decodeFrame` are the single-part forms (big values inline), for files and tests.
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
}

export function encodeFrame(id: number, body: Body): Buffer {
  return cbor.encode([id, body]);
}

/** Byte strings at least this long travel as attachments (smaller ones are cheaper to copy than to send as parts). */
export const ATTACH_BYTES = 64 << 10;
/** The CBOR tag of an attachment reference (cbor-x leaves tags above 40500 to applications). */
export const ATTACHMENT_TAG = 40_600;
/** At most this many attachments per frame. */
export const MAX_ATTACHMENTS = 1024;

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

/**
 * Decodes the frame at `parts[at]` and its attachments (the parts after it that it refers to).
 * `used` is how many parts the frame took, itself included (for a frame that could not be decoded,
 * itself and the attachments it referred to before failing: the parts after those are read as frames
 * of their own, and fail or not on their own). `maxBytes` bounds the frame and its attachments together.
 */
export function decodeFrameAt(parts: readonly Uint8Array[], at: number, maxBytes: number): { frame: Frame | FrameProblem; used: number } {
  const buf = parts[at]!;
  if (buf.length > maxBytes) return { frame: { id: null, reason: `frame of ${buf.length} bytes exceeds the limit of ${maxBytes}` }, used: 1 };
  decoding = { parts, first: at + 1, used: 0 };
  let frame: Frame | FrameProblem;
  let used = 1;
  try {
    frame = decodeFrame(buf, maxBytes);
    used += decoding.used;
  } finally {
    decoding = null;
  }
  if (!isProblem(frame) && used > 1) {
    const total = partsBytes(parts.slice(at, at + used));
    if (total > maxBytes) return { frame: { id: frame.id, reason: `frame of ${total} bytes with its attachments exceeds the limit of ${maxBytes}` }, used };
  }
  return { frame, used };
}

export function decodeFrame(buf: Uint8Array, maxBytes: number): Frame | FrameProblem {
  if (buf.length > maxBytes) return { id: null, reason: `frame of ${buf.length} bytes exceeds the limit of ${maxBytes}` };
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

// CBOR framing of messages. A frame is the CBOR array [requestId, body].
// Request id 0 means "no reply expected". Decoding never throws: it returns a FrameProblem.
import { Encoder } from 'cbor-x';
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

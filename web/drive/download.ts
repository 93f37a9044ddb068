// Serving a stored file: the whole file (200) or one byte range (206; 416 when it lies past the end),
// streamed chunk by chunk with Content-Length, a Content-Type from the name, a Content-Disposition safe
// for any name, an ETag (a file's bytes never change under its id) and a sandbox CSP so nothing a user
// uploaded can run as a page of ours.
import type { StoreClient } from '../../actors/session.js';
import { chunkStream } from './chunks.js';
import { contentDisposition } from './disposition.js';
import { contentTypeHeader, isPreviewable, mimeType } from './mime.js';
import { CHUNK_SIZE, type NodeMeta } from './rows.js';

export type ByteRange = { start: number; end: number };

/**
 * The range asked for by a `Range` header on a file of `size` bytes: a range, 'unsatisfiable', or null
 * for the whole file (no header, another unit, several ranges, or a malformed one: RFC 9110 lets a
 * server ignore those).
 */
export function parseRange(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | null {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '') || header.length > 100) return null;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) return 'unsatisfiable';
    return size === 0 ? 'unsatisfiable' : { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (m[2] !== '' && Number(m[2]) < start) return null;
  if (start >= size) return 'unsatisfiable';
  return { start, end };
}

export interface DownloadRequest {
  range: string | undefined;
  ifRange: string | undefined;
  /** Show in the browser (only for types that cannot run script) instead of saving. */
  inline: boolean;
}

/** The response for file `id` with meta `meta`. */
export function fileResponse(store: StoreClient, id: string, meta: NodeMeta, req: DownloadRequest): Response {
  const size = meta.size ?? 0;
  const type = mimeType(meta.name);
  const etag = `"${id}"`;
  const headers = new Headers({
    'content-type': contentTypeHeader(type),
    'content-disposition': contentDisposition(meta.name, req.inline && isPreviewable(type)),
    'accept-ranges': 'bytes',
    etag,
    'last-modified': new Date(meta.modified).toUTCString(),
    'cache-control': 'private, no-cache',
    'content-security-policy': "sandbox; default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'",
  });
  const useRange = req.ifRange === undefined || req.ifRange === etag;
  const range = useRange ? parseRange(req.range, size) : null;
  if (range === 'unsatisfiable') {
    headers.set('content-range', `bytes */${size}`);
    headers.set('content-length', '0');
    return new Response(null, { status: 416, headers });
  }
  const { start, end } = range ?? { start: 0, end: size - 1 };
  headers.set('content-length', String(end - start + 1));
  if (range) headers.set('content-range', `bytes ${start}-${end}/${size}`);
  const body = size === 0 ? null : chunkStream(store, id, size, meta.chunkSize ?? CHUNK_SIZE, start, end);
  return new Response(body, { status: range ? 206 : 200, headers });
}

// Reads a multipart/form-data request as a stream of file parts (@fastify/busboy straight from the Node
// request; nothing is buffered beyond busboy's own stream buffers). Parts come one at a time: the next
// is read only once the consumer has read the current file to its end, so a slow store slows the
// client down instead of filling memory. A client that goes away errors the current file stream.
import { Busboy, type BusboyHeaders, type BusboyInstance } from '@fastify/busboy';
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { DriveError } from './errors.js';

/** Files accepted in one request. */
export const MAX_FILES_PER_REQUEST = 100;

export interface FilePart {
  /** The file name exactly as the client sent it (paths not stripped). */
  filename: string;
  stream: Readable;
}

export class UploadAborted extends Error {
  override name = 'UploadAborted';
}

/** The file parts of `incoming`, in order. Throws DriveError(400) when it is not multipart. */
export function fileParts(incoming: IncomingMessage): AsyncGenerator<FilePart> {
  const notMultipart = new DriveError(400, 'Expected the files as multipart/form-data.');
  if (!/^multipart\/form-data/i.test(incoming.headers['content-type'] ?? '')) throw notMultipart;
  let bb: BusboyInstance;
  try {
    bb = Busboy({
      headers: incoming.headers as BusboyHeaders,
      preservePath: true,
      fileHwm: 256 << 10,
      limits: { files: MAX_FILES_PER_REQUEST, fields: 20, fieldSize: 4096, parts: MAX_FILES_PER_REQUEST + 20, headerPairs: 50, headerSize: 16 << 10 },
    });
  } catch {
    throw notMultipart; // no boundary
  }
  const queue: FilePart[] = [];
  let finished = false;
  let failure: Error | null = null;
  let current: Readable | null = null;
  let wake: (() => void) | null = null;
  const poke = (): void => {
    const w = wake;
    wake = null;
    w?.();
  };
  const fail = (e: Error): void => {
    failure ??= e;
    current?.destroy(e);
    poke();
  };
  bb.on('file', (_field: string, stream: Readable, filename: string) => {
    queue.push({ filename, stream });
    poke();
  });
  bb.on('filesLimit', () => fail(new DriveError(400, `At most ${MAX_FILES_PER_REQUEST} files can be uploaded at once.`)));
  bb.on('finish', () => {
    finished = true;
    poke();
  });
  bb.on('error', (e: Error) => fail(new DriveError(400, `The upload could not be read: ${e.message}`)));
  const onClose = (): void => {
    if (!incoming.complete) fail(new UploadAborted('the client broke the upload off'));
  };
  incoming.on('close', onClose);
  incoming.on('error', () => fail(new UploadAborted('the connection failed during the upload')));
  incoming.pipe(bb);

  return (async function* () {
    try {
      for (;;) {
        if (failure) throw failure;
        const part = queue.shift();
        if (part) {
          current = part.stream;
          yield part;
          current = null;
          continue;
        }
        if (finished) return;
        await new Promise<void>((r) => (wake = r));
      }
    } finally {
      incoming.off('close', onClose);
      if (!finished) {
        incoming.unpipe(bb);
        for (const p of queue) p.stream.resume();
      }
    }
  })();
}

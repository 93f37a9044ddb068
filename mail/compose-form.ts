// Reads the compose form (multipart/form-data: text fields and attached files) straight from the Node
// request with @fastify/busboy, within limits: fields, file count, bytes per file and in total. The
// CSRF token comes in the URL (`?_csrf=`), since the middleware never reads multipart bodies.
import { Busboy } from '@fastify/busboy';
import type { IncomingMessage } from 'node:http';
import { attachmentName } from './summary.js';
import type { OutgoingAttachment } from './compose.js';

export interface ComposeForm {
  fields: Map<string, string>;
  files: OutgoingAttachment[];
}

export interface FormLimits {
  /** Attachment bytes in total. */
  totalBytes: number;
  files: number;
  fields: number;
  /** Characters of one text field (the body). */
  fieldBytes: number;
}

export class FormError extends Error {
  constructor(
    readonly status: 400 | 413 | 415,
    message: string,
  ) {
    super(message);
  }
}

const mib = (n: number): string => (n >= 1048576 ? `${(n / 1048576).toFixed(1)} MiB` : `${Math.floor(n / 1024)} KiB`);
const CONTENT_TYPE = /^[a-z0-9!#$&^_.+-]{1,64}\/[a-z0-9!#$&^_.+-]{1,64}$/i;

export function readComposeForm(req: IncomingMessage, limits: FormLimits): Promise<ComposeForm> {
  const type = req.headers['content-type'] ?? '';
  if (!type.toLowerCase().startsWith('multipart/form-data')) return Promise.reject(new FormError(415, 'Expected a multipart form.'));
  return new Promise<ComposeForm>((resolve, reject) => {
    const fields = new Map<string, string>();
    const files: OutgoingAttachment[] = [];
    let total = 0;
    let failed: FormError | null = null;
    const fail = (e: FormError): void => {
      failed ??= e;
    };
    let bb;
    try {
      bb = new Busboy({
        headers: { ...req.headers, 'content-type': type },
        limits: { fields: limits.fields, fieldSize: limits.fieldBytes, files: limits.files, fileSize: limits.totalBytes + 1, parts: limits.fields + limits.files, fieldNameSize: 100 },
      });
    } catch {
      return reject(new FormError(400, 'The form could not be read (bad multipart header).'));
    }
    bb.on('field', (name, value, _nt, valueTruncated) => {
      if (valueTruncated) fail(new FormError(413, `The field '${name}' is too long.`));
      else fields.set(name, value);
    });
    bb.on('file', (_field, stream, filename, _enc, mimeType) => {
      const parts: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => {
        total += chunk.length;
        if (total > limits.totalBytes) fail(new FormError(413, `Attachments may total at most ${mib(limits.totalBytes)}.`));
        else parts.push(chunk);
      });
      stream.on('end', () => {
        // A file input left empty still sends a part with no name and no bytes.
        if (failed || (filename === '' && parts.length === 0)) return;
        files.push({
          filename: attachmentName(filename, files.length),
          contentType: CONTENT_TYPE.test(mimeType) ? mimeType.toLowerCase() : 'application/octet-stream',
          content: Buffer.concat(parts),
        });
      });
    });
    bb.on('filesLimit', () => fail(new FormError(413, `At most ${limits.files} attachments per message.`)));
    bb.on('fieldsLimit', () => fail(new FormError(413, 'The form has too many fields.')));
    bb.on('partsLimit', () => fail(new FormError(413, 'The form has too many parts.')));
    bb.on('error', () => {
      req.unpipe(bb);
      req.resume(); // read the rest away so the answer reaches the browser
      reject(new FormError(400, 'The form could not be read (malformed multipart body).'));
    });
    bb.on('finish', () => (failed ? reject(failed) : resolve({ fields, files })));
    req.on('error', () => reject(new FormError(400, 'The upload was interrupted.')));
    req.pipe(bb);
  });
}

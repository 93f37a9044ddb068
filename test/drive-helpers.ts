// Helpers for the drive tests and benchmark: a drive client over real HTTP (multipart uploads streamed
// from any source with node:http, so a test can send odd names, cut an upload off, or time it), and
// random files on disk with their sha256.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { request } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { WebClient } from './support/web-client.js';

export interface Listing {
  folder: string;
  path: Array<{ id: string; name: string }>;
  usage: number;
  quota: number;
  entries: Array<{ id: string; kind: 'dir' | 'file'; name: string; size: number | null; modified: number }>;
}

export interface UploadFile {
  /** Sent as filename*=UTF-8''… so any name gets through exactly. */
  name: string;
  data: Buffer | (() => Readable);
  size: number;
}

export interface HttpReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Writes `bytes` random bytes to `path` (1 MiB at a time); returns their sha256. */
export async function writeRandomFile(path: string, bytes: number): Promise<string> {
  const hash = createHash('sha256');
  async function* gen() {
    for (let left = bytes; left > 0; left -= 1 << 20) {
      const b = randomBytes(Math.min(left, 1 << 20));
      hash.update(b);
      yield b;
    }
  }
  await pipeline(Readable.from(gen()), createWriteStream(path));
  return hash.digest('hex');
}

export const fileSource = (path: string) => (): Readable => createReadStream(path, { highWaterMark: 1 << 20 });

const BOUNDARY = '----penncloud-drive-test-7d3f';

function partHeader(name: string): Buffer {
  const enc = encodeURIComponent(name).replace(/['()*!]/g, (c) => `%${c.charCodeAt(0).toString(16)}`);
  return Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename*=UTF-8''${enc}\r\nContent-Type: application/octet-stream\r\n\r\n`);
}

export class DriveHttp {
  constructor(readonly web: WebClient) {}

  cookie(): string {
    return [...this.web.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  async list(folder?: string): Promise<Listing> {
    const res = await fetch(new URL(`${folder ? `/drive/f/${folder}` : '/drive'}?format=json`, this.web.base), { headers: { cookie: this.cookie() }, redirect: 'manual' });
    if (res.status !== 200) throw new Error(`listing ${folder ?? 'root'}: HTTP ${res.status}`);
    return (await res.json()) as Listing;
  }

  async root(): Promise<string> {
    return (await this.list()).folder;
  }

  /**
   * POSTs files as multipart/form-data to /drive/upload. `cutAfter`: send only that many bytes of the
   * body, then break the connection (the promise resolves with status 0).
   */
  upload(folder: string, files: UploadFile[], opts: { cutAfter?: number; csrf?: string; base?: string } = {}): Promise<HttpReply> {
    const headers = files.map((f) => partHeader(f.name));
    const tail = Buffer.from(`--${BOUNDARY}--\r\n`);
    const length = files.reduce((n, f, i) => n + headers[i]!.length + f.size + 2, tail.length);
    const csrf = opts.csrf ?? this.web.csrf;
    const url = new URL(`/drive/upload?folder=${folder}&_csrf=${encodeURIComponent(csrf)}`, opts.base ?? this.web.base);
    async function* body() {
      for (let i = 0; i < files.length; i++) {
        yield headers[i]!;
        const d = files[i]!.data;
        if (Buffer.isBuffer(d)) yield d;
        else yield* d();
        yield Buffer.from('\r\n');
      }
      yield tail;
    }
    return new Promise<HttpReply>((resolve, reject) => {
      const req = request(url, {
        method: 'POST',
        agent: false, // a fresh connection each time: a refused upload's connection is closed by the server
        headers: { cookie: this.cookie(), accept: 'application/json', 'content-type': `multipart/form-data; boundary=${BOUNDARY}`, 'content-length': String(length) },
      });
      req.on('response', (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
        res.on('error', reject);
      });
      req.on('error', (e) => (opts.cutAfter !== undefined ? resolve({ status: 0, headers: {}, body: Buffer.alloc(0) }) : reject(e)));
      void (async () => {
        let sent = 0;
        for await (const piece of body()) {
          let p = piece as Buffer;
          if (opts.cutAfter !== undefined && sent + p.length >= opts.cutAfter) {
            p = p.subarray(0, opts.cutAfter - sent);
            req.write(p);
            await new Promise((r) => setTimeout(r, 200));
            req.destroy();
            return;
          }
          sent += p.length;
          if (!req.write(p)) await new Promise((r) => req.once('drain', r));
        }
        req.end();
      })().catch(reject);
    });
  }

  /** GET of a file (or any drive URL), whole body in memory: for small files and error replies. */
  async get(path: string, headers: Record<string, string> = {}): Promise<HttpReply> {
    const res = await fetch(new URL(path, this.web.base), { headers: { cookie: this.cookie(), ...headers }, redirect: 'manual' });
    return { status: res.status, headers: Object.fromEntries(res.headers), body: Buffer.from(await res.arrayBuffer()) };
  }

  /** Streams a file download through sha256: status, byte count and hash (nothing kept in memory). */
  async downloadHash(id: string, base?: string): Promise<{ status: number; bytes: number; sha: string; contentLength: number }> {
    const res = await fetch(new URL(`/drive/file/${id}`, base ?? this.web.base), { headers: { cookie: this.cookie() } });
    const hash = createHash('sha256');
    let bytes = 0;
    for await (const piece of res.body as unknown as AsyncIterable<Uint8Array>) {
      hash.update(piece);
      bytes += piece.length;
    }
    return { status: res.status, bytes, sha: hash.digest('hex'), contentLength: Number(res.headers.get('content-length')) };
  }

  /** Posts a url-encoded drive form (with the CSRF token), redirects not followed. */
  form(path: string, fields: Record<string, string>) {
    return this.web.postForm(path, fields, false);
  }

  mkdir(folder: string, name: string) {
    return this.form('/drive/mkdir', { folder, name });
  }

  rename(id: string, name: string) {
    return this.form('/drive/rename', { id, name });
  }

  move(id: string, dest: string) {
    return this.form('/drive/move', { id, dest });
  }

  remove(id: string) {
    return this.form('/drive/delete', { id, confirmed: '1' });
  }

  /** The entry named `name` in `folder` (throws when absent). */
  async find(folder: string, name: string): Promise<Listing['entries'][number]> {
    const e = (await this.list(folder)).entries.find((x) => x.name === name);
    if (!e) throw new Error(`no '${name}' in folder ${folder}`);
    return e;
  }
}

/** Buffer-backed upload file. */
export const bufferFile = (name: string, data: Buffer): UploadFile => ({ name, data, size: data.length });

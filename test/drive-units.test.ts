// The drive's pure parts: name rules, upload names, Content-Disposition, Range parsing, content types.
import { describe, expect, it } from 'vitest';
import { StoreError, type StoreClient } from '../actors/session.js';
import { ChunkWriter } from '../web/drive/chunks.js';
import { asciiFallback, contentDisposition, encodeRfc5987 } from '../web/drive/disposition.js';
import { parseRange } from '../web/drive/download.js';
import { contentTypeHeader, isPreviewable, mimeType, typeLabel } from '../web/drive/mime.js';
import { nameProblem, normalizeName, uploadName } from '../web/drive/names.js';
import { formatBytes } from '../web/drive/quota.js';

describe('drive names', () => {
  it('accepts Unicode, quotes and symbols, and refuses what breaks the rules', () => {
    for (const ok of ['a', 'naïve 日本語 ✓', `he said "hi"`, '100%', '<b>', '.hidden', '...', 'x'.repeat(255), 'é'.repeat(127) + 'x', '😀']) {
      expect(nameProblem(normalizeName(ok)), ok).toBeNull();
    }
    expect(nameProblem('')).toMatch(/empty/);
    expect(nameProblem('.')).toMatch(/cannot be used/);
    expect(nameProblem('..')).toMatch(/cannot be used/);
    expect(nameProblem('a/b')).toMatch(/'\/'/);
    for (const bad of ['a\nb', 'a\rb', 'a\tb', 'a\u0000b', 'a\u007fb', 'a\u0085b', 'a\u2028b']) expect(nameProblem(bad), JSON.stringify(bad)).toMatch(/control/);
    expect(nameProblem('x'.repeat(256))).toMatch(/255 bytes/);
    expect(nameProblem('é'.repeat(128))).toMatch(/255 bytes/);
    expect(nameProblem('a\ud800b')).toMatch(/valid Unicode/);
  });

  it('normalizes to NFC and trims, so one name typed two ways is one name', () => {
    expect(normalizeName('  Cafe\u0301 ')).toBe('Café');
    expect(normalizeName('Cafe\u0301')).toBe(normalizeName('Caf\u00e9'));
  });

  it('makes uploaded names safe instead of refusing them', () => {
    expect(uploadName('../x')).toBe('x');
    expect(uploadName('C:\\Users\\eve\\evil.txt')).toBe('evil.txt');
    expect(uploadName('a\tb\u0000c.txt')).toBe('a_b_c.txt');
    expect(uploadName('..')).toBe('__');
    expect(uploadName('dir/')).toBeNull();
    expect(uploadName('')).toBeNull();
    expect(Buffer.byteLength(uploadName('日'.repeat(200))!, 'utf8')).toBeLessThanOrEqual(255);
    expect(uploadName('😀'.repeat(100))).toBe('😀'.repeat(63)); // cut at a character, never half of one
  });
});

describe('Content-Disposition', () => {
  it('gives an ASCII stand-in and the exact name, for any name', () => {
    expect(contentDisposition('report.pdf')).toBe(`attachment; filename="report.pdf"; filename*=UTF-8''report.pdf`);
    expect(contentDisposition('naïve ✓.txt', true)).toBe(`inline; filename="na_ve _.txt"; filename*=UTF-8''na%C3%AFve%20%E2%9C%93.txt`);
    const hostile = `a"b\\c%d'e(f)*!.txt`;
    const cd = contentDisposition(hostile);
    expect(cd.split('"')[1]).toBe('a_b_c_d\'e(f)*!.txt');
    expect(decodeURIComponent(cd.split("UTF-8''")[1]!)).toBe(hostile);
    expect(encodeRfc5987(`'()*!`)).toBe('%27%28%29%2A%21');
    expect(asciiFallback('日本')).toBe('__');
    expect(asciiFallback('   ')).toBe('download');
    expect(contentDisposition('x\r\ny')).not.toMatch(/[\r\n]/);
  });
});

describe('Range parsing', () => {
  it('reads single byte ranges and knows the unsatisfiable ones', () => {
    expect(parseRange(undefined, 100)).toBeNull();
    expect(parseRange('bytes=0-9', 100)).toEqual({ start: 0, end: 9 });
    expect(parseRange('bytes=90-', 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange('bytes=90-1000', 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange('bytes=-10', 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange('bytes=-1000', 100)).toEqual({ start: 0, end: 99 });
    expect(parseRange('bytes=100-', 100)).toBe('unsatisfiable');
    expect(parseRange('bytes=-0', 100)).toBe('unsatisfiable');
    expect(parseRange('bytes=0-', 0)).toBe('unsatisfiable');
    // ignored: whole file
    expect(parseRange('bytes=5-2', 100)).toBeNull();
    expect(parseRange('bytes=0-1,5-6', 100)).toBeNull();
    expect(parseRange('items=0-1', 100)).toBeNull();
    expect(parseRange('bytes=-', 100)).toBeNull();
    expect(parseRange('bytes=abc', 100)).toBeNull();
  });
});

describe('content types', () => {
  it('comes from the extension, and only harmless types may be shown inline', () => {
    expect(mimeType('a.PNG')).toBe('image/png');
    expect(mimeType('archive.tar.gz')).toBe('application/gzip');
    expect(mimeType('README')).toBe('application/octet-stream');
    expect(mimeType('.bashrc')).toBe('application/octet-stream');
    expect(mimeType('x.')).toBe('application/octet-stream');
    expect(contentTypeHeader('text/plain')).toBe('text/plain; charset=utf-8');
    expect(isPreviewable('image/png')).toBe(true);
    expect(isPreviewable('video/mp4')).toBe(true);
    for (const t of ['text/html', 'image/svg+xml', 'application/xml', 'application/pdf', 'text/javascript']) expect(isPreviewable(t), t).toBe(false);
    expect(typeLabel('a.jpg')).toBe('JPG image');
    expect(typeLabel('notes.txt')).toBe('Text');
    expect(typeLabel('data.xyz')).toBe('XYZ file');
    expect(typeLabel('Makefile')).toBe('File');
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(17_000)).toBe('17.0 kB');
    expect(formatBytes(200_000_000)).toBe('200 MB');
  });
});

describe('chunk buffers', () => {
  it('reuses a chunk buffer only once its write was answered on its only send', async () => {
    const chunk = 1024;
    const seen: Array<{ row: string; body: Uint8Array; copy: Buffer }> = [];
    let failedOnce = false;
    // A store whose first write of chunk 0 is sent and then lost (outcome unknown): putSure sends it again.
    const store = {
      async put(row: string, _col: string, value: Uint8Array, sends?: { count: number }): Promise<void> {
        if (sends) sends.count++;
        seen.push({ row, body: value, copy: Buffer.from(value) });
        await new Promise((r) => setTimeout(r, 1));
        if (row.endsWith(':0') && !failedOnce) {
          failedOnce = true;
          throw new StoreError('unknown', 'the reply was lost');
        }
      },
    } as unknown as StoreClient;
    const w = new ChunkWriter(store, 'f1', chunk, 2);
    // Enough chunks that writing them outlasts chunk 0's second attempt (after a 50 ms pause).
    for (let i = 0; i < 150; i++) await w.write(Buffer.alloc(chunk, (i % 250) + 1));
    expect(await w.finish()).toEqual({ size: 150 * chunk, chunks: 150 });
    const first = seen.filter((s) => s.row.endsWith(':0'));
    expect(first.length).toBe(2); // sent twice
    const bodies = seen.map((s) => s.body);
    // Buffers were reused (fewer distinct buffers than chunks), but never chunk 0's.
    expect(new Set(bodies).size).toBeLessThan(20);
    expect(bodies.filter((b) => b === first[0]!.body).length).toBe(2);
    expect(first[0]!.body.every((x) => x === 1)).toBe(true); // still the bytes that were sent
    // Every chunk went out with its own bytes.
    for (const s of seen) expect(s.copy.every((x) => x === (Number(s.row.split(':').at(-1)) % 250) + 1)).toBe(true);
  });
});

// How the admin console shows raw bytes and numbers: values as text when they are printable UTF-8,
// otherwise as size + hex preview; long values and names cut, with their full size kept alongside.

/** Characters of a text value shown before it is cut. */
export const TEXT_PREVIEW_CHARS = 200;
/** Bytes of a binary value shown in hex. */
export const HEX_PREVIEW_BYTES = 32;
/** Characters of a row or column name shown before it is cut. */
export const NAME_PREVIEW_CHARS = 120;

export type ShownValue =
  | { kind: 'text'; text: string; size: number; cut: boolean }
  | { kind: 'binary'; hex: string; size: number; cut: boolean };

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Printable: no control characters other than tab, newline and carriage return. */
function printable(s: string): boolean {
  // eslint-disable-next-line no-control-regex
  return !/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/.test(s);
}

/** Decodes at most the first `maxBytes` of `bytes` as UTF-8, tolerating a character cut at the end. */
function decodePrefix(bytes: Uint8Array, maxBytes: number): string | null {
  if (bytes.length <= maxBytes) {
    try {
      return strictUtf8.decode(bytes);
    } catch {
      return null;
    }
  }
  // A multi-byte character may straddle the cut: back off up to 3 bytes to a character boundary.
  for (let end = maxBytes; end > maxBytes - 4 && end > 0; end--) {
    try {
      return strictUtf8.decode(bytes.subarray(0, end));
    } catch {
      // try one byte shorter
    }
  }
  return null;
}

export function showValue(bytes: Uint8Array): ShownValue {
  const size = bytes.length;
  // Four bytes per character at most: this prefix holds the whole preview.
  const text = decodePrefix(bytes, TEXT_PREVIEW_CHARS * 4);
  if (text !== null && printable(text)) {
    const chars = [...text];
    const cut = chars.length > TEXT_PREVIEW_CHARS || size > TEXT_PREVIEW_CHARS * 4;
    return { kind: 'text', text: cut ? chars.slice(0, TEXT_PREVIEW_CHARS).join('') : text, size, cut };
  }
  const hex = Buffer.from(bytes.subarray(0, HEX_PREVIEW_BYTES)).toString('hex').replace(/(..)(?!$)/g, '$1 ');
  return { kind: 'binary', hex, size, cut: size > HEX_PREVIEW_BYTES };
}

/** A row or column name for display: control characters made visible, long names cut. */
export function showName(name: string): { text: string; length: number; cut: boolean } {
  // eslint-disable-next-line no-control-regex
  const visible = name.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  const cut = visible.length > NAME_PREVIEW_CHARS;
  return { text: cut ? visible.slice(0, NAME_PREVIEW_CHARS) : visible, length: name.length, cut };
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

/** "120 ms ago", "3.2 s ago", "4 min ago"; "never" for null. */
export function formatAgo(ms: number | null): string {
  if (ms === null) return 'never';
  if (ms < 1000) return `${Math.round(ms)} ms ago`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s ago`;
  if (ms < 3_600_000) return `${Math.round(ms / 60_000)} min ago`;
  return `${(ms / 3_600_000).toFixed(1)} h ago`;
}

/** A latency in ms with sensible precision; "–" for null. */
export function formatMs(ms: number | null): string {
  if (ms === null) return '–';
  if (ms < 1) return `${Math.round(ms * 1000)} µs`;
  if (ms < 100) return `${ms.toFixed(1)} ms`;
  return `${Math.round(ms)} ms`;
}

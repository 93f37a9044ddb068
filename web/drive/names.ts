// The rules for drive file and folder names: what a user may type (refused with a clear message when
// wrong) and how a name sent by a browser with an upload is made safe. Names are only ever keys in the
// store, never paths on a disk; the rules keep them printable and unambiguous.

/** Longest name, in UTF-8 bytes (as most file systems allow). */
export const MAX_NAME_BYTES = 255;

export const NAME_RULES = `1 to ${MAX_NAME_BYTES} bytes, no '/', no control characters, not '.' or '..'`;

// C0 and C1 control characters, DEL, and the Unicode line/paragraph separators.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
const CONTROL_ALL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;
/** Half of a UTF-16 surrogate pair without its other half (does not survive a trip through UTF-8). */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const LONE_SURROGATE_ALL = new RegExp(LONE_SURROGATE.source, 'g');

/** The name as stored: Unicode NFC (so the same name typed two ways clashes), without outer spaces. */
export function normalizeName(name: string): string {
  return name.normalize('NFC').trim();
}

/** Why `name` (already normalized) cannot be a file or folder name, or null when it can. */
export function nameProblem(name: string): string | null {
  if (name.length === 0) return 'A name cannot be empty.';
  if (name === '.' || name === '..') return `'${name}' cannot be used as a name.`;
  if (name.includes('/')) return "A name cannot contain '/'.";
  if (CONTROL.test(name)) return 'A name cannot contain control characters (such as line breaks or tabs).';
  if (Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) return `A name can be at most ${MAX_NAME_BYTES} bytes long (UTF-8).`;
  if (LONE_SURROGATE.test(name)) return 'A name must be valid Unicode text.';
  return null;
}

/**
 * The name to store for a file a browser uploaded as `sent`: its last path component (old browsers send
 * `C:\dir\file`), control characters and lone surrogates replaced by '_', cut to the length limit at a
 * character boundary. Null when nothing usable is left (an empty file input sends an empty name).
 */
export function uploadName(sent: string): string | null {
  let name = sent.replace(CONTROL_ALL, '_').replace(LONE_SURROGATE_ALL, '_');
  const cut = Math.max(name.lastIndexOf('/'), name.lastIndexOf('\\'));
  name = normalizeName(name.slice(cut + 1));
  while (Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) name = [...name].slice(0, -1).join('');
  if (name === '.' || name === '..') name = name.replace(/\./g, '_');
  return nameProblem(name) === null ? name : null;
}

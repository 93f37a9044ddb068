// Content-Disposition for any file name (RFC 6266): a plain ASCII `filename` for old clients, where
// everything outside printable ASCII and the quoting characters becomes '_', and the exact name as
// `filename*=UTF-8''…` (RFC 5987 percent-encoding) for every current browser.

/** RFC 5987 attr-char percent-encoding: encodeURIComponent also leaves ' ( ) * ! alone; encode them. */
export function encodeRfc5987(value: string): string {
  return encodeURIComponent(value).replace(/['()*!]/g, (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** An ASCII stand-in for `name` that is safe inside a quoted-string. */
export function asciiFallback(name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\%]/g, '_');
  return ascii.trim() === '' ? 'download' : ascii;
}

export function contentDisposition(name: string, inline = false): string {
  return `${inline ? 'inline' : 'attachment'}; filename="${asciiFallback(name)}"; filename*=UTF-8''${encodeRfc5987(name)}`;
}

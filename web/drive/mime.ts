// Content types from file names (by extension), a short label for the listing, and which types a
// browser may show inline (the rest are always downloaded, so no uploaded page runs on our origin).

const TYPES: Record<string, string> = {
  txt: 'text/plain', text: 'text/plain', log: 'text/plain', md: 'text/markdown', csv: 'text/csv', tsv: 'text/tab-separated-values',
  html: 'text/html', htm: 'text/html', css: 'text/css', js: 'text/javascript', mjs: 'text/javascript', ts: 'text/plain',
  json: 'application/json', xml: 'application/xml', yaml: 'application/yaml', yml: 'application/yaml', toml: 'application/toml',
  pdf: 'application/pdf', zip: 'application/zip', gz: 'application/gzip', tgz: 'application/gzip', tar: 'application/x-tar',
  bz2: 'application/x-bzip2', xz: 'application/x-xz', '7z': 'application/x-7z-compressed', rar: 'application/vnd.rar',
  doc: 'application/msword', docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  xls: 'application/vnd.ms-excel', xlsx: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  ppt: 'application/vnd.ms-powerpoint', pptx: 'application/vnd.openxmlformats-officedocument.presentationml.presentation',
  odt: 'application/vnd.oasis.opendocument.text', ods: 'application/vnd.oasis.opendocument.spreadsheet',
  png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg', gif: 'image/gif', webp: 'image/webp', avif: 'image/avif',
  bmp: 'image/bmp', ico: 'image/vnd.microsoft.icon', svg: 'image/svg+xml', tif: 'image/tiff', tiff: 'image/tiff',
  mp3: 'audio/mpeg', wav: 'audio/wav', ogg: 'audio/ogg', oga: 'audio/ogg', flac: 'audio/flac', m4a: 'audio/mp4', opus: 'audio/opus',
  mp4: 'video/mp4', m4v: 'video/mp4', webm: 'video/webm', mov: 'video/quicktime', mkv: 'video/x-matroska', avi: 'video/x-msvideo',
  ogv: 'video/ogg', wasm: 'application/wasm', bin: 'application/octet-stream', iso: 'application/x-iso9660-image',
};

const FALLBACK = 'application/octet-stream';

/** The content type for a file called `name`. */
export function mimeType(name: string): string {
  const dot = name.lastIndexOf('.');
  if (dot <= 0 || dot === name.length - 1) return FALLBACK;
  return TYPES[name.slice(dot + 1).toLowerCase()] ?? FALLBACK;
}

/** The Content-Type header: text types say UTF-8 is likely. */
export function contentTypeHeader(type: string): string {
  return type.startsWith('text/') ? `${type}; charset=utf-8` : type;
}

/** Types a browser can show in place without running anything of the file's (no HTML, SVG, XML, PDF). */
export function isPreviewable(type: string): boolean {
  if (type === 'image/svg+xml') return false;
  return type === 'text/plain' || type.startsWith('image/') || type.startsWith('video/') || type.startsWith('audio/');
}

/** A short label for the listing: "PNG image", "Text", "File". */
export function typeLabel(name: string): string {
  const type = mimeType(name);
  const dot = name.lastIndexOf('.');
  const ext = dot > 0 && dot < name.length - 1 ? name.slice(dot + 1).toUpperCase() : '';
  if (type === FALLBACK) return ext && ext.length <= 8 ? `${ext} file` : 'File';
  const kind = type.split('/')[0];
  if (kind === 'image') return `${ext} image`;
  if (kind === 'video') return `${ext} video`;
  if (kind === 'audio') return `${ext} audio`;
  if (type === 'text/plain') return 'Text';
  return ext ? `${ext} document` : 'Document';
}

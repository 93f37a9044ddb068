// HTML mail made safe to show: sanitize-html keeps text formatting, links (http, https, mailto) and
// images embedded in the message itself (cid: parts become data: URLs); it drops scripts, event
// handlers, forms, frames, styles sheets and javascript: URLs, and replaces remote images with a note
// (they would tell the sender when the mail was read). The result is shown in a sandboxed iframe
// (no scripts, opaque origin) under a strict Content-Security-Policy as a second line of defence.
import sanitizeHtml from 'sanitize-html';

export interface InlineImage {
  cid: string;
  contentType: string;
  content: Buffer;
}

/** Inline images larger than this, or beyond this total, are not embedded. */
const MAX_INLINE_IMAGE = 1 << 20;
const MAX_INLINE_TOTAL = 4 << 20;
/** HTML bodies longer than this are cut before sanitizing (bounded work). */
export const MAX_HTML_CHARS = 2 << 20;

/** The policy placed inside the iframe document too: nothing loads but embedded images. */
export const FRAME_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'";

const SAFE_VALUE = /^[#\w\s.,%()-]{0,60}$/;
const style = (names: string[]): Record<string, RegExp[]> => Object.fromEntries(names.map((n) => [n, [SAFE_VALUE]]));

export function sanitizeMailHtml(html: string, images: InlineImage[] = []): string {
  const dataUrls = new Map<string, string>();
  let budget = MAX_INLINE_TOTAL;
  for (const img of images) {
    if (!/^image\/(png|gif|jpeg|webp)$/i.test(img.contentType) || img.content.length > MAX_INLINE_IMAGE || img.content.length > budget) continue;
    budget -= img.content.length;
    dataUrls.set(img.cid.replace(/^<|>$/g, ''), `data:${img.contentType.toLowerCase()};base64,${img.content.toString('base64')}`);
  }
  return sanitizeHtml(html.slice(0, MAX_HTML_CHARS), {
    allowedTags: [...sanitizeHtml.defaults.allowedTags, 'img', 'center', 'font'],
    allowedAttributes: {
      a: ['href', 'name', 'title', 'target', 'rel'],
      img: ['src', 'alt', 'title', 'width', 'height'],
      font: ['color'],
      td: ['colspan', 'rowspan', 'align', 'valign', 'width'],
      th: ['colspan', 'rowspan', 'align', 'valign', 'width'],
      table: ['width', 'cellpadding', 'cellspacing', 'border'],
      '*': ['style', 'align'],
    },
    allowedClasses: { span: ['blocked-image'] },
    allowedStyles: {
      '*': style(['color', 'background-color', 'text-align', 'font-weight', 'font-style', 'font-size', 'text-decoration', 'padding', 'margin', 'border', 'width']),
    },
    allowedSchemes: ['http', 'https', 'mailto'],
    allowedSchemesByTag: { img: ['data'] },
    allowProtocolRelative: false,
    transformTags: {
      a: (tagName, attribs) => ({ tagName, attribs: { ...attribs, target: '_blank', rel: 'noopener noreferrer' } }),
      img: (tagName, attribs): sanitizeHtml.Tag => {
        const src = (attribs['src'] ?? '').trim();
        const cid = /^cid:(.+)$/i.exec(src)?.[1];
        const data = cid !== undefined ? dataUrls.get(cid) : undefined;
        if (data) return { tagName, attribs: { ...attribs, src: data } };
        return { tagName: 'span', attribs: { class: 'blocked-image' }, text: '[image blocked]' };
      },
    },
  });
}

/** The whole document placed in the iframe's srcdoc. */
export function frameDocument(safeHtml: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="${FRAME_CSP}"><base target="_blank"><style>body{font-family:system-ui,sans-serif;font-size:15px;line-height:1.45;margin:8px;color:#1d2330;word-wrap:break-word}img{max-width:100%;height:auto}.blocked-image{color:#667085;font-size:12px;border:1px dashed #cfd4dc;padding:0 4px}</style></head><body>${safeHtml}</body></html>`;
}

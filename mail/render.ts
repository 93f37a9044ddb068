// What the message page shows, taken from a parsed message: header lines, the body (plain text, or
// sanitized HTML as an iframe document), and the attachments with their index for downloading.
import type { AddressObject, Attachment, ParsedMail } from 'mailparser';
import { attachmentName, type MessageSummary } from './summary.js';
import { frameDocument, sanitizeMailHtml, MAX_HTML_CHARS } from './sanitize.js';

export interface MessageView {
  summary: MessageSummary;
  from: string;
  to: string;
  cc: string;
  date: string;
  subject: string;
  /** Plain text body (shown when there is no HTML). */
  text: string | null;
  /** The sanitized HTML as a complete document for a sandboxed iframe's srcdoc. */
  frame: string | null;
  attachments: Array<{ index: number; name: string; type: string; size: number }>;
}

/** Text bodies longer than this are cut on the page (the raw message has it all). */
const MAX_TEXT_CHARS = 1 << 20;

export function addressText(a: AddressObject | AddressObject[] | undefined): string {
  if (a === undefined) return '';
  return (Array.isArray(a) ? a : [a]).map((x) => x.text).join(', ').slice(0, 5000);
}

/** Attachments shown as such: everything but the images embedded in the HTML (cid: references). */
function listed(parsed: ParsedMail): Array<{ a: Attachment; index: number }> {
  const html = typeof parsed.html === 'string' ? parsed.html : '';
  return parsed.attachments
    .map((a, index) => ({ a, index }))
    .filter(({ a }) => !(a.related && a.contentId && html.includes(`cid:${a.contentId.replace(/^<|>$/g, '')}`)));
}

export function messageView(parsed: ParsedMail, summary: MessageSummary): MessageView {
  const html = typeof parsed.html === 'string' && parsed.html.trim() !== '' ? parsed.html : null;
  const images = parsed.attachments
    .filter((a) => a.contentId)
    .map((a) => ({ cid: a.contentId!, contentType: a.contentType, content: a.content }));
  const text = parsed.text ?? '';
  return {
    summary,
    from: addressText(parsed.from),
    to: addressText(parsed.to),
    cc: addressText(parsed.cc),
    date: parsed.date && !Number.isNaN(parsed.date.getTime()) ? parsed.date.toUTCString() : '',
    subject: parsed.subject ?? '',
    text: html ? null : text.length > MAX_TEXT_CHARS ? text.slice(0, MAX_TEXT_CHARS) + '\n[… cut: the message is longer]' : text,
    frame: html ? frameDocument(sanitizeMailHtml(html.slice(0, MAX_HTML_CHARS), images)) : null,
    attachments: listed(parsed).map(({ a, index }) => ({ index, name: attachmentName(a.filename, index), type: a.contentType, size: a.size })),
  };
}

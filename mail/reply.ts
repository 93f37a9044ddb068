// Pre-filled compose forms for reply, reply-all and forward: recipients, "Re:"/"Fwd:" subjects, the
// quoted original, and the In-Reply-To / References headers that keep a thread together.
import type { ParsedMail } from 'mailparser';
import { addressText } from './render.js';
import { attachmentName } from './summary.js';

export interface Prefill {
  to: string;
  cc: string;
  subject: string;
  body: string;
  inReplyTo: string;
  references: string;
  /** Forward: the message whose attachments go along. */
  forward: string;
  /** Forward: names of the attachments that go along. */
  forwardNames: string[];
}

export const EMPTY_PREFILL: Prefill = { to: '', cc: '', subject: '', body: '', inReplyTo: '', references: '', forward: '', forwardNames: [] };

/** Quoted text is cut to this many characters. */
const MAX_QUOTE = 100_000;
const MAX_REFERENCES = 20;
const MSG_ID = /^<[^<>\s]{1,500}>$/;

export function cleanMessageId(s: string | undefined | null): string {
  const v = (s ?? '').trim();
  return MSG_ID.test(v) ? v : '';
}

export function cleanReferences(s: string | string[] | undefined | null): string[] {
  const list = Array.isArray(s) ? s : (s ?? '').split(/\s+/);
  return list.map(cleanMessageId).filter((x) => x !== '').slice(-MAX_REFERENCES);
}

function prefixed(prefix: string, subject: string): string {
  const s = subject.trim();
  return new RegExp(`^${prefix}:`, 'i').test(s) ? s : `${prefix}: ${s}`;
}

const plainAddresses = (a: ParsedMail['to']): string[] =>
  (a === undefined ? [] : Array.isArray(a) ? a : [a]).flatMap((o) => o.value.flatMap((v) => (v.group ? v.group : [v]))).map((v) => v.address ?? '').filter((x) => x !== '');

function quoted(parsed: ParsedMail): string {
  const text = (parsed.text ?? '').slice(0, MAX_QUOTE);
  return text.replace(/\r\n/g, '\n').split('\n').map((l) => `> ${l}`).join('\n');
}

export function replyPrefill(parsed: ParsedMail, me: string, all: boolean): Prefill {
  const back = plainAddresses(parsed.replyTo).length > 0 ? plainAddresses(parsed.replyTo) : plainAddresses(parsed.from);
  const meLower = me.toLowerCase();
  const others = all ? [...plainAddresses(parsed.to), ...plainAddresses(parsed.cc)].filter((a) => a.toLowerCase() !== meLower && !back.includes(a)) : [];
  const id = cleanMessageId(parsed.messageId);
  const when = parsed.date ? parsed.date.toUTCString() : 'an earlier date';
  return {
    ...EMPTY_PREFILL,
    to: back.join(', '),
    cc: others.join(', '),
    subject: prefixed('Re', parsed.subject ?? ''),
    body: `\n\nOn ${when}, ${addressText(parsed.from) || 'someone'} wrote:\n${quoted(parsed)}\n`,
    inReplyTo: id,
    references: [...cleanReferences(parsed.references), ...(id ? [id] : [])].slice(-MAX_REFERENCES).join(' '),
  };
}

export function forwardPrefill(parsed: ParsedMail, id: string): Prefill {
  const head = [
    '---------- Forwarded message ----------',
    `From: ${addressText(parsed.from)}`,
    `Date: ${parsed.date ? parsed.date.toUTCString() : ''}`,
    `Subject: ${parsed.subject ?? ''}`,
    `To: ${addressText(parsed.to)}`,
    ...(parsed.cc ? [`Cc: ${addressText(parsed.cc)}`] : []),
  ].join('\n');
  return {
    ...EMPTY_PREFILL,
    subject: prefixed('Fwd', parsed.subject ?? ''),
    body: `\n\n${head}\n\n${(parsed.text ?? '').slice(0, MAX_QUOTE)}\n`,
    forward: id,
    forwardNames: parsed.attachments.map((a, i) => attachmentName(a.filename, i)),
  };
}

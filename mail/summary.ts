// The small per-message summary kept in a mailbox index: what the inbox page shows (sender, subject,
// arrival time, a preview, unread) plus what the message page needs before reading the message itself.
// Every field is bounded so one index cell stays small whatever the message holds.
import type { AddressObject, ParsedMail } from 'mailparser';

export type Folder = 'inbox' | 'sent';
export const FOLDERS: readonly Folder[] = ['inbox', 'sent'];

export interface AttachmentInfo {
  name: string;
  type: string;
  size: number;
}

export interface MessageSummary {
  id: string;
  folder: Folder;
  from: { name: string; address: string };
  /** Recipients as shown ("Name <addr>"), at most MAX_LISTED. */
  to: string[];
  subject: string;
  /** The Date header (ms since 1970), null when absent or unreadable. */
  date: number | null;
  /** When it was stored here (ms since 1970). */
  arrived: number;
  preview: string;
  /** Bytes of the raw message. */
  size: number;
  /** Cells the raw message is split over (0 when inline). */
  chunks: number;
  /** The raw message is in the index cell, after the summary (small messages: mailbox.ts). */
  inline?: boolean;
  read: boolean;
  attachments: AttachmentInfo[];
  messageId: string | null;
}

const MAX_SUBJECT = 300;
const MAX_PREVIEW = 160;
const MAX_LISTED = 10;
const MAX_ATTACHMENTS = 30;
const MAX_NAME = 200;

const clip = (s: string, n: number): string => (s.length > n ? s.slice(0, n - 1) + '…' : s);
const oneLine = (s: string): string => s.replace(/\s+/g, ' ').trim();

function addressList(a: AddressObject | AddressObject[] | undefined): string[] {
  const objs = a === undefined ? [] : Array.isArray(a) ? a : [a];
  const out: string[] = [];
  for (const o of objs) {
    for (const v of o.value) {
      const addrs = v.group ? v.group : [v];
      for (const x of addrs) {
        if (out.length >= MAX_LISTED) return out;
        const name = clip(oneLine(x.name ?? ''), MAX_NAME);
        const address = clip(x.address ?? '', 254);
        out.push(name && address ? `${name} <${address}>` : address || name);
      }
    }
  }
  return out;
}

/** The name of an attachment as stored and shown: never empty, no path, no control characters. */
export function attachmentName(filename: string | undefined, index: number): string {
  const base = (filename ?? '').split(/[/\\]/).pop() ?? '';
  const clean = clip(base.replace(/[\u0000-\u001f\u007f]/g, '').trim(), MAX_NAME);
  return clean === '' || clean === '.' || clean === '..' ? `attachment-${index + 1}` : clean;
}

export function summarize(parsed: ParsedMail, o: { id: string; folder: Folder; arrived: number; size: number; chunks: number; read: boolean; inline?: boolean }): MessageSummary {
  const f = parsed.from?.value[0];
  const text = parsed.text ?? '';
  return {
    id: o.id,
    folder: o.folder,
    from: { name: clip(oneLine(f?.name ?? ''), MAX_NAME), address: clip(f?.address ?? '', 254) },
    to: addressList(parsed.to).concat(addressList(parsed.cc)).slice(0, MAX_LISTED),
    subject: clip(oneLine(parsed.subject ?? ''), MAX_SUBJECT),
    date: parsed.date && !Number.isNaN(parsed.date.getTime()) ? parsed.date.getTime() : null,
    arrived: o.arrived,
    preview: clip(oneLine(text.slice(0, 2000)), MAX_PREVIEW),
    size: o.size,
    chunks: o.chunks,
    ...(o.inline ? { inline: true } : {}),
    read: o.read,
    attachments: parsed.attachments.slice(0, MAX_ATTACHMENTS).map((a, i) => ({
      name: attachmentName(a.filename, i),
      type: clip(a.contentType || 'application/octet-stream', 100),
      size: a.size,
    })),
    messageId: parsed.messageId ? clip(parsed.messageId, 500) : null,
  };
}

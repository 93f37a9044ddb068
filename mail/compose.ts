// Builds outgoing messages with nodemailer's MailComposer: Date, Message-ID, From, To, Subject and the
// MIME structure (text, attachments), for the webmail's compose/reply/forward and for failure notices.
import MailComposer from 'nodemailer/lib/mail-composer';
import { randomUUID } from 'node:crypto';

export interface OutgoingAttachment {
  filename: string;
  contentType: string;
  content: Buffer;
}

export interface Draft {
  from: { name: string; address: string };
  to: string[];
  cc: string[];
  subject: string;
  text: string;
  inReplyTo?: string | undefined;
  references?: string[] | undefined;
  attachments: OutgoingAttachment[];
  /** Extra headers (e.g. Auto-Submitted on failure notices). */
  headers?: Record<string, string>;
}

export function newMessageIdHeader(domain: string): string {
  return `<${randomUUID()}@${domain}>`;
}

export async function buildMessage(d: Draft, domain: string, now = new Date()): Promise<Buffer> {
  const composer = new MailComposer({
    from: d.from,
    to: d.to,
    ...(d.cc.length > 0 ? { cc: d.cc } : {}),
    subject: d.subject,
    text: d.text,
    date: now,
    messageId: newMessageIdHeader(domain),
    ...(d.inReplyTo ? { inReplyTo: d.inReplyTo } : {}),
    ...(d.references && d.references.length > 0 ? { references: d.references } : {}),
    attachments: d.attachments.map((a) => ({ filename: a.filename, contentType: a.contentType, content: a.content })),
    ...(d.headers ? { headers: d.headers } : {}),
    disableFileAccess: true,
    disableUrlAccess: true,
  });
  return composer.compile().build();
}

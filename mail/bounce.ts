// Failure notices ("bounces"): when a message to another domain is refused for good or cannot be
// delivered within mail.retry_for_s, its sender finds a notice in their inbox saying to whom, why, and
// with the original message's headers attached.
import type { StoreClient } from '../actors/session.js';
import { accountExists } from '../web/accounts.js';
import { buildMessage } from './compose.js';
import { storeMessage } from './mailbox.js';
import type { QueueEntry } from './queue.js';

/** The headers of a raw message (up to the first blank line), at most 64 KiB. */
function headersOf(raw: Buffer | null): string {
  if (!raw) return '(the original message is no longer available)';
  const head = raw.subarray(0, 64 * 1024).toString('utf8');
  const end = head.search(/\r?\n\r?\n/);
  return end >= 0 ? head.slice(0, end) : head;
}

function subjectOf(headers: string): string {
  const m = /^subject:[ \t]*(.*(?:\r?\n[ \t].*)*)/im.exec(headers);
  return m ? m[1]!.replace(/\r?\n[ \t]+/g, ' ').trim().slice(0, 200) : '';
}

export async function sendFailureNotice(store: StoreClient, domain: string, e: QueueEntry, reason: string, original: Buffer | null): Promise<boolean> {
  if (!(await accountExists(store, e.sender))) return false;
  const headers = headersOf(original);
  const subject = subjectOf(headers);
  const text = [
    `This is the mail system at ${domain}.`,
    '',
    `Your message${subject ? ` "${subject}"` : ''} could not be delivered to:`,
    '',
    `    ${e.rcpt}`,
    '',
    `Reason: ${reason}`,
    `Attempts: ${e.attempts + 1}, first tried ${new Date(e.created).toUTCString()}.`,
    '',
    'The headers of your message are attached.',
  ].join('\n');
  const raw = await buildMessage(
    {
      from: { name: 'Mail Delivery System', address: `mailer-daemon@${domain}` },
      to: [`${e.sender}@${domain}`],
      cc: [],
      subject: `Undelivered mail: ${subject || e.rcpt}`.slice(0, 250),
      text,
      attachments: [{ filename: 'original-headers.txt', contentType: 'text/plain; charset=utf-8', content: Buffer.from(headers) }],
      headers: { 'Auto-Submitted': 'auto-replied' },
    },
    domain,
  );
  await storeMessage(store, e.sender, 'inbox', raw);
  return true;
}

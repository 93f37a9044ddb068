// E-mail addresses: parsing what people type into To/Cc, and telling local mailboxes
// (`user@<cluster.mail_domain>`, where user is an account) from addresses of other domains.
import addressparser from 'nodemailer/lib/addressparser';
import { usernameProblem } from '../web/accounts.js';

/** At most this many recipients per message (web compose and one SMTP transaction). */
export const MAX_RECIPIENTS = 50;

/** A plain addr-spec we are willing to send to: local@domain.tld, printable ASCII, bounded. */
const ADDRESS = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)+$/;

export function isAddress(s: string): boolean {
  return s.length <= 254 && ADDRESS.test(s) && !s.startsWith('.') && !s.includes('..') && !s.includes('.@');
}

export function domainOf(address: string): string {
  return address.slice(address.lastIndexOf('@') + 1).toLowerCase();
}

/** The account name when `address` is a local mailbox name (syntax only: the account may not exist). */
export function localUser(address: string, mailDomain: string): string | null {
  const at = address.lastIndexOf('@');
  if (at < 0 || address.slice(at + 1).toLowerCase() !== mailDomain.toLowerCase()) return null;
  const name = address.slice(0, at).toLowerCase();
  return usernameProblem(name) === null || ['postmaster', 'mailer-daemon'].includes(name) ? name : null;
}

export function isLocalDomain(address: string, mailDomain: string): boolean {
  return domainOf(address) === mailDomain.toLowerCase();
}

export type ParsedList = { ok: true; addresses: string[] } | { ok: false; problem: string };

/**
 * Parses a To/Cc field ("Ann <ann@x.org>, bob@penncloud.local; carol"): a bare name means a local
 * user. Duplicates are dropped; every address is checked.
 */
export function parseAddressList(text: string, mailDomain: string): ParsedList {
  if (text.length > 10_000) return { ok: false, problem: 'The recipient list is too long.' };
  const out: string[] = [];
  for (const part of addressparser(text.replace(/;/g, ','), { flatten: true })) {
    let a = (part.address || part.name || '').trim();
    if (a === '') continue;
    if (!a.includes('@')) a = `${a.toLowerCase()}@${mailDomain}`;
    if (!isAddress(a)) return { ok: false, problem: `'${a}' is not an e-mail address.` };
    if (isLocalDomain(a, mailDomain)) a = a.toLowerCase();
    if (!out.some((x) => x.toLowerCase() === a.toLowerCase())) out.push(a);
  }
  if (out.length > MAX_RECIPIENTS) return { ok: false, problem: `At most ${MAX_RECIPIENTS} recipients per message.` };
  return { ok: true, addresses: out };
}

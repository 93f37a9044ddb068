// Where a new message goes: local recipients get it in their inbox at once, recipients in other domains
// through the outbound queue, and the sender keeps a copy in Sent. Used by the webmail's compose and by
// SMTP ingress (which passes only the recipients it accepted).
import type { ParsedMail } from 'mailparser';
import type { StoreClient } from '../actors/session.js';
import type { Topology } from '../transport/topology.js';
import { accountExists } from '../web/accounts.js';
import { isLocalDomain, localUser } from './addresses.js';
import { again } from '../actors/store-writes.js';
import { parseMessage, storeMessage } from './mailbox.js';
import { enqueue } from './queue.js';

export interface Submission {
  raw: Buffer;
  parsed?: ParsedMail | Promise<ParsedMail>;
  /** Envelope sender (MAIL FROM); failure notices about remote recipients go back to it. */
  from: string;
  /** The local account sending (null: mail arriving from outside, which may not be relayed). */
  sender: string | null;
  rcpts: string[];
  /** Keep a copy in the sender's Sent folder. */
  saveSent: boolean;
  /** The local recipients' accounts were already checked (SMTP does it at RCPT). */
  accountsChecked?: boolean;
}

export interface Outcome {
  delivered: string[];
  queued: string[];
  /** Local addresses with no account, and remote ones when there is no local sender. */
  refused: string[];
}

/** Resolves once every copy is durably stored (inboxes, queue entries, Sent). */
export async function submit(store: StoreClient, topo: Topology, s: Submission): Promise<Outcome> {
  const domain = topo.cluster.mailDomain;
  const parsed = Promise.resolve(s.parsed ?? parseMessage(s.raw));
  parsed.catch(() => {}); // awaited by each copy below; a parse failure fails them
  const out: Outcome = { delivered: [], queued: [], refused: [] };
  const localUsers = new Map<string, string>(); // user -> first address naming it
  const remote: string[] = [];
  for (const rcpt of s.rcpts) {
    if (isLocalDomain(rcpt, domain)) {
      const user = localUser(rcpt, domain);
      if (user !== null && !localUsers.has(user) && (s.accountsChecked || (await again(() => accountExists(store, user))))) localUsers.set(user, rcpt);
      else if (user === null || !localUsers.has(user)) out.refused.push(rcpt);
    } else if (s.sender !== null) {
      remote.push(rcpt);
    } else {
      out.refused.push(rcpt);
    }
  }
  const work: Promise<unknown>[] = [];
  for (const [user, rcpt] of localUsers) {
    work.push(storeMessage(store, user, 'inbox', s.raw, { parsed }).then(() => out.delivered.push(rcpt)));
  }
  if (remote.length > 0 && s.sender !== null) {
    work.push(enqueue(store, { sender: s.sender, from: s.from, rcpts: remote, raw: s.raw }).then(() => out.queued.push(...remote)));
  }
  if (s.saveSent && s.sender !== null) work.push(storeMessage(store, s.sender, 'sent', s.raw, { parsed, read: true }));
  await Promise.all(work);
  return out;
}

// SMTP ingress (smtp-server): accepts mail for local users from any client, answers 250 only once the
// message is durably stored; 550 for unknown local users (at RCPT), 552 for messages over
// mail.max_message_mb, 554 for relaying to other domains unless the client authenticated (AUTH PLAIN /
// LOGIN with a penncloud account; without TLS only from loopback). Authenticated clients may send only
// as their own address; their mail to other domains goes on the outbound queue.
import type { Logger } from 'pino';
import { SMTPServer, type SMTPServerAuthentication, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';
import type { StoreClient } from '../actors/session.js';
import type { Topology } from '../transport/topology.js';
import { accountExists, logIn } from '../web/accounts.js';
import type { LoadMeter } from '../web/service-heartbeat.js';
import { isAddress, isLocalDomain, localUser, MAX_RECIPIENTS } from './addresses.js';
import { again } from '../actors/store-writes.js';
import { parseMessage } from './mailbox.js';
import { submit } from './submit.js';

export interface IngressDeps {
  store: StoreClient;
  topo: Topology;
  node: string;
  log: Logger;
  meter: LoadMeter;
}

/** An SMTP reply: smtp-server answers with `responseCode` and the message. */
function reply(code: number, message: string): Error {
  return Object.assign(new Error(message), { responseCode: code });
}

export function isLoopback(ip: string): boolean {
  return ip === '::1' || ip.startsWith('127.') || ip.startsWith('::ffff:127.');
}

/** A header-safe rendering of what a client told us (EHLO name): printable ASCII, bounded. */
const safe = (s: string): string => s.replace(/[^\x21-\x7e]/g, '?').slice(0, 100);

function receivedHeader(node: string, domain: string, s: SMTPServerSession): string {
  const auth = s.user ? ' (authenticated)' : '';
  return `Received: from ${safe(s.hostNameAppearsAs || 'unknown')} ([${safe(s.remoteAddress)}])\r\n\tby ${domain} (penncloud ${node}) with ESMTP id ${safe(s.id)}${auth};\r\n\t${new Date().toUTCString()}\r\n`;
}

/** Accounts seen to exist, remembered briefly (accounts are never deleted): one store read less per RCPT. */
class KnownAccounts {
  private readonly seen = new Map<string, number>();
  constructor(
    private readonly ttlMs = 30_000,
    private readonly max = 10_000,
  ) {}

  async exists(store: StoreClient, user: string, now = Date.now()): Promise<boolean> {
    const until = this.seen.get(user);
    if (until !== undefined && until > now) return true;
    const ok = await again(() => accountExists(store, user));
    if (ok) {
      if (this.seen.size >= this.max) this.seen.clear();
      this.seen.set(user, now + this.ttlMs);
    }
    return ok;
  }
}

export function createIngress(d: IngressDeps): SMTPServer {
  const domain = d.topo.cluster.mailDomain;
  const maxBytes = d.topo.mail.maxMessageBytes;
  const known = new KnownAccounts();

  const onAuth = (auth: SMTPServerAuthentication, session: SMTPServerSession, cb: (err: Error | null | undefined, res?: { user?: string }) => void): void => {
    if (!session.secure && !isLoopback(session.remoteAddress)) return cb(reply(538, '5.7.11 Encryption required for authentication'));
    if (auth.method !== 'PLAIN' && auth.method !== 'LOGIN') return cb(reply(504, '5.5.4 Unrecognized authentication type'));
    let name = (auth.username ?? '').trim().toLowerCase();
    if (name.endsWith(`@${domain.toLowerCase()}`)) name = name.slice(0, name.lastIndexOf('@'));
    logIn(d.store, d.topo, name, auth.password ?? '').then(
      (res) => (res.ok ? cb(null, { user: res.user.name }) : cb(reply(535, `5.7.8 ${res.problem}`))),
      (e) => {
        d.log.warn({ err: (e as Error).message }, 'auth failed on a store error');
        cb(reply(454, '4.7.0 Temporary authentication failure'));
      },
    );
  };

  const onMailFrom = (address: { address: string }, session: SMTPServerSession, cb: (err?: Error | null) => void): void => {
    const from = address.address;
    if (from !== '' && !isAddress(from)) return cb(reply(553, '5.1.7 Bad sender address syntax'));
    if (session.user && from !== '' && from.toLowerCase() !== `${session.user}@${domain}`.toLowerCase()) {
      return cb(reply(553, `5.7.1 You may only send as ${session.user}@${domain}`));
    }
    cb();
  };

  const onRcptTo = (address: { address: string }, session: SMTPServerSession, cb: (err?: Error | null) => void): void => {
    const rcpt = address.address;
    if (session.envelope.rcptTo.length >= MAX_RECIPIENTS) return cb(reply(452, '4.5.3 Too many recipients'));
    if (!isAddress(rcpt)) return cb(reply(553, '5.1.3 Bad recipient address syntax'));
    if (!isLocalDomain(rcpt, domain)) {
      return session.user ? cb() : cb(reply(554, `5.7.1 <${rcpt}>: Relay access denied (log in to send to other domains)`));
    }
    const user = localUser(rcpt, domain);
    if (user === null) return cb(reply(550, `5.1.1 <${rcpt}>: No such user here`));
    known.exists(d.store, user).then(
      (ok) => cb(ok ? null : reply(550, `5.1.1 <${rcpt}>: No such user here`)),
      () => cb(reply(451, '4.3.0 Mailbox lookup failed, try again later')),
    );
  };

  const onData = (stream: SMTPServerDataStream, session: SMTPServerSession, cb: (err?: Error | null, message?: string) => void): void => {
    const parts: Buffer[] = [Buffer.from(receivedHeader(d.node, domain, session))];
    let size = 0;
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= maxBytes) parts.push(chunk);
    });
    stream.once('error', (e) => cb(reply(451, `4.3.0 ${e.message}`)));
    stream.once('end', () => {
      if (stream.sizeExceeded || size > maxBytes) {
        return cb(reply(552, `5.3.4 Message too big (the limit is ${Math.floor(maxBytes / 1048576)} MiB)`));
      }
      const raw = Buffer.concat(parts);
      const mailFrom = session.envelope.mailFrom;
      const rcpts = session.envelope.rcptTo.map((r) => r.address);
      d.meter.begin();
      submit(d.store, d.topo, {
        raw,
        parsed: parseMessage(raw),
        from: mailFrom ? mailFrom.address : '',
        sender: session.user ?? null,
        rcpts,
        saveSent: false,
        accountsChecked: true,
      })
        .then(
          (out) => {
            if (out.delivered.length + out.queued.length === 0) return cb(reply(550, '5.1.1 No valid recipients'));
            cb(null, `2.0.0 OK: stored for ${out.delivered.length + out.queued.length} recipient(s)`);
          },
          (e) => {
            d.log.warn({ err: (e as Error).message, session: session.id }, 'could not store a message');
            cb(reply(451, '4.3.0 Could not store the message now; try again later'));
          },
        )
        .finally(() => d.meter.end());
    });
  };

  return new SMTPServer({
    name: domain,
    banner: 'penncloud ESMTP',
    size: maxBytes,
    authMethods: ['PLAIN', 'LOGIN'],
    authOptional: true,
    allowInsecureAuth: true, // onAuth refuses it off loopback
    disabledCommands: ['STARTTLS'],
    disableReverseLookup: true,
    maxClients: 500,
    socketTimeout: 60_000,
    closeTimeout: 10_000,
    logger: false,
    onAuth,
    onMailFrom,
    onRcptTo,
    onData,
  });
}

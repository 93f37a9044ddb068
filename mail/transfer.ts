// One delivery attempt of a queued message to a remote domain: try each exchanger (in preference
// order) and each of its addresses until one takes the message or refuses it for good. Sent with
// nodemailer's SMTP transport, opportunistic STARTTLS, bounded timeouts.
import nodemailer from 'nodemailer';
import type { Exchanger } from './mx.js';

export type TransferResult =
  | { kind: 'sent'; host: string; response: string }
  | { kind: 'permanent'; reason: string }
  | { kind: 'temporary'; reason: string };

export interface TransferOptions {
  port: number;
  /** Our name in EHLO. */
  heloName: string;
  /** Per-step timeouts (connect, greeting, idle socket). */
  timeoutMs: number;
}

interface SmtpError extends Error {
  code?: string;
  responseCode?: number;
  response?: string;
  permanent?: boolean;
}

function describe(e: SmtpError, host: string): string {
  const what = e.response ?? e.message;
  return `${host}: ${what}`.replace(/\s+/g, ' ').slice(0, 400);
}

export async function transfer(exchangers: Exchanger[], envelope: { from: string; to: string }, raw: Buffer, o: TransferOptions): Promise<TransferResult> {
  const problems: string[] = [];
  for (const mx of exchangers) {
    for (const ip of mx.ips) {
      const transport = nodemailer.createTransport({
        host: ip,
        port: o.port,
        secure: false,
        name: o.heloName,
        // The certificate of another domain's exchanger is rarely checkable (opportunistic TLS, RFC 7435).
        tls: { servername: mx.name, rejectUnauthorized: false },
        connectionTimeout: o.timeoutMs,
        greetingTimeout: o.timeoutMs,
        socketTimeout: o.timeoutMs * 2,
        disableFileAccess: true,
        disableUrlAccess: true,
      });
      try {
        const info = await transport.sendMail({ envelope: { from: envelope.from, to: [envelope.to] }, raw });
        if (info.accepted.length > 0) return { kind: 'sent', host: mx.name, response: String(info.response ?? '') };
        problems.push(`${mx.name}: recipient not accepted`);
      } catch (err) {
        const e = err as SmtpError;
        // A reply that says "never" ends the attempt; anything else (4xx, refused connection, timeout)
        // lets us try the next address or exchanger.
        if (e.responseCode !== undefined && (e.permanent ?? (e.responseCode >= 500 && e.responseCode !== 503))) {
          return { kind: 'permanent', reason: describe(e, mx.name) };
        }
        problems.push(describe(e, mx.name));
      } finally {
        transport.close();
      }
    }
  }
  return { kind: 'temporary', reason: problems.join('; ').slice(0, 500) || 'no exchanger reachable' };
}

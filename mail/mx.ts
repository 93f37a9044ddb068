// Where to send mail for a domain: its MX records in preference order, or its A record when it has no
// MX (RFC 5321 5.1), each exchanger resolved to IPv4 addresses with the configured resolver
// (`mail.dns_servers`, "host" or "host:port"; empty: the system's).
import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';

export interface Exchanger {
  /** The exchanger's name (for TLS and logs). */
  name: string;
  /** Its addresses, tried in order. */
  ips: string[];
}

export type Route = { ok: true; exchangers: Exchanger[] } | { ok: false; permanent: boolean; reason: string };

/** At most this many exchangers are tried per attempt (RFC 5321 suggests a bounded number). */
export const MAX_EXCHANGERS = 5;

export function makeResolver(servers: string[], timeoutMs = 5000): Resolver {
  const r = new Resolver({ timeout: timeoutMs, tries: 2 });
  if (servers.length > 0) r.setServers(servers);
  return r;
}

const code = (e: unknown): string => (e as NodeJS.ErrnoException).code ?? 'EUNKNOWN';
/** The name has no records of this type, but exists. */
const NO_DATA = new Set(['ENODATA']);
/** The name does not exist. */
const NO_NAME = new Set(['ENOTFOUND']);

async function addresses(r: Resolver, host: string): Promise<string[]> {
  if (isIP(host)) return [host];
  try {
    return await r.resolve4(host);
  } catch (e) {
    if (NO_DATA.has(code(e)) || NO_NAME.has(code(e))) return [];
    throw e;
  }
}

export async function route(r: Resolver, domain: string): Promise<Route> {
  try {
    let names: string[];
    try {
      const mx = await r.resolveMx(domain);
      mx.sort((a, b) => a.priority - b.priority);
      // A "null MX" (a single record for ".") says the domain takes no mail (RFC 7505).
      if (mx.length === 1 && (mx[0]!.exchange === '' || mx[0]!.exchange === '.')) return { ok: false, permanent: true, reason: `${domain} accepts no mail (null MX)` };
      names = mx.map((m) => m.exchange).filter((x) => x !== '' && x !== '.');
    } catch (e) {
      if (NO_NAME.has(code(e))) return { ok: false, permanent: true, reason: `the domain ${domain} does not exist` };
      if (!NO_DATA.has(code(e))) throw e;
      names = [domain];
    }
    const exchangers: Exchanger[] = [];
    for (const name of names.slice(0, MAX_EXCHANGERS)) {
      const ips = await addresses(r, name);
      if (ips.length > 0) exchangers.push({ name, ips: ips.slice(0, 4) });
    }
    if (exchangers.length === 0) {
      return names.length === 1 && names[0] === domain
        ? { ok: false, permanent: true, reason: `${domain} has no MX and no address record` }
        : { ok: false, permanent: false, reason: `no address for the exchangers of ${domain} (${names.slice(0, 3).join(', ')})` };
    }
    return { ok: true, exchangers };
  } catch (e) {
    return { ok: false, permanent: false, reason: `DNS lookup for ${domain} failed: ${code(e)}` };
  }
}

// The frame of every mail page (folders on the left, the page on the right) and small formatters.
import type { Child } from 'hono/jsx';
import type { Folder } from '../../mail/summary.js';

export const FOLDER_NAMES: Record<Folder, string> = { inbox: 'Inbox', sent: 'Sent' };

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const two = (n: number): string => String(n).padStart(2, '0');

/** "14:05" today, "3 Mar" this year, "3 Mar 2024" before (UTC; the full time is in the title). */
export function shortTime(ms: number, now = Date.now()): string {
  const d = new Date(ms);
  const n = new Date(now);
  if (d.toISOString().slice(0, 10) === n.toISOString().slice(0, 10)) return `${two(d.getUTCHours())}:${two(d.getUTCMinutes())}`;
  const day = `${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]}`;
  return d.getUTCFullYear() === n.getUTCFullYear() ? day : `${day} ${d.getUTCFullYear()}`;
}

export function fullTime(ms: number): string {
  return new Date(ms).toUTCString();
}

export function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1048576) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

export function MailShell(props: { active: Folder | 'compose' | null; children?: Child }) {
  return (
    <div class="mail">
      <aside class="mail-side">
        <a class="button compose" href="/mail/compose">
          Compose
        </a>
        <nav>
          {(['inbox', 'sent'] as const).map((f) => (
            <a href={`/mail/${f}`} class={props.active === f ? 'on' : ''}>
              {FOLDER_NAMES[f]}
            </a>
          ))}
        </nav>
      </aside>
      <section class="mail-main">{props.children}</section>
    </div>
  );
}

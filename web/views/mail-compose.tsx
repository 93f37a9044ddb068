// The compose form (new message, reply, forward): recipients, subject, text, files. It is a multipart
// form, so the CSRF token travels in the action URL.
import type { Prefill } from '../../mail/reply.js';
import { Flash } from './layout.js';
import { MailShell, size } from './mail-shell.js';

export interface ComposeLimits {
  maxAttachBytes: number;
  maxFiles: number;
}

export function ComposePage(props: { csrf: string; domain: string; prefill: Prefill; limits: ComposeLimits; error?: string | undefined }) {
  const p = props.prefill;
  return (
    <MailShell active="compose">
      <Flash error={props.error} />
      <form class="card compose" method="post" action={`/mail/send?_csrf=${encodeURIComponent(props.csrf)}`} enctype="multipart/form-data">
        <h1>{p.forward ? 'Forward' : p.inReplyTo ? 'Reply' : 'New message'}</h1>
        <label for="to">To</label>
        <input id="to" name="to" type="text" value={p.to} placeholder={`name@${props.domain}, someone@example.org`} required autofocus={p.to === ''} />
        <div class="hint">One or more addresses separated by commas; a bare name means name@{props.domain}.</div>
        <label for="cc">Cc</label>
        <input id="cc" name="cc" type="text" value={p.cc} />
        <label for="subject">Subject</label>
        <input id="subject" name="subject" type="text" value={p.subject} maxlength={500} />
        <label for="body">Message</label>
        <textarea id="body" name="body" autofocus={p.to !== ''}>
          {p.body}
        </textarea>
        {p.forwardNames.length > 0 && (
          <div class="hint forwarded">Forwarded with the original's attachments: {p.forwardNames.join(', ')}</div>
        )}
        <label for="files">Attachments</label>
        <input id="files" name="files" type="file" multiple />
        <div class="hint">
          Up to {props.limits.maxFiles} files, {size(props.limits.maxAttachBytes)} in total.
        </div>
        <input type="hidden" name="in_reply_to" value={p.inReplyTo} />
        <input type="hidden" name="references" value={p.references} />
        <input type="hidden" name="forward" value={p.forward} />
        <div class="actions">
          <button type="submit">Send</button>
          <a class="button secondary" href="/mail/inbox">
            Cancel
          </a>
        </div>
      </form>
    </MailShell>
  );
}

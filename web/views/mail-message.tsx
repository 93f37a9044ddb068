// One message: its headers, the body (plain text, or the sanitized HTML in a sandboxed iframe that
// runs no scripts), the attachments to download, and reply / reply all / forward / delete.
import type { MessageView } from '../../mail/render.js';
import { Csrf } from './layout.js';
import { MailShell, fullTime, size } from './mail-shell.js';

/** What the iframe may do: open links in a new tab, nothing else (no scripts, an opaque origin). */
const FRAME_SANDBOX = 'allow-popups allow-popups-to-escape-sandbox';

export function MessagePage(props: { view: MessageView; csrf: string }) {
  const v = props.view;
  const id = v.summary.id;
  return (
    <MailShell active={v.summary.folder}>
      <article class="card message">
        <h1 class="subject">{v.subject || '(no subject)'}</h1>
        <dl class="headers">
          <dt>From</dt>
          <dd class="from">{v.from || '(unknown)'}</dd>
          {v.to && (
            <>
              <dt>To</dt>
              <dd class="to">{v.to}</dd>
            </>
          )}
          {v.cc && (
            <>
              <dt>Cc</dt>
              <dd>{v.cc}</dd>
            </>
          )}
          <dt>Date</dt>
          <dd title={`arrived ${fullTime(v.summary.arrived)}`}>{v.date || fullTime(v.summary.arrived)}</dd>
        </dl>
        <div class="actions">
          <a class="button" href={`/mail/compose?reply=${id}`}>
            Reply
          </a>
          <a class="button secondary" href={`/mail/compose?reply=${id}&all=1`}>
            Reply all
          </a>
          <a class="button secondary" href={`/mail/compose?forward=${id}`}>
            Forward
          </a>
          <form class="inline" method="post" action={`/mail/m/${id}/delete`}>
            <Csrf token={props.csrf} />
            <button class="danger" type="submit">
              Delete
            </button>
          </form>
          <a class="muted source" href={`/mail/m/${id}/raw`}>
            Show original
          </a>
        </div>
        {v.frame !== null ? (
          <iframe class="mail-html" title="message body" sandbox={FRAME_SANDBOX} referrerpolicy="no-referrer" srcdoc={v.frame}></iframe>
        ) : (
          <pre class="mail-text">{v.text}</pre>
        )}
        {v.attachments.length > 0 && (
          <div class="attachments">
            <h2>Attachments</h2>
            <ul>
              {v.attachments.map((a) => (
                <li>
                  <a href={`/mail/m/${id}/att/${a.index}`} download={a.name}>
                    {a.name}
                  </a>{' '}
                  <span class="muted">
                    {a.type}, {size(a.size)}
                  </span>
                </li>
              ))}
            </ul>
          </div>
        )}
      </article>
    </MailShell>
  );
}

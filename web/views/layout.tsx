// The page frame every page shares: top bar (brand, navigation, user, logout) and the content.
import type { Child } from 'hono/jsx';
import { CSS_VERSION } from '../assets.js';
import type { User } from '../context.js';

export function Layout(props: { title: string; user: User | null; csrf: string; children?: Child; active?: string }) {
  const { user } = props;
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="csrf-token" content={props.csrf} />
        <title>{props.title} · penncloud</title>
        <link rel="stylesheet" href={`/static/style.css?v=${CSS_VERSION}`} />
      </head>
      <body>
        <header class="top">
          <a class="brand" href="/">
            penn<span>cloud</span>
          </a>
          <nav>
            {user && (
              <>
                <a href="/mail">Mail</a>
                <a href="/drive">Drive</a>
                {user.admin && <a href="/admin">Admin</a>}
              </>
            )}
          </nav>
          {user && (
            <div class="who">
              <a href="/account" title="Account settings">{user.name}</a>
              <form class="inline" method="post" action="/logout">
                <input type="hidden" name="_csrf" value={props.csrf} />
                <button class="secondary" type="submit">Log out</button>
              </form>
            </div>
          )}
        </header>
        <main>{props.children}</main>
      </body>
    </html>
  );
}

/** A hidden CSRF field for forms that change state. */
export function Csrf(props: { token: string }) {
  return <input type="hidden" name="_csrf" value={props.token} />;
}

export function Flash(props: { error?: string | undefined; ok?: string | undefined }) {
  if (props.error) return <div class="flash error" role="alert">{props.error}</div>;
  if (props.ok) return <div class="flash ok" role="status">{props.ok}</div>;
  return null;
}

export function ErrorPage(props: { status: number; message: string; back: string }) {
  return (
    <div class="card error-page">
      <div class="code">{props.status}</div>
      <p>{props.message}</p>
      <p>
        <a href={props.back}>Go back</a>
      </p>
    </div>
  );
}

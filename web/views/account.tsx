// Pages of the account area: log in, sign up, the menu, change password.
import type { User } from '../context.js';
import { PASSWORD_RULES, USERNAME_RULES } from '../accounts.js';
import { Csrf, Flash } from './layout.js';

export function LoginPage(props: { csrf: string; error?: string | undefined; name?: string; next?: string }) {
  return (
    <div class="card narrow">
      <h1>Log in</h1>
      <Flash error={props.error} />
      <form method="post" action="/login">
        <Csrf token={props.csrf} />
        {props.next && <input type="hidden" name="next" value={props.next} />}
        <label for="name">Username</label>
        <input id="name" name="username" type="text" autocomplete="username" autocapitalize="none" required value={props.name ?? ''} autofocus />
        <label for="password">Password</label>
        <input id="password" name="password" type="password" autocomplete="current-password" required />
        <div class="actions">
          <button type="submit">Log in</button>
          <span class="muted">
            No account? <a href="/signup">Sign up</a>
          </span>
        </div>
      </form>
    </div>
  );
}

export function SignupPage(props: { csrf: string; error?: string | undefined; name?: string; domain: string }) {
  return (
    <div class="card narrow">
      <h1>Create an account</h1>
      <Flash error={props.error} />
      <form method="post" action="/signup">
        <Csrf token={props.csrf} />
        <label for="name">Username</label>
        <input id="name" name="username" type="text" autocomplete="username" autocapitalize="none" required value={props.name ?? ''} autofocus />
        <div class="hint">
          {USERNAME_RULES}. Your address will be <span class="mono">name@{props.domain}</span>.
        </div>
        <label for="password">Password</label>
        <input id="password" name="password" type="password" autocomplete="new-password" required />
        <div class="hint">{PASSWORD_RULES}.</div>
        <label for="password2">Password again</label>
        <input id="password2" name="password_again" type="password" autocomplete="new-password" required />
        <div class="actions">
          <button type="submit">Sign up</button>
          <span class="muted">
            Have an account? <a href="/">Log in</a>
          </span>
        </div>
      </form>
    </div>
  );
}

export function MenuPage(props: { user: User; domain: string }) {
  return (
    <>
      <h1>Hello, {props.user.name}</h1>
      <p class="muted">
        Your address: <span class="mono">{props.user.name}@{props.domain}</span>
      </p>
      <div class="menu">
        <a class="tile" href="/mail" id="menu-mail">
          <strong>Inbox</strong>
          <span>Read, write and send mail</span>
        </a>
        <a class="tile" href="/drive" id="menu-drive">
          <strong>Drive</strong>
          <span>Your files and folders</span>
        </a>
        <a class="tile" href="/account" id="menu-account">
          <strong>Account</strong>
          <span>Change your password</span>
        </a>
        {props.user.admin && (
          <a class="tile" href="/admin" id="menu-admin">
            <strong>Admin console</strong>
            <span>Nodes, tablets, raw data</span>
          </a>
        )}
      </div>
    </>
  );
}

export function PasswordPage(props: { csrf: string; error?: string | undefined; ok?: string | undefined }) {
  return (
    <div class="card narrow">
      <h1>Change password</h1>
      <Flash error={props.error} ok={props.ok} />
      <form method="post" action="/account/password">
        <Csrf token={props.csrf} />
        <label for="old">Current password</label>
        <input id="old" name="old_password" type="password" autocomplete="current-password" required />
        <label for="new">New password</label>
        <input id="new" name="new_password" type="password" autocomplete="new-password" required />
        <div class="hint">{PASSWORD_RULES}.</div>
        <label for="new2">New password again</label>
        <input id="new2" name="new_password_again" type="password" autocomplete="new-password" required />
        <div class="actions">
          <button type="submit">Change password</button>
          <a href="/">Back</a>
        </div>
      </form>
    </div>
  );
}

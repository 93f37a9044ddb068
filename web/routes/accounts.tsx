// Log in, sign up, log out, change password, and the menu at `/`.
import { Hono, type Context } from 'hono';
import { changePassword, logIn, signUp } from '../accounts.js';
import type { WebEnv } from '../context.js';
import { handle, page, redirect } from '../http.js';
import { currentUser as me, startSession, endSession, formFields, mustLogIn, safeNext } from '../middleware.js';
import { LoginPage, MenuPage, PasswordPage, SignupPage } from '../views/account.js';
import { endSessions } from '../sessions.js';

export function accountRoutes(): Hono<WebEnv> {
  const app = new Hono<WebEnv>();
  app.use('/account', mustLogIn());
  app.use('/account/*', mustLogIn());
  const domain = (c: Context<WebEnv>): string => c.get('deps').topo.cluster.mailDomain;

  app.get(
    '/',
    handle((c) => {
      const user = c.get('user');
      if (user) return page('Home', <MenuPage user={user} domain={domain(c)} />);
      return page('Log in', <LoginPage csrf={c.get('csrf')} next={safeNext(c.req.query('next'))} />);
    }),
  );

  app.post(
    '/login',
    handle(async (c) => {
      const f = await formFields(c, ['username', 'password', 'next']);
      const name = f.username.trim().toLowerCase();
      const res = await logIn(c.get('deps').store, c.get('deps').topo, name, f.password);
      if (!res.ok) return page('Log in', <LoginPage csrf={c.get('csrf')} error={res.problem} name={name} next={safeNext(f.next)} />, res.status);
      await startSession(c, res.user);
      return redirect(safeNext(f.next) ?? '/');
    }),
  );

  app.get(
    '/signup',
    handle((c) => (c.get('user') ? redirect('/') : page('Sign up', <SignupPage csrf={c.get('csrf')} domain={domain(c)} />))),
  );

  app.post(
    '/signup',
    handle(async (c) => {
      const f = await formFields(c, ['username', 'password', 'password_again']);
      const name = f.username.trim().toLowerCase();
      const again = (error: string, status: 400 | 409) => page('Sign up', <SignupPage csrf={c.get('csrf')} domain={domain(c)} error={error} name={name} />, status);
      // The confirmation is the page's; a script may leave it out (the interface is username + password).
      if (f.password_again !== '' && f.password !== f.password_again) return again('The two passwords differ.', 400);
      const res = await signUp(c.get('deps').store, c.get('deps').topo, name, f.password);
      if (!res.ok) return again(res.problem, res.problem.includes('taken') ? 409 : 400);
      await startSession(c, res.user);
      return redirect('/');
    }),
  );

  app.post(
    '/logout',
    handle(async (c) => {
      await endSession(c);
      return redirect('/');
    }),
  );

  // The form lives at both addresses: /account (the menu links it) and /account/password (where it posts).
  for (const path of ['/account', '/account/password']) {
    app.get(
      path,
      handle((c) => {
        me(c);
        return page('Account', <PasswordPage csrf={c.get('csrf')} />);
      }),
    );
  }

  app.post(
    '/account/password',
    handle(async (c) => {
      const user = me(c);
      const f = await formFields(c, ['old_password', 'new_password', 'new_password_again']);
      const show = (error?: string, ok?: string, status?: 400 | 403) => page('Account', <PasswordPage csrf={c.get('csrf')} error={error} ok={ok} />, status);
      if (f.new_password_again !== '' && f.new_password !== f.new_password_again) return show('The two new passwords differ.', undefined, 400);
      const res = await changePassword(c.get('deps').store, user.name, f.old_password, f.new_password);
      if (!res.ok) return show(res.problem, undefined, 400);
      // Whoever else was logged in as this user (perhaps with the old password) is logged out.
      const ended = await endSessions(c.get('deps').store, user.name, { keep: c.get('sid'), all: true }).catch(() => null);
      if (ended === null) return show(undefined, 'Your password was changed, but your other sessions could not all be logged out just now: change it again to retry.');
      return show(undefined, `Your password was changed.${ended > 0 ? ` ${ended === 1 ? 'Your other session was' : `Your ${ended} other sessions were`} logged out.` : ''}`);
    }),
  );

  return app;
}

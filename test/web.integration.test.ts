// The web over real HTTP: two frontends and a balancer in front of a replicated store, every one its
// own process. Accounts, sessions, CSRF, cookies, HTTP details, and frontends coming and going.
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { useCluster } from './support/cluster.js';
import { WebClient } from './support/web-client.js';

const PW = 'correct horse';

describe('web: accounts and sessions over two frontends', () => {
  const env = useCluster({
    basePort: 24000,
    storageNodes: 3,
    replication: 3,
    tablets: 8,
    frontends: 2,
    balancer: true,
    extraToml: '[web]\nheartbeat_ms = 200\nlogin_attempts = 3\nlogin_window_s = 60\n',
  });
  const { cluster } = env;
  const web1 = (): WebClient => new WebClient(cluster.url('web1'));
  const web2 = (): WebClient => new WebClient(cluster.url('web2'));

  it('gives a first visit a random 128-bit session cookie, HttpOnly and SameSite=Lax', async () => {
    const a = await fetch(cluster.url('web1') + '/');
    const b = await fetch(cluster.url('web1') + '/');
    const cookies = [a, b].map((r) => r.headers.getSetCookie().find((c) => c.startsWith('pc_sid='))!);
    for (const c of cookies) {
      expect(c).toMatch(/^pc_sid=[A-Za-z0-9_-]{22};/); // 16 random bytes, base64url
      expect(c).toMatch(/HttpOnly/);
      expect(c).toMatch(/SameSite=Lax/);
      expect(c).toMatch(/Path=\//);
    }
    expect(cookies[0]).not.toBe(cookies[1]);
    expect(await a.text()).toContain('action="/login"');
  });

  it('signs up, shows the menu, and the session works on the other frontend', async () => {
    const u = web1();
    const res = await u.signUp('alice', PW);
    expect(res.status).toBe(200);
    expect(res.text).toContain('Hello, alice');
    expect(res.text).toContain('href="/mail"');
    expect(res.text).toContain('href="/drive"');
    // The first account is the admin (web.admins is empty in this topology).
    expect(res.text).toContain('href="/admin"');
    u.base = cluster.url('web2');
    const other = await u.get('/');
    expect(other.text).toContain('Hello, alice');
    // The password is stored only as a salted scrypt hash.
    const stored = Buffer.from((await env.client.get('user:alice', 'account'))!).toString();
    expect(stored).not.toContain(PW);
    expect(JSON.parse(stored).hash).toMatch(/^scrypt\$16384\$8\$1\$[A-Za-z0-9+/=]{24}\$[A-Za-z0-9+/=]{44}$/);
  });

  it('a second account is not an admin and does not see the admin link', async () => {
    const u = web2();
    const res = await u.signUp('bob', PW);
    expect(res.text).toContain('Hello, bob');
    expect(res.text).not.toContain('href="/admin"');
  });

  it('refuses bad usernames and passwords with a message', async () => {
    const u = web1();
    for (const [name, pw, msg] of [
      ['ab', PW, 'A username has'],
      ['Has Space', PW, 'A username has'],
      ['../etc', PW, 'A username has'],
      ['postmaster', PW, 'reserved'],
      ['carol', 'short', 'A password has'],
    ] as const) {
      const res = await u.signUp(name, pw);
      expect(res.status, name).toBe(400);
      expect(res.text, name).toContain(msg);
    }
    const mismatch = await u.postForm('/signup', { username: 'carol', password: PW, password_again: PW + 'x' });
    expect(mismatch.status).toBe(400);
    expect(mismatch.text).toContain('The two passwords differ');
    expect(await env.client.get('user:carol', 'account')).toBeNull();
  });

  it('of many sign-ups racing for one name on two frontends, exactly one wins', async () => {
    const clients = Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? web1() : web2()));
    await Promise.all(clients.map((c) => c.get('/signup')));
    const results = await Promise.all(clients.map((c, i) => c.postForm('/signup', { username: 'racer', password: `${PW} ${i}`, password_again: `${PW} ${i}` }, false)));
    const winners = results.filter((r) => r.status === 303);
    const losers = results.filter((r) => r.status === 409);
    expect(winners.length).toBe(1);
    expect(losers.length).toBe(clients.length - 1);
    for (const l of losers) expect(l.text).toContain('is taken');
    // The winner's password is the one that works.
    const w = results.indexOf(winners[0]!);
    expect((await web2().logIn('racer', `${PW} ${w}`)).text).toContain('Hello, racer');
  });

  it('a wrong password gets an error message, not a crash; unknown users the same message', async () => {
    const bad = await web1().logIn('alice', 'not the password');
    expect(bad.status).toBe(401);
    expect(bad.text).toContain('Wrong username or password.');
    const unknown = await web1().logIn('nobody-here', PW);
    expect(unknown.status).toBe(401);
    expect(unknown.text).toContain('Wrong username or password.');
    const ok = await web2().logIn('alice', PW);
    expect(ok.text).toContain('Hello, alice');
  });

  it('rate-limits failed logins per account, across frontends', async () => {
    await web1().signUp('dave', PW);
    for (let i = 0; i < 3; i++) expect((await (i % 2 ? web1() : web2()).logIn('dave', 'wrong password')).status).toBe(401);
    const limited = await web1().logIn('dave', PW);
    expect(limited.status).toBe(429);
    expect(limited.text).toContain('Too many failed attempts');
    // Other accounts are not affected.
    expect((await web1().logIn('alice', PW)).status).toBe(200);
  });

  it('changes the password (needs the old one), logs out, logs in with the new one', async () => {
    const u = web1();
    await u.signUp('erin', PW);
    await u.get('/account');
    const wrongOld = await u.postForm('/account/password', { old_password: 'nope nope', new_password: 'new password 1', new_password_again: 'new password 1' });
    expect(wrongOld.status).toBe(400);
    expect(wrongOld.text).toContain('The current password is wrong.');
    const ok = await u.postForm('/account/password', { old_password: PW, new_password: 'new password 1' });
    expect(ok.status).toBe(200);
    expect(ok.text).toContain('Your password was changed.');
    const sidBefore = u.cookies.get('pc_sid');
    const out = await u.postForm('/logout', {});
    expect(out.text).toContain('action="/login"');
    // Logging out deleted the session: the old cookie no longer logs anyone in.
    const replay = new WebClient(cluster.url('web2'));
    replay.cookies.set('pc_sid', sidBefore!);
    expect((await replay.get('/')).text).not.toContain('Hello, erin');
    expect((await web2().logIn('erin', PW)).status).toBe(401);
    expect((await web2().logIn('erin', 'new password 1')).text).toContain('Hello, erin');
  });

  it('serves the documented form interface: username + password, old_password + new_password', async () => {
    // As a script would: fetch the form for its CSRF token, post only the documented fields.
    const u = web1();
    await u.get('/signup');
    const up = await u.postForm('/signup', { username: 'Ivy', password: PW }, false);
    expect(up.status).toBe(303);
    const s = web2();
    await s.get('/');
    expect((await s.postForm('/login', { username: 'ivy', password: PW })).text).toContain('Hello, ivy');
    await s.get('/account/password');
    expect((await s.postForm('/account/password', { old_password: PW, new_password: 'ivy password 2' })).text).toContain('Your password was changed.');
    expect((await web1().logIn('ivy', 'ivy password 2')).text).toContain('Hello, ivy');
  });

  it('a password change logs out every other session of the account, on any frontend', async () => {
    const phone = web2();
    await phone.signUp('frank', PW);
    const laptop = web1();
    expect((await laptop.logIn('frank', PW)).text).toContain('Hello, frank');
    const tablet = web2();
    expect((await tablet.logIn('frank', PW)).text).toContain('Hello, frank');
    await laptop.get('/account');
    const ok = await laptop.postForm('/account/password', { old_password: PW, new_password: 'new password 2', new_password_again: 'new password 2' });
    expect(ok.text).toContain('Your 2 other sessions were logged out.');
    expect((await phone.get('/')).text).not.toContain('Hello, frank');
    expect((await tablet.get('/')).text).not.toContain('Hello, frank');
    expect((await laptop.get('/')).text).toContain('Hello, frank');
    // The index lists only the session that is left.
    const listed = await env.client.cols('sessions:frank');
    expect(listed).toHaveLength(1);
    expect(listed[0]!.endsWith(`.${laptop.cookies.get('pc_sid')!}`)).toBe(true);
  });

  it('a login ends the expired sessions of the account, which nobody would otherwise ever remove', async () => {
    const u = web1();
    await u.signUp('gina', PW);
    // Two sessions that expired long ago, as a browser that never came back leaves them.
    const stale = ['AAAAAAAAAAAAAAAAAAAAAA', 'BBBBBBBBBBBBBBBBBBBBBB'];
    for (const sid of stale) {
      await env.client.put('sessions:gina', `000000000000001.${sid}`, '');
      await env.client.put(`session:${sid}`, 's', JSON.stringify({ user: 'gina', admin: false, expires: 1 }));
    }
    expect((await web2().logIn('gina', PW)).text).toContain('Hello, gina');
    for (const sid of stale) expect(await env.client.get(`session:${sid}`, 's')).toBeNull();
    const listed = await env.client.cols('sessions:gina');
    expect(listed.some((c) => c.startsWith('000000000000001.'))).toBe(false);
    expect(listed).toHaveLength(2); // the sign-up's session and the new login's
    // Logging out removes the session and its index entry.
    await u.postForm('/logout', {});
    expect(await env.client.cols('sessions:gina')).toHaveLength(1);
  });

  it('refuses a state-changing POST without the CSRF token, and does nothing', async () => {
    const u = web1();
    await u.get('/');
    const res = await u.raw('POST', '/signup', {
      body: new URLSearchParams({ username: 'mallory', password: PW }).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(res.status).toBe(403);
    expect(res.text).toContain('CSRF');
    const forged = await u.raw('POST', '/signup', {
      body: new URLSearchParams({ _csrf: 'x'.repeat(32), username: 'mallory', password: PW }).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(forged.status).toBe(403);
    expect(await env.client.get('user:mallory', 'account')).toBeNull();
    // A token belongs to its session: another browser's token does not work.
    const other = web2();
    await other.get('/');
    u.csrf = other.csrf;
    expect((await u.postForm('/signup', { username: 'mallory', password: PW })).status).toBe(403);
  });

  it('issues a new session id at login (no session fixation)', async () => {
    const u = web1();
    await u.get('/');
    const before = u.cookies.get('pc_sid');
    await u.logIn('alice', PW);
    expect(u.cookies.get('pc_sid')).not.toBe(before);
  });

  it('speaks HTTP/1.1 properly: HEAD, 404, 413, keep-alive, chunked request bodies', async () => {
    const head = await fetch(cluster.url('web1') + '/', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
    const missing = await fetch(cluster.url('web1') + '/no/such/page', { headers: { accept: 'text/html' } });
    expect(missing.status).toBe(404);
    expect(await missing.text()).toContain('There is no page at /no/such/page');
    // A chunked form body (no Content-Length) over a kept-alive connection, twice.
    const u = web1();
    await u.get('/');
    const agentRes = await new Promise<{ status: number; body: string; reused: boolean }[]>((resolve, reject) => {
      const out: { status: number; body: string; reused: boolean }[] = [];
      const url = new URL(cluster.url('web1'));
      const send = (n: number): void => {
        const req = httpRequest(
          { host: url.hostname, port: url.port, path: '/login', method: 'POST', agent: keepAlive, headers: { cookie: `pc_sid=${u.cookies.get('pc_sid')}`, 'content-type': 'application/x-www-form-urlencoded', 'transfer-encoding': 'chunked' } },
          (res) => {
            let body = '';
            res.on('data', (d: Buffer) => (body += d.toString()));
            res.on('end', () => {
              out.push({ status: res.statusCode!, body, reused: req.reusedSocket });
              if (n > 1) setTimeout(() => send(n - 1), 10); // the socket goes back to the agent's pool after 'end'
              else resolve(out);
            });
          },
        );
        req.on('error', reject);
        req.write(`_csrf=${u.csrf}&name=ali`);
        req.write('ce&password=wrong%20password');
        req.end();
      };
      send(2);
    });
    expect(agentRes.map((r) => r.status)).toEqual([401, 401]);
    expect(agentRes[0]!.body).toContain('Wrong username or password.');
    expect(agentRes[1]!.reused).toBe(true);
    // A form body over the limit is refused with 413 and does not take the frontend down.
    const huge = await u.raw('POST', '/login', { body: 'a='.padEnd(2 << 20, 'x'), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(huge.status).toBe(413);
    expect((await fetch(cluster.url('web1') + '/healthz')).status).toBe(200);
  });

  it('answers broken HTTP with 400 and keeps serving', async () => {
    const url = new URL(cluster.url('web2'));
    const reply = await new Promise<string>((resolve, reject) => {
      const sock = connect(Number(url.port), url.hostname, () => sock.write('GARBAGE \x00\x01 nonsense\r\nHost:\r\n\r\n'));
      let got = '';
      sock.on('data', (d) => (got += d.toString()));
      sock.on('close', () => resolve(got));
      sock.on('error', reject);
      sock.setTimeout(5000, () => sock.destroy());
    });
    expect(reply).toMatch(/^HTTP\/1\.1 400/);
    expect((await fetch(cluster.url('web2') + '/healthz')).status).toBe(200);
  });

  it('answers an internal failure with a 500 page that leaks nothing, and keeps serving', async () => {
    // A corrupt account cell makes the login handler throw while parsing it.
    await env.client.put('user:broken', 'account', '{this is not json');
    const u = web1();
    const res = await u.logIn('broken', PW);
    expect(res.status).toBe(500);
    expect(res.text).toMatch(/Something went wrong on our side \(reference [0-9a-f]{8}\)/);
    for (const leak of ['SyntaxError', 'JSON', '    at ', 'node_modules', '/web/', 'not json']) expect(res.text).not.toContain(leak);
    expect((await web1().logIn('alice', PW)).text).toContain('Hello, alice');
  });

  it('keeps users logged in across a frontend restart', async () => {
    const u = web1();
    await u.logIn('bob', PW);
    await cluster.restart('web1');
    expect((await u.get('/')).text).toContain('Hello, bob');
  });

  it('pages behind a login send a logged-out browser to the login form, and back after it', async () => {
    const u = web2();
    const res = await u.raw('GET', '/account');
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/?next=%2Faccount');
    await u.get('/?next=%2Faccount');
    const after = await u.postForm('/login', { username: 'bob', password: PW, next: '/account' });
    expect(after.text).toContain('Change password');
    // No open redirects: a foreign `next` is ignored.
    const v = web2();
    await v.get('/');
    const r = await v.postForm('/login', { username: 'bob', password: PW, next: '//evil.example/' }, false);
    expect(r.headers.get('location')).toBe('/');
  });
});

const keepAlive = new (await import('node:http')).Agent({ keepAlive: true, maxSockets: 1 });

// A browser-like HTTP client for integration tests: a cookie jar, manual redirects (so tests can see
// them) or followed ones, and forms posted with the CSRF token of the last page seen.
export interface WebResponse {
  status: number;
  headers: Headers;
  text: string;
  url: string;
}

export class WebClient {
  /** name -> value; cookies are shared by every port of a host, as in a browser. */
  readonly cookies = new Map<string, string>();
  csrf = '';

  constructor(public base: string) {}

  private cookieHeader(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  private remember(res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      if (/max-age=0/i.test(line) || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  /** One request, redirects not followed. */
  async raw(method: string, path: string, init: { body?: BodyInit; headers?: Record<string, string> } = {}): Promise<WebResponse> {
    const url = new URL(path, this.base).toString();
    const res = await fetch(url, {
      method,
      redirect: 'manual',
      headers: { cookie: this.cookieHeader(), ...(init.headers ?? {}) },
      ...(init.body !== undefined ? { body: init.body } : {}),
    });
    this.remember(res);
    const text = method === 'HEAD' ? '' : await res.text();
    const m = /<meta name="csrf-token" content="([^"]*)"/.exec(text);
    if (m) this.csrf = m[1]!;
    return { status: res.status, headers: res.headers, text, url };
  }

  /** Follows redirects (at most 10), as a browser would; a 303 turns into a GET. */
  async go(method: string, path: string, init: { body?: BodyInit; headers?: Record<string, string> } = {}): Promise<WebResponse> {
    let res = await this.raw(method, path, init);
    for (let i = 0; i < 10 && res.status >= 301 && res.status <= 308 && res.headers.get('location'); i++) {
      const next = new URL(res.headers.get('location')!, res.url);
      if (next.origin !== new URL(this.base).origin) this.base = next.origin;
      if (res.status === 307 || res.status === 308) res = await this.raw(method, next.toString(), init);
      else res = await this.raw('GET', next.toString());
    }
    return res;
  }

  get(path: string): Promise<WebResponse> {
    return this.go('GET', path);
  }

  /** Posts a url-encoded form with the current CSRF token (unless `_csrf` is given). */
  postForm(path: string, fields: Record<string, string>, follow = true): Promise<WebResponse> {
    const body = new URLSearchParams({ _csrf: this.csrf, ...fields }).toString();
    const init = { body, headers: { 'content-type': 'application/x-www-form-urlencoded' } };
    return follow ? this.go('POST', path, init) : this.raw('POST', path, init);
  }

  /** Signs up (the client must have loaded a page first for its CSRF token) and ends logged in. */
  async signUp(name: string, password: string): Promise<WebResponse> {
    if (!this.csrf) await this.get('/');
    return this.postForm('/signup', { username: name, password, password_again: password });
  }

  async logIn(name: string, password: string): Promise<WebResponse> {
    if (!this.csrf) await this.get('/');
    return this.postForm('/login', { username: name, password });
  }
}

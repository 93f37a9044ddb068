// Unit tests of the frontend's pure parts: our JSX runtime (web/jsx: escaping, attributes, void elements,
// raw markup, components) and reading the session id from a Cookie header.
import { raw } from 'hono/html';
import type { Child } from 'hono/jsx';
import { describe, expect, it } from 'vitest';
import { renderPage } from '../web/http.js';
import { sessionIdFromCookie } from '../web/sessions.js';

function Card(props: { title: string; children?: Child }) {
  return (
    <section class="card">
      <h2>{props.title}</h2>
      {props.children}
    </section>
  );
}

describe('JSX runtime', () => {
  it('escapes text and attribute values, and leaves raw markup alone', () => {
    const hostile = `"><script>alert('x')</script>&`;
    const html = String(
      <p title={hostile} data-n={3}>
        {hostile}
        {raw('<b>bold</b>')}
      </p>,
    );
    expect(html).toBe(
      `<p title="&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;" data-n="3">&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;<b>bold</b></p>`,
    );
  });

  it('writes boolean attributes, skips false and null ones, closes void elements', () => {
    expect(String(<input type="checkbox" checked disabled={false} value={undefined} required={true} />)).toBe('<input type="checkbox" checked="" required=""/>');
    expect(String(<br />)).toBe('<br/>');
  });

  it('renders components, fragments, arrays, numbers, and skips null and booleans', () => {
    const items = ['a', 'b<'];
    const html = String(
      <Card title="T & C">
        <>
          {items.map((i) => (
            <li>{i}</li>
          ))}
          {0}
          {null}
          {false}
          {true}
        </>
      </Card>,
    );
    expect(html).toBe('<section class="card"><h2>T &amp; C</h2><li>a</li><li>b&lt;</li>0</section>');
  });

  it('takes dangerouslySetInnerHTML as it is, and a page is one plain string', () => {
    const page = renderPage(
      <html>
        <head>
          <title>x</title>
          <script dangerouslySetInnerHTML={{ __html: 'if (a < b) go()' }} />
        </head>
      </html>,
    );
    expect(typeof page).toBe('string');
    expect(page).toBe('<!doctype html><html><head><title>x</title><script>if (a < b) go()</script></head></html>');
  });

  it('refuses async components and invalid attribute names with a clear error', () => {
    const Later = async () => <p>late</p>;
    expect(() => String(<div>{(Later as unknown as () => Child)()}</div>)).toThrow(/async components/);
    const bad = { 'x onload=alert(1)': 'y' } as Record<string, string>;
    expect(() => String(<div {...bad} />)).toThrow(/invalid attribute name/);
  });
});

describe('session cookie', () => {
  const sid = 'AbCdEfGhIjKlMnOpQrStUv';
  it('finds pc_sid first, last, alone or among others, and nothing in look-alikes', () => {
    expect(sessionIdFromCookie(`pc_sid=${sid}`)).toBe(sid);
    expect(sessionIdFromCookie(`a=1; pc_sid=${sid}; b=2`)).toBe(sid);
    expect(sessionIdFromCookie(`a=1;pc_sid=${sid}`)).toBe(sid);
    expect(sessionIdFromCookie(`a=1 ;  pc_sid = ${sid} ;b=2`)).toBe(sid);
    expect(sessionIdFromCookie(`pc_sid=${sid}; pc_sid=other`)).toBe(sid);
    expect(sessionIdFromCookie(`xpc_sid=${sid}`)).toBeUndefined();
    expect(sessionIdFromCookie('a=1; b=2')).toBeUndefined();
    expect(sessionIdFromCookie(undefined)).toBeUndefined();
    expect(sessionIdFromCookie('pc_sid=')).toBe('');
  });
});

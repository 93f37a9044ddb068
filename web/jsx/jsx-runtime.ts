// The JSX runtime of our pages (tsconfig `jsxImportSource: "#jsx"`, package.json `imports`): every
// element becomes its escaped HTML at once, as one of Hono's raw strings (`HtmlEscapedString`), so a
// page is a plain string when its last element closes.
//
// Why not hono/jsx's runtime: it builds a tree and renders it later inside an AsyncLocalStorage
// (`<head>` and `<svg>` are context providers there), which switches on async hooks for every promise
// of the process; with its React-style features it was ~22 % of a frontend's CPU per page, this is ~3 %.
// The types (JSX.IntrinsicElements, Child) stay Hono's, and Hono's `raw()` strings pass through as they are.
//
// What it does not do: async components (a component must return markup, not a promise: refused
// with an error), context, hooks, and client-side rendering.
import { raw } from 'hono/html';
import type { JSX as HonoJSX } from 'hono/jsx/jsx-runtime';
import type { HtmlEscapedString } from 'hono/utils/html';

export type { HonoJSX as JSX };

const VOID_ELEMENTS = new Set(['area', 'base', 'br', 'col', 'embed', 'hr', 'img', 'input', 'link', 'meta', 'source', 'track', 'wbr']);
const NAME = /^[a-zA-Z][a-zA-Z0-9:-]*$/;
const ATTRIBUTE_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:.-]*$/;
const ESCAPED = /[&<>"']/;
const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(s: string): string {
  return ESCAPED.test(s) ? s.replace(/[&<>"']/g, (ch) => ESCAPES[ch]!) : s;
}

function isEscaped(v: unknown): v is HtmlEscapedString {
  return typeof v === 'object' && v !== null && (v as { isEscaped?: unknown }).isEscaped === true;
}

/** Appends one child (text is escaped; raw strings, numbers and nested arrays as they are). */
function childHtml(child: unknown): string {
  if (typeof child === 'string') return escapeHtml(child);
  if (child === null || child === undefined || typeof child === 'boolean') return '';
  if (typeof child === 'number') return String(child);
  if (isEscaped(child)) {
    if (child.callbacks?.length) throw new Error('JSX: markup with render callbacks is not supported');
    return String(child);
  }
  if (Array.isArray(child)) {
    let out = '';
    for (const c of child) out += childHtml(c);
    return out;
  }
  if (child instanceof Promise) throw new Error('JSX: async components are not supported (render after awaiting the data)');
  return escapeHtml(String(child));
}

function attributesHtml(tag: string, props: Record<string, unknown>): { attrs: string; inner: string | null } {
  let attrs = '';
  let inner: string | null = null;
  for (const key in props) {
    const v = props[key];
    if (key === 'children' || key === 'key' || v === undefined || v === null || v === false) continue;
    if (key === 'dangerouslySetInnerHTML') {
      inner = String((v as { __html?: unknown }).__html ?? '');
      continue;
    }
    const name = key === 'className' ? 'class' : key === 'htmlFor' ? 'for' : key;
    if (!ATTRIBUTE_NAME.test(name)) throw new Error(`JSX: invalid attribute name ${JSON.stringify(name)} on <${tag}>`);
    if (v === true) attrs += ` ${name}=""`;
    else if (typeof v === 'object' && !isEscaped(v)) throw new Error(`JSX: attribute ${name} of <${tag}> must be a string or number`);
    else attrs += ` ${name}="${isEscaped(v) ? String(v) : escapeHtml(String(v))}"`;
  }
  return { attrs, inner };
}

type Component = (props: Record<string, unknown>) => unknown;

export function jsx(tag: string | Component, props: Record<string, unknown>, _key?: unknown): HtmlEscapedString {
  if (typeof tag === 'function') return raw(childHtml(tag(props)));
  if (!NAME.test(tag)) throw new Error(`JSX: invalid tag name ${JSON.stringify(tag)}`);
  const { attrs, inner } = attributesHtml(tag, props);
  if (VOID_ELEMENTS.has(tag)) return raw(`<${tag}${attrs}/>`);
  const body = inner ?? childHtml(props['children']);
  return raw(`<${tag}${attrs}>${body}</${tag}>`);
}

export const jsxs = jsx;
export const jsxDEV = jsx;

export function Fragment(props: { children?: unknown }): HtmlEscapedString {
  return raw(childHtml(props.children));
}

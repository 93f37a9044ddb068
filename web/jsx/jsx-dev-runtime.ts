// The development entry of our JSX runtime: vitest (esbuild in dev mode) compiles the views against it.
export { Fragment, jsx, jsxDEV, jsxs, type JSX } from './jsx-runtime.js';

// The development entry of our JSX runtime (some transforms import it instead of jsx-runtime).
export { Fragment, jsx, jsxDEV, jsxs, type JSX } from './jsx-runtime.js';

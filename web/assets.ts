// Static assets, kept as strings so the frontends need no build step and no file system paths.
// Served under /static/ with a long cache lifetime; the version in the URL changes when they do.
import { createHash } from 'node:crypto';

export const CSS = `
:root { --fg:#1d2330; --muted:#667085; --line:#e4e7ec; --bg:#f6f7f9; --card:#fff; --accent:#2563eb; --accent-fg:#fff;
  --danger:#c0262d; --ok:#157f3b; --warn:#b45309; --radius:10px; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg); font-size:15px; line-height:1.45; }
a { color:var(--accent); text-decoration:none; } a:hover { text-decoration:underline; }
header.top { display:flex; align-items:center; gap:16px; padding:10px 24px; min-height:60px; background:var(--card); border-bottom:1px solid var(--line); }
header.top .brand { font-weight:700; font-size:18px; color:var(--fg); letter-spacing:-.01em; }
header.top .brand span { color:var(--accent); }
header.top nav { display:flex; gap:14px; flex:1; }
header.top nav a { color:var(--muted); font-weight:500; } header.top nav a.on, header.top nav a:hover { color:var(--fg); text-decoration:none; }
header.top .who { color:var(--muted); display:flex; align-items:center; gap:10px; }
main { max-width:1040px; margin:28px auto; padding:0 20px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:var(--radius); padding:22px 24px; margin-bottom:18px; }
.narrow { max-width:420px; margin-left:auto; margin-right:auto; }
h1 { font-size:22px; margin:0 0 16px; letter-spacing:-.01em; } h2 { font-size:17px; margin:0 0 12px; }
label { display:block; font-weight:500; margin:12px 0 4px; }
input[type=text], input[type=password], input[type=email], input:not([type]), textarea, select {
  width:100%; padding:8px 10px; border:1px solid #cfd4dc; border-radius:8px; font:inherit; background:#fff; }
input:focus, textarea:focus, select:focus { outline:2px solid #bfd3fe; border-color:var(--accent); }
textarea { min-height:220px; resize:vertical; }
button, .button { display:inline-block; padding:8px 14px; border-radius:8px; border:1px solid var(--accent); background:var(--accent);
  color:var(--accent-fg); font:inherit; font-weight:500; cursor:pointer; }
button:hover, .button:hover { filter:brightness(1.07); text-decoration:none; }
button.secondary, .button.secondary { background:#fff; color:var(--fg); border-color:#cfd4dc; }
button.danger, .button.danger { background:var(--danger); border-color:var(--danger); color:#fff; }
button.link { background:none; border:none; color:var(--accent); padding:0; }
form.inline { display:inline; margin:0; }
.actions { display:flex; gap:8px; align-items:center; margin-top:16px; flex-wrap:wrap; }
.hint { color:var(--muted); font-size:13px; margin-top:4px; }
.flash { padding:10px 14px; border-radius:8px; margin-bottom:14px; }
.flash.error { background:#fdecec; color:var(--danger); border:1px solid #f6c9cb; }
.flash.ok { background:#e9f7ef; color:var(--ok); border:1px solid #bfe6cd; }
table.list { width:100%; border-collapse:collapse; }
table.list th { text-align:left; font-weight:600; color:var(--muted); font-size:13px; border-bottom:1px solid var(--line); padding:8px; }
table.list td { border-bottom:1px solid var(--line); padding:8px; vertical-align:top; }
table.list tr:hover td { background:#fafbfc; }
.menu { display:grid; grid-template-columns:repeat(auto-fit,minmax(200px,1fr)); gap:14px; }
.menu a.tile { display:block; background:var(--card); border:1px solid var(--line); border-radius:var(--radius); padding:20px; color:var(--fg); }
.menu a.tile:hover { border-color:var(--accent); text-decoration:none; box-shadow:0 2px 10px rgba(37,99,235,.08); }
.menu a.tile strong { display:block; font-size:17px; margin-bottom:4px; } .menu a.tile span { color:var(--muted); font-size:14px; }
.muted { color:var(--muted); } .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size:13px; }
.badge { display:inline-block; padding:1px 8px; border-radius:99px; font-size:12px; font-weight:600; background:#eef2ff; color:#3730a3; }
.badge.alive { background:#e9f7ef; color:var(--ok); } .badge.dead, .badge.stopped { background:#fdecec; color:var(--danger); }
.badge.recovering { background:#fff4e5; color:var(--warn); }
.error-page { text-align:center; padding:40px 20px; } .error-page .code { font-size:48px; font-weight:700; color:#cfd4dc; }
footer { text-align:center; color:var(--muted); font-size:12px; margin:30px 0; }
/* mail */
.mail { display:grid; grid-template-columns:170px 1fr; gap:18px; align-items:start; }
.mail-side .compose { display:block; text-align:center; margin-bottom:12px; }
.mail-side nav a { display:block; padding:7px 12px; border-radius:8px; color:var(--fg); }
.mail-side nav a.on { background:#eef2ff; color:#3730a3; font-weight:600; }
.mail-head { display:flex; justify-content:space-between; align-items:baseline; }
table.messages td.from { width:26%; white-space:nowrap; overflow:hidden; text-overflow:ellipsis; max-width:220px; }
table.messages td.subject { overflow:hidden; white-space:nowrap; text-overflow:ellipsis; max-width:520px; }
table.messages td.when { width:90px; text-align:right; color:var(--muted); white-space:nowrap; }
table.messages a { color:var(--fg); } table.messages .preview { color:var(--muted); }
table.messages .clip { margin-left:6px; font-weight:500; }
table.messages tr.unread td.from, table.messages tr.unread .subj { font-weight:700; }
.message h1.subject { overflow-wrap:anywhere; }
dl.headers { display:grid; grid-template-columns:60px 1fr; gap:2px 10px; margin:0; font-size:14px; }
dl.headers dt { color:var(--muted); } dl.headers dd { margin:0; overflow-wrap:anywhere; }
.message .source { margin-left:auto; font-size:13px; }
pre.mail-text { white-space:pre-wrap; overflow-wrap:anywhere; font:inherit; margin:18px 0 0; border-top:1px solid var(--line); padding-top:14px; }
iframe.mail-html { width:100%; height:60vh; min-height:240px; border:1px solid var(--line); border-radius:8px; margin-top:18px; resize:vertical; background:#fff; }
.attachments { border-top:1px solid var(--line); margin-top:18px; padding-top:12px; } .attachments ul { margin:0; padding-left:18px; }
/* admin console */
.admin-head { display:flex; align-items:center; gap:14px; flex-wrap:wrap; margin-bottom:16px; } .admin-head h1 { margin:0; }
.admin-head .button { margin-left:auto; }
button.small { padding:3px 10px; font-size:13px; }
.badge.unknown { background:#f2f4f7; color:var(--muted); }
.stale { color:var(--warn); font-weight:600; }
.problems { background:#fff4e5; color:var(--warn); border:1px solid #f5d9b5; border-radius:8px; padding:8px 14px 8px 30px; margin:0 0 14px; }
.load-grid { display:grid; grid-template-columns:repeat(auto-fill,minmax(230px,1fr)); gap:12px; }
.load-card { border:1px solid var(--line); border-radius:8px; padding:10px 12px; }
.load-head { display:flex; justify-content:space-between; align-items:center; margin-bottom:6px; }
.load-figures { display:flex; gap:10px; flex-wrap:wrap; font-size:13px; color:var(--muted); } .load-figures strong { color:var(--fg); }
svg.spark { display:block; width:100%; height:44px; margin-top:6px; background:#fafbfc; border-radius:4px; }
svg.spark polyline { fill:none; stroke-width:1.5; vector-effect:non-scaling-stroke; } svg.spark .axis { stroke:var(--line); }
svg.spark.ops polyline, svg.spark.ops circle { stroke:var(--accent); fill:var(--accent); } svg.spark.ops polyline { fill:none; }
svg.spark.latency polyline, svg.spark.latency circle { stroke:var(--warn); fill:var(--warn); } svg.spark.latency polyline { fill:none; }
.replica { display:inline-block; padding:1px 8px; margin:2px 6px 2px 0; border-radius:6px; font-size:12px; border:1px solid #bfe6cd; background:#e9f7ef; color:var(--ok); }
.replica.primary { font-weight:700; }
.replica.lagging { background:#fffbe6; border-color:#f3e3a3; color:#8a6d00; }
.replica.catching_up { background:#fff4e5; border-color:#f5c58a; color:var(--warn); font-weight:600; }
.replica.down { background:#fdecec; border-color:#f6c9cb; color:var(--danger); text-decoration:line-through; }
.replica .behind { font-weight:700; }
tr.unavailable td { background:#fdecec; } .bad { color:var(--danger); font-weight:600; }
.data-pick { display:flex; gap:14px; align-items:flex-end; flex-wrap:wrap; } .data-pick label { margin:0; min-width:180px; }
.raw-cells td { word-break:break-all; } .raw-cells td:first-child { white-space:nowrap; word-break:normal; width:1%; }
.raw-cells td:nth-child(2), .raw-cells td:nth-child(3) { min-width:9em; } .val-text { white-space:pre-wrap; } .cut { color:var(--muted); font-size:12px; }
.button.disabled { opacity:.45; pointer-events:none; }
/* drive */
.drive-head { display:flex; align-items:center; justify-content:space-between; gap:16px; flex-wrap:wrap; margin-bottom:14px; }
.crumbs { font-size:18px; display:flex; flex-wrap:wrap; gap:6px; align-items:baseline; overflow-wrap:anywhere; }
.crumbs .sep { color:#cfd4dc; } .crumbs strong { font-weight:600; }
.usage { display:flex; align-items:center; gap:8px; color:var(--muted); font-size:13px; } .usage progress { width:140px; }
.drive-tools { display:flex; flex-wrap:wrap; gap:12px 28px; align-items:center; padding:16px 20px; }
.drive-tools form { display:flex; gap:8px; align-items:center; margin:0; }
.drive-tools form.mkdir input[type=text] { width:220px; }
ul.uploads { list-style:none; margin:0; padding:0; flex-basis:100%; } ul.uploads:empty { display:none; }
ul.uploads li { display:grid; grid-template-columns:minmax(0,1fr) 200px 150px; gap:10px; align-items:center; padding:4px 0; font-size:14px; }
ul.uploads li .name { overflow:hidden; text-overflow:ellipsis; white-space:nowrap; } ul.uploads progress { width:100%; }
ul.uploads li.done .status { color:var(--ok); } ul.uploads li.failed .status { color:var(--danger); grid-column:2 / 4; }
.drive-list { padding:8px 12px; } .drive-list .empty { margin:14px 8px; }
.drive-list td.name { overflow-wrap:anywhere; max-width:440px; } .drive-list td.size, .drive-list td.type, .drive-list td.modified { color:var(--muted); white-space:nowrap; }
.drive-list td.size { text-align:right; } .drive-list td.row-actions { white-space:nowrap; text-align:right; }
.drive-list td.row-actions a, .drive-list td.row-actions form { margin-left:10px; font-size:14px; }
button.link.danger { color:var(--danger); font-size:14px; }
.icon { display:inline-block; width:16px; height:13px; margin-right:8px; vertical-align:-1px; border-radius:2px; }
.icon.folder { background:#f5b942; box-shadow:inset 0 3px 0 #e0a52f; } .icon.file { background:#dde3ec; width:12px; height:15px; margin:0 10px 0 2px; }
select[size] { padding:4px; }
`;

export const CSS_VERSION = createHash('sha256').update(CSS).digest('hex').slice(0, 10);

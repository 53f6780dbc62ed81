/*! byoc web chat widget v1 · Apache-2.0 · protocol: docs/webchat-protocol.md */
(function () {
  'use strict';

  if (window.ByocWidget) return;
  const script = document.currentScript ||
    document.querySelector('script[src*="/widget/v1/widget.js"][data-channel]');
  if (!script || !script.dataset.channel) {
    if (window.console) console.warn('byoc widget: data-channel is missing');
    return;
  }

  // --- Embedding attributes ---------------------------------------------------------------
  const ds = script.dataset;
  const CHANNEL = ds.channel;
  const ORIGIN = new URL(script.src, location.href).origin;
  const WS_URL = ORIGIN.replace(/^http/, 'ws') + '/webchat/v1/ws';
  const USER_ID = ds.userId || null;
  const SIGNATURE = ds.userSignature || null;
  const USER_NAME = ds.userName || null;
  const LEFT = ds.position === 'left';
  const KEY = 'byoc:' + CHANNEL + ':';

  // --- Storage (private browsing may refuse it: fall back to memory) ---------------------
  const memory = {};
  function rawGet(key) {
    try { return localStorage.getItem(key); } catch (e) { return memory[key] || null; }
  }
  function rawSet(key, value) {
    try { localStorage.setItem(key, value); } catch (e) { memory[key] = value; }
  }
  function randomHex(bytes) {
    const a = new Uint8Array(bytes);
    crypto.getRandomValues(a);
    return Array.from(a, (b) => b.toString(16).padStart(2, '0')).join('');
  }
  let VISITOR = null;
  if (!USER_ID) {
    VISITOR = rawGet(KEY + 'visitor');
    if (!/^[0-9a-f]{32}$/.test(VISITOR || '')) {
      VISITOR = randomHex(16);
      rawSet(KEY + 'visitor', VISITOR);
    }
  }
  // One cache per identity, so a verified user never sees another user's transcript.
  const STATE_KEY = KEY + (USER_ID ? 'user:' + USER_ID : 'anon') + ':state';
  let saved = null;
  try { saved = JSON.parse(rawGet(STATE_KEY) || 'null'); } catch (e) { saved = null; }
  const S = Object.assign(
    { threadId: null, ended: false, messages: [], pending: [], receipts: {}, prechat: null, config: null },
    saved && typeof saved === 'object' ? saved : {}
  );

  const DEFAULTS = {
    title: 'Chat with us', greeting: '', color: '#0b7a75', prechat: [], maxTextLength: 2000,
    maxAttachmentBytes: 5242880, attachmentTypes: null, heartbeatSeconds: 20,
  };
  let cfg = Object.assign({}, DEFAULTS, S.config || {});

  // --- Small helpers ----------------------------------------------------------------------
  function h(tag, attrs, kids) {
    const el = document.createElement(tag);
    for (const k in attrs || {}) {
      const v = attrs[k];
      if (v == null || v === false) continue;
      if (k === 'text') el.textContent = v;
      else if (k === 'class') el.className = v;
      else if (k.slice(0, 2) === 'on') el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const kid of kids || []) if (kid != null) el.append(kid);
    return el;
  }
  // Icons are constant markup written here, never data.
  const P = 'viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true" focusable="false"';
  const ICONS = {
    chat: '<svg ' + P + '><path d="M21 12a8 8 0 0 1-11.6 7.1L4 20.5l1.4-4.8A8 8 0 1 1 21 12z"/><path d="M8.5 12h.01M12 12h.01M15.5 12h.01" stroke-width="2.6"/></svg>',
    close: '<svg ' + P + '><path d="M6 6l12 12M18 6L6 18"/></svg>',
    down: '<svg ' + P + '><path d="M6 9l6 6 6-6"/></svg>',
    send: '<svg ' + P + '><path d="M4 12l16-8-6 16-2.5-6.5L4 12z"/><path d="M11.5 13.5L20 4"/></svg>',
    clip: '<svg ' + P + '><path d="M21 11.5l-8.6 8.6a5.5 5.5 0 0 1-7.8-7.8l8.6-8.6a3.7 3.7 0 0 1 5.2 5.2l-8.6 8.6a1.8 1.8 0 0 1-2.6-2.6l7.9-7.9"/></svg>',
    tick: '<svg viewBox="0 0 18 12" aria-hidden="true" focusable="false"><path d="M1.5 6.5l3.5 3.5 7-8" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round"/></svg>',
    ticks: '<svg viewBox="0 0 18 12" aria-hidden="true" focusable="false"><path d="M1 6.5l3.5 3.5 7-8M8.5 9.5l.5.5 7-8" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round"/></svg>',
    clock: '<svg viewBox="0 0 12 12" aria-hidden="true" focusable="false"><circle cx="6" cy="6" r="4.6" fill="none" stroke="currentColor" stroke-width="1.3"/><path d="M6 3.5V6l1.7 1.2" fill="none" stroke="currentColor" stroke-width="1.3" stroke-linecap="round"/></svg>',
    file: '<svg ' + P + '><path d="M14 3H7a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h10a2 2 0 0 0 2-2V8z"/><path d="M14 3v5h5"/></svg>',
  };
  function icon(name, cls) {
    const span = h('span', { class: 'ic ' + (cls || '') });
    span.innerHTML = ICONS[name];
    return span;
  }
  function safeUrl(value) {
    try {
      const url = new URL(String(value), ORIGIN);
      return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : null;
    } catch (e) { return null; }
  }
  function link(href, label) {
    return h('a', { href, target: '_blank', rel: 'noopener noreferrer nofollow', text: label });
  }
  // Text with its http(s) URLs as links; everything else stays a text node.
  function richText(el, text) {
    const re = /\bhttps?:\/\/[^\s<>"'`]+/gi;
    let last = 0;
    let match;
    while ((match = re.exec(text))) {
      const url = match[0].replace(/[.,;:!?)\]}'"]+$/, '');
      const href = safeUrl(url);
      if (!href) continue;
      el.append(text.slice(last, match.index), link(href, url));
      last = match.index + url.length;
      re.lastIndex = last;
    }
    el.append(text.slice(last));
  }
  const chars = (text) => Array.from(text).length;
  const isImage = (name, mime) =>
    /^image\/(png|jpe?g|gif|webp)$/.test(mime || '') || /\.(png|jpe?g|gif|webp)$/i.test(name || '');
  function fmtBytes(n) {
    return n >= 1048576 ? Math.round(n / 104857.6) / 10 + ' MB' : Math.ceil(n / 1024) + ' KB';
  }
  function fmtTime(ms) {
    try { return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }); } catch (e) { return ''; }
  }
  function authorName(m) {
    const a = m.author || {};
    return a.firstName || a.nickname || (m.sender === 'bot' ? 'Assistant' : m.sender === 'agent' ? 'Agent' : '');
  }
  function contrastText(hex) {
    const m = /^#?([0-9a-f]{6})$/i.exec(hex || '');
    if (!m) return '#fff';
    const n = parseInt(m[1], 16);
    const lin = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); };
    const L = 0.2126 * lin(n >> 16) + 0.7152 * lin((n >> 8) & 255) + 0.0722 * lin(n & 255);
    return L > 0.45 ? '#111827' : '#fff';
  }

  // --- Styles (inside a shadow root: the host page's CSS cannot reach in, ours cannot leak) ---
  const CSS = `
:host{all:initial}
*{box-sizing:border-box}
[hidden]{display:none!important}
.root{--a:#0b7a75;--on:#fff;--r:18px;font:14.5px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Liberation Sans",sans-serif;color:#1f2430;-webkit-font-smoothing:antialiased}
button,textarea,input{font:inherit;color:inherit}
button{cursor:pointer}
:focus{outline:none}
:focus-visible{outline:2px solid var(--a);outline-offset:2px}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
.ic{display:inline-flex;width:22px;height:22px}.ic svg{width:100%;height:100%}
.launcher{position:fixed;bottom:20px;right:20px;z-index:2147483000;width:60px;height:60px;border-radius:50%;border:0;background:var(--a);color:var(--on);display:grid;place-items:center;box-shadow:0 6px 20px rgba(17,24,39,.24),0 2px 6px rgba(17,24,39,.12);transition:transform .18s ease,box-shadow .18s ease}
.left .launcher{right:auto;left:20px}
.launcher:hover{transform:translateY(-2px) scale(1.03);box-shadow:0 10px 26px rgba(17,24,39,.28)}
.launcher:focus-visible{outline:3px solid #111827;outline-offset:3px}
.launcher .ic{width:28px;height:28px;grid-area:1/1;transition:transform .2s ease,opacity .2s ease}
.launcher .ic-x{opacity:0;transform:rotate(-90deg)}
.open .launcher .ic-chat{opacity:0;transform:rotate(90deg)}.open .launcher .ic-x{opacity:1;transform:none}
.badge{position:absolute;top:-3px;right:-3px;min-width:22px;height:22px;padding:0 6px;border-radius:11px;background:#e11d48;color:#fff;font-size:12px;font-weight:700;line-height:22px;text-align:center;border:2px solid #fff}
.panel{position:fixed;bottom:92px;right:20px;z-index:2147483000;width:384px;height:min(640px,calc(100vh - 116px));display:flex;flex-direction:column;background:#fff;border-radius:16px;overflow:hidden;box-shadow:0 16px 48px rgba(17,24,39,.22),0 2px 8px rgba(17,24,39,.08);animation:pop .2s ease-out}
.left .panel{right:auto;left:20px}
@keyframes pop{from{opacity:0;transform:translateY(12px) scale(.98)}}
@media (prefers-reduced-motion:reduce){.panel,.dots i{animation:none!important}.launcher,.launcher .ic{transition:none}}
.hd{display:flex;align-items:center;gap:12px;padding:16px 14px 16px 18px;background:var(--a);color:var(--on)}
.hd-logo{flex:none;width:40px;height:40px;border-radius:50%;display:grid;place-items:center;background:rgba(255,255,255,.18)}
.hd-text{flex:1;min-width:0}
.hd h2{margin:0;font-size:16.5px;font-weight:650;line-height:1.25;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.sub{font-size:12.5px;opacity:.88;display:flex;align-items:center;gap:6px}
.sub::before{content:"";width:7px;height:7px;border-radius:50%;background:#4ade80;box-shadow:0 0 0 2px rgba(255,255,255,.35)}
.sub.off::before{background:#fbbf24}.sub.dead::before{background:#f87171}
.hd button{flex:none;width:36px;height:36px;border:0;border-radius:50%;background:transparent;color:inherit;display:grid;place-items:center}
.hd button:hover{background:rgba(255,255,255,.16)}
.hd button:focus-visible{outline-color:currentColor;outline-offset:-2px}
.idle{display:flex;align-items:center;gap:10px;padding:10px 14px;background:#fff7e6;border-bottom:1px solid #fde7b0;color:#7a4b00;font-size:13px}
.idle-text{flex:1}
.idle-count{font-variant-numeric:tabular-nums;font-weight:700}
.btn{border:0;border-radius:999px;padding:8px 14px;background:var(--a);color:var(--on);font-weight:600;font-size:13.5px;white-space:nowrap}
.btn:hover{filter:brightness(1.06)}
.btn.ghost{background:transparent;color:var(--a);box-shadow:inset 0 0 0 1.5px currentColor}
.log{flex:1;overflow-y:auto;overscroll-behavior:contain;padding:18px 16px 8px;background:#f6f7f9;display:flex;flex-direction:column}
.greet{align-self:flex-start;max-width:85%;margin:0 0 14px;padding:12px 14px;border-radius:14px;background:#fff;border:1px solid #e7e9ee;color:#374151;white-space:pre-wrap;overflow-wrap:anywhere}
.greet strong{display:block;margin-bottom:2px;color:#111827}
.msgs{display:flex;flex-direction:column}
.msg{display:flex;flex-direction:column;align-items:flex-start;margin-top:12px;max-width:100%}
.msg.cont{margin-top:3px}
.msg.me{align-items:flex-end}
.who{display:flex;align-items:center;gap:8px;margin:0 0 4px;font-size:12.5px;font-weight:600;color:#4b5563}
.cont .who{display:none}
.av{flex:none;width:26px;height:26px;border-radius:50%;background:color-mix(in srgb,var(--a) 16%,#fff);color:var(--a);display:grid;place-items:center;font-size:12px;font-weight:700;overflow:hidden;object-fit:cover}
.bubble{max-width:82%;padding:9px 13px;border-radius:var(--r);background:#fff;border:1px solid #e7e9ee;white-space:pre-wrap;overflow-wrap:anywhere;word-break:break-word}
.them .bubble{border-top-left-radius:6px;margin-left:34px}
.them.cont .bubble{border-top-left-radius:var(--r)}
.me .bubble{background:var(--a);color:var(--on);border-color:transparent;border-bottom-right-radius:6px}
.me .bubble a{color:inherit}
.bubble a{color:var(--a);text-decoration:underline;text-underline-offset:2px}
.att{display:flex;flex-direction:column;gap:6px;margin-top:6px}
.bubble>.att:first-child{margin-top:0}
.att img{display:block;max-width:100%;max-height:220px;border-radius:10px;background:#eef0f3}
.file{display:inline-flex;align-items:center;gap:6px;padding:7px 10px;border-radius:10px;background:rgba(0,0,0,.05);text-decoration:none!important;font-weight:500}
.me .file{background:rgba(255,255,255,.18)}
.file .ic{width:16px;height:16px;flex:none}
.meta{display:flex;align-items:center;gap:4px;margin-top:3px;padding:0 4px;font-size:11.5px;color:#6b7280}
.them .meta{margin-left:34px}
.tick{display:inline-flex;width:16px;height:11px;color:#9ca3af}
.tick svg{width:100%;height:100%}
.tick.clock{width:11px}
.tick.seen{color:var(--a)}
.failed{color:#b91c1c;font-weight:600}
.retry{border:0;background:none;padding:0 2px;color:#b91c1c;text-decoration:underline;font-size:inherit}
.sys{align-self:center;margin:12px 0 2px;padding:4px 12px;border-radius:999px;background:#eceef2;color:#4b5563;font-size:12.5px;text-align:center;white-space:pre-wrap;max-width:90%}
.typing{display:flex;align-items:center;gap:8px;margin-top:12px;color:#6b7280;font-size:12.5px}
.dots{display:inline-flex;gap:4px;padding:12px 14px;border-radius:var(--r);border-top-left-radius:6px;background:#fff;border:1px solid #e7e9ee}
.dots i{width:7px;height:7px;border-radius:50%;background:#9ca3af;animation:blink 1.2s infinite ease-in-out}
.dots i:nth-child(2){animation-delay:.15s}.dots i:nth-child(3){animation-delay:.3s}
@keyframes blink{0%,60%,100%{opacity:.35;transform:none}30%{opacity:1;transform:translateY(-3px)}}
.ended{display:flex;flex-direction:column;align-items:center;gap:10px;padding:14px 16px;border-top:1px solid #eceef2;background:#fff;text-align:center;color:#4b5563;font-size:13.5px}
.ended p{margin:0}
.err{margin:0 14px;color:#b91c1c;font-size:13px}
.err:not(:empty){margin:8px 14px 0;padding:8px 12px;border-radius:10px;background:#fef2f2;border:1px solid #fecaca}
.composer{display:flex;align-items:flex-end;gap:6px;padding:10px 10px 12px;background:#fff;border-top:1px solid #eceef2}
.composer textarea{flex:1;min-width:0;resize:none;border:1px solid transparent;border-radius:20px;background:#f2f4f7;padding:9px 14px;max-height:132px;line-height:1.45;font-size:15px;color:#111827}
.composer textarea:focus-visible{outline:none}
.composer textarea:focus{background:#fff;border-color:var(--a);box-shadow:0 0 0 3px color-mix(in srgb,var(--a) 18%,transparent)}
.composer textarea::placeholder{color:#8a919e}
.composer textarea:disabled{opacity:.6}
.icon-btn{flex:none;width:40px;height:40px;border:0;border-radius:50%;display:grid;place-items:center;background:transparent;color:#6b7280}
.icon-btn:hover:not(:disabled){background:#f2f4f7;color:#111827}
.icon-btn.send{background:var(--a);color:var(--on)}
.icon-btn.send:hover:not(:disabled){background:var(--a);filter:brightness(1.08);color:var(--on)}
.icon-btn:disabled{opacity:.45;cursor:default}
.pre{flex:1;overflow-y:auto;padding:18px 18px 16px;display:flex;flex-direction:column;gap:12px;background:#fff;border-top:1px solid #eceef2}
.pre p{margin:0;color:#4b5563}
.pre label{display:flex;flex-direction:column;gap:5px;font-size:13px;font-weight:600;color:#374151}
.pre input{border:1px solid #d5d9e0;border-radius:10px;padding:10px 12px;font-weight:400;font-size:15px}
.pre input:focus-visible{outline:none}
.pre input:focus{border-color:var(--a);box-shadow:0 0 0 3px color-mix(in srgb,var(--a) 18%,transparent)}
.pre .btn{align-self:stretch;padding:11px}
.foot{padding:0 0 8px;background:#fff;text-align:center;font-size:11px;color:#9ca3af}
@media (max-width:480px){
.panel{inset:0;width:100%;height:100%;border-radius:0;animation:none}
.open .launcher{display:none}
.composer textarea{font-size:16px}
}`;

  // --- DOM --------------------------------------------------------------------------------
  const uid = 'byoc-' + randomHex(3);
  const root = h('div', { class: 'root' + (LEFT ? ' left' : '') });
  const badge = h('span', { class: 'badge', 'data-testid': 'byoc-badge', hidden: true, 'aria-hidden': 'true' });
  const launcher = h('button', {
    type: 'button', class: 'launcher', 'data-testid': 'byoc-launcher', 'aria-label': 'Open chat',
    'aria-expanded': 'false', 'aria-controls': uid, onclick: () => (isOpen ? close() : open()),
  }, [icon('chat', 'ic-chat'), icon('close', 'ic-x'), badge]);
  const titleEl = h('h2', { id: uid + '-t' });
  const sub = h('div', { class: 'sub off', 'data-testid': 'byoc-status', text: 'Connecting…' });
  const closeBtn = h('button', { type: 'button', 'aria-label': 'Minimise chat', 'data-testid': 'byoc-close', onclick: () => close() }, [icon('down')]);
  const idleText = h('span', { class: 'idle-text' });
  const idleCount = h('span', { class: 'idle-count', 'data-testid': 'byoc-idle-countdown' });
  const stillHere = h('button', { type: 'button', class: 'btn', 'data-testid': 'byoc-still-here', text: 'I’m still here', onclick: onStillHere });
  const idleBox = h('div', { class: 'idle', 'data-testid': 'byoc-idle', role: 'status', hidden: true }, [
    h('span', { class: 'idle-text' }, [idleText, ' ', idleCount]), stillHere,
  ]);
  const greet = h('div', { class: 'greet', 'data-testid': 'byoc-greeting' });
  const list = h('div', { class: 'msgs' });
  const typingName = h('span');
  const typingEl = h('div', { class: 'typing', 'data-testid': 'byoc-typing', hidden: true }, [
    h('span', { class: 'dots', 'aria-hidden': 'true' }, [h('i'), h('i'), h('i')]), typingName,
  ]);
  const log = h('div', { class: 'log', role: 'log', 'aria-live': 'off', 'aria-label': 'Conversation', tabindex: '0', 'data-testid': 'byoc-transcript' }, [greet, list, typingEl]);
  const newConv = h('button', { type: 'button', class: 'btn', 'data-testid': 'byoc-new-conversation', text: 'Start a new conversation', onclick: onNewConversation });
  const endedBox = h('div', { class: 'ended', 'data-testid': 'byoc-ended', hidden: true }, [
    h('p', { text: 'This conversation has ended' }), newConv,
  ]);
  const errorEl = h('div', { class: 'err', role: 'alert', 'data-testid': 'byoc-error' });
  const input = h('textarea', {
    id: uid + '-in', rows: '1', 'data-testid': 'byoc-input', placeholder: 'Write a message…',
    'aria-label': 'Message', autocomplete: 'off',
  });
  const fileInput = h('input', { type: 'file', class: 'sr', tabindex: '-1', 'aria-hidden': 'true', 'data-testid': 'byoc-file' });
  const attachBtn = h('button', { type: 'button', class: 'icon-btn', 'aria-label': 'Attach a file', 'data-testid': 'byoc-attach', onclick: () => fileInput.click() }, [icon('clip')]);
  const sendBtn = h('button', { type: 'submit', class: 'icon-btn send', 'aria-label': 'Send message', 'data-testid': 'byoc-send' }, [icon('send')]);
  const composer = h('form', { class: 'composer', 'data-testid': 'byoc-composer' }, [attachBtn, fileInput, input, sendBtn]);
  const prechatForm = h('form', { class: 'pre', 'data-testid': 'byoc-prechat-form', hidden: true });
  const panel = h('div', {
    id: uid, class: 'panel', role: 'dialog', 'aria-labelledby': uid + '-t', 'data-testid': 'byoc-panel', hidden: true,
  }, [
    h('div', { class: 'hd' }, [h('div', { class: 'hd-logo' }, [icon('chat')]), h('div', { class: 'hd-text' }, [titleEl, sub]), closeBtn]),
    idleBox, log, endedBox, prechatForm, errorEl, composer,
  ]);
  const announcer = h('div', { class: 'sr', 'aria-live': 'polite', 'data-testid': 'byoc-live' });
  root.append(panel, launcher, announcer);

  // --- State ------------------------------------------------------------------------------
  const rendered = new Map(); // message id -> {m, el}
  let pending = []; // customer messages not acknowledged yet, in order
  let isOpen = false;
  let ws = null;
  let live = false; // welcome received on the current socket
  let fatal = false;
  let attempt = 0;
  let reconnectTimer = 0;
  let lastFrame = 0;
  let openedAt = 0;
  let firstWelcome = true;
  let skew = 0; // server clock minus ours, from acks
  let idleDeadline = null;
  let typingOn = false;
  let typingSentAt = 0;
  let typingTimer = 0;
  let agentTypingTimer = 0;
  let errorTimer = 0;
  let baseTitle = document.title;

  function save() {
    const messages = Array.from(rendered.values(), (r) => r.m)
      .sort((a, b) => a.seq - b.seq)
      .slice(-300);
    const receipts = {};
    for (const m of messages) if (S.receipts[m.id]) receipts[m.id] = S.receipts[m.id];
    S.receipts = receipts;
    const out = Object.assign({}, S, {
      messages,
      pending: pending.map((p) => ({ adopted: p.adopted, clientId: p.clientId, text: p.text, attachments: p.attachments, local: p.local, prechat: p.prechat, createdAt: p.createdAt })),
    });
    rawSet(STATE_KEY, JSON.stringify(out));
  }

  function applyConfig() {
    const color = [ds.color, cfg.color, DEFAULTS.color].find((c) => c && CSS_OK(c));
    root.style.setProperty('--a', color);
    root.style.setProperty('--on', contrastText(color));
    const title = ds.title || cfg.title || DEFAULTS.title;
    titleEl.textContent = title;
    panel.setAttribute('aria-label', title);
    const greeting = ds.greeting || cfg.greeting;
    greet.textContent = '';
    greet.hidden = !greeting;
    if (greeting) greet.append(h('strong', { text: title }), greeting);
    if (cfg.attachmentTypes) fileInput.setAttribute('accept', cfg.attachmentTypes.join(','));
    attachBtn.hidden = !!cfg.attachmentTypes && cfg.attachmentTypes.length === 0;
    renderPrechat();
  }
  function CSS_OK(c) {
    try { return window.CSS && CSS.supports ? CSS.supports('color', c) : /^#[0-9a-f]{3,8}$/i.test(c); } catch (e) { return false; }
  }

  // --- Rendering messages -----------------------------------------------------------------
  function avatar(m) {
    const a = m.author || {};
    const src = a.imageUrl && safeUrl(a.imageUrl);
    if (src) return h('img', { class: 'av', src, alt: '', referrerpolicy: 'no-referrer' });
    return h('span', { class: 'av', 'aria-hidden': 'true', text: (authorName(m) || '?').charAt(0).toUpperCase() });
  }
  function attachmentsEl(items) {
    const box = h('div', { class: 'att' });
    for (const a of items || []) {
      const name = a.friendlyName || 'attachment';
      const href = a.url && safeUrl(a.url);
      if (!href) { box.append(h('span', { class: 'file', text: name })); continue; }
      if (isImage(name, a.mimeType)) {
        box.append(h('a', { href, target: '_blank', rel: 'noopener noreferrer nofollow', 'aria-label': name },
          [h('img', { src: href, alt: name, loading: 'lazy', referrerpolicy: 'no-referrer' })]));
      } else {
        const l = link(href, '');
        l.className = 'file';
        l.append(icon('file'), h('span', { text: name }));
        box.append(l);
      }
    }
    return box;
  }
  const TICK = {
    sending: ['clock', 'Sending…'], uploading: ['clock', 'Uploading…'], queued: ['tick', 'Sent'],
    sent: ['tick', 'Sent'], delivered: ['ticks', 'Delivered'], seen: ['ticks', 'Seen'],
  };
  function metaEl(m, mine, p) {
    const meta = h('div', { class: 'meta' }, [h('span', { text: fmtTime(m.createdAt) })]);
    if (!mine) return meta;
    if (m.status === 'failed' || (p && p.failed)) {
      meta.append(h('span', { class: 'failed', text: 'Not sent' }));
      if (p && p.failed === 'rate-limited') {
        meta.append(h('button', { type: 'button', class: 'retry', 'data-testid': 'byoc-retry', text: 'Retry', onclick: () => retry(p) }));
      }
      return meta;
    }
    const t = TICK[m.status] || TICK.sent;
    const tick = icon(t[0], 'tick ' + (t[0] === 'clock' ? 'clock' : m.status === 'seen' ? 'seen' : ''));
    tick.setAttribute('role', 'img');
    tick.setAttribute('aria-label', t[1]);
    tick.title = t[1];
    meta.append(tick);
    return meta;
  }
  function messageEl(m, p) {
    const sender = m.sender || (m.direction === 'inbound' ? 'customer' : 'agent');
    const attrs = { 'data-testid': 'byoc-message', 'data-id': m.id, 'data-sender': sender, 'data-status': m.status || '' };
    if (m.seq != null) attrs['data-seq'] = m.seq;
    if (sender === 'system') {
      const el = h('div', Object.assign({ class: 'sys' }, attrs));
      richText(el, m.text || '');
      return el;
    }
    const mine = sender === 'customer';
    const el = h('div', Object.assign({ class: 'msg ' + (mine ? 'me' : 'them'), 'data-author': mine ? '' : authorName(m) }, attrs));
    if (!mine) el.append(h('div', { class: 'who' }, [avatar(m), h('span', { class: 'name', 'data-testid': 'byoc-author', text: authorName(m) })]));
    const bubble = h('div', { class: 'bubble' });
    if (m.text) richText(bubble, m.text);
    if (m.attachments && m.attachments.length) bubble.append(attachmentsEl(m.attachments));
    el.append(bubble, metaEl(m, mine, p));
    return el;
  }
  function regroup(el) {
    if (!el || !el.classList.contains('msg')) return;
    const prev = el.previousElementSibling;
    el.classList.toggle('cont', !!prev && prev.classList.contains('msg') &&
      prev.dataset.sender === el.dataset.sender && prev.dataset.author === el.dataset.author);
  }
  function place(el, seq) {
    let ref = null;
    if (seq != null) {
      for (const c of list.children) {
        if (c.dataset.seq === undefined || +c.dataset.seq > seq) { ref = c; break; }
      }
    }
    const stick = nearBottom();
    list.insertBefore(el, ref);
    regroup(el);
    regroup(el.nextElementSibling);
    if (stick) scrollBottom();
  }
  function replaceEl(oldEl, newEl) {
    oldEl.replaceWith(newEl);
    regroup(newEl);
    regroup(newEl.nextElementSibling);
  }
  const nearBottom = () => log.scrollHeight - log.scrollTop - log.clientHeight < 80;
  function scrollBottom() { log.scrollTop = log.scrollHeight; }

  const RANK = { sending: 0, queued: 1, sent: 2, delivered: 3, seen: 4 };
  function newerStatus(cur, next) {
    if (!next || next === cur) return false;
    if (next === 'failed' || cur === 'failed' || !(cur in RANK)) return true;
    return (RANK[next] || 0) >= RANK[cur];
  }
  const fromAgent = (m) => m.sender === 'agent' || m.sender === 'bot';

  // Adds or updates a message; a message id is only ever rendered once.
  function upsert(m, announceIt) {
    if (!m || !m.id) return;
    if (m.threadId && m.threadId !== S.threadId) {
      if (S.threadId && rendered.size) resetThread();
      S.threadId = m.threadId;
      if (S.ended) setEnded(false);
    }
    const have = rendered.get(m.id);
    if (have) {
      if (newerStatus(have.m.status, m.status)) updateStatus(m.id, m.status);
      return;
    }
    if (m.sender === 'customer') {
      // A replayed or echoed customer message may be one still waiting for its ack.
      const p = pending.find((q) => !q.adopted && q.tries > 0 && (m.clientId ? q.clientId === m.clientId :
        (q.text || '') === (m.text || '') && (q.attachments || []).length === (m.attachments || []).length));
      if (p) {
        p.adopted = m.id;
        if (p.el) p.el.remove();
        p.el = null;
      }
    }
    const el = messageEl(m);
    rendered.set(m.id, { m, el });
    place(el, m.seq);
    if (fromAgent(m)) {
      showTyping(false);
      if (announceIt) announce((authorName(m) ? authorName(m) + ': ' : '') + (m.text || 'sent an attachment'));
    } else if (m.sender === 'system' && announceIt) announce(m.text || '');
  }
  function updateStatus(id, status) {
    const r = rendered.get(id);
    if (!r || !newerStatus(r.m.status, status)) return;
    r.m.status = status;
    r.el.dataset.status = status;
    const meta = r.el.querySelector('.meta');
    if (meta && r.m.sender === 'customer') meta.replaceWith(metaEl(r.m, true));
  }
  function resetThread() {
    for (const r of rendered.values()) r.el.remove();
    rendered.clear();
    S.threadId = null;
    S.receipts = {};
    showTyping(false);
    idle(null);
  }

  // --- Pending customer messages ----------------------------------------------------------
  function pendingView(p) {
    return { id: p.clientId, sender: 'customer', text: p.text, attachments: p.local || [], status: p.failed ? 'failed' : p.uploading ? 'uploading' : 'sending', createdAt: p.createdAt };
  }
  function renderPending(p) {
    const el = messageEl(pendingView(p), p);
    if (p.el) replaceEl(p.el, el); else { place(el, null); scrollBottom(); }
    p.el = el;
  }
  function newPending(text, attachments, local) {
    const p = { clientId: 'c-' + randomHex(12), text, attachments, local, prechat: null, tries: 0, createdAt: Date.now() + skew };
    if (!S.threadId && !rendered.size && S.prechat) p.prechat = S.prechat;
    return p;
  }
  function queue(p) {
    pending.push(p);
    if (!p.el) renderPending(p);
    save();
    transmit(p);
    renderPrechat();
  }
  function transmit(p) {
    const frame = { type: 'message', clientId: p.clientId, text: p.text || '' };
    if (p.attachments && p.attachments.length) frame.attachments = p.attachments;
    if (p.prechat) frame.prechat = p.prechat;
    if (send(frame)) p.tries++;
  }
  function retry(p) {
    p.failed = null;
    p.tries = 0;
    renderPending(p);
    queue(p);
  }
  function onAck(f) {
    const p = pending.find((q) => q.clientId === f.clientId);
    const m = f.message;
    if (m && m.createdAt) skew = Math.abs(m.createdAt - Date.now()) > 1500 ? m.createdAt - Date.now() : 0;
    if (p) {
      pending = pending.filter((q) => q !== p);
      if (p.el) p.el.remove();
      if (p.prechat) S.prechat = null;
    }
    upsert(m, false);
    save();
  }

  function sendText() {
    if (S.ended || fatal) return;
    const text = input.value.replace(/^\s+|\s+$/g, '');
    if (!text) return;
    const max = cfg.maxTextLength || DEFAULTS.maxTextLength;
    if (chars(text) > max) {
      showError('Your message is too long (' + chars(text) + ' characters; the limit is ' + max + ').');
      return;
    }
    input.value = '';
    autosize();
    stopTyping();
    clearError();
    queue(newPending(text, []));
  }

  async function upload(file) {
    const types = cfg.attachmentTypes;
    if (types && types.length && types.indexOf(file.type) < 0) {
      showError('Files of this type can’t be sent here. Try an image, a PDF or a text file.');
      return;
    }
    const max = cfg.maxAttachmentBytes || DEFAULTS.maxAttachmentBytes;
    if (file.size > max) { showError('That file is too large (the limit is ' + fmtBytes(max) + ').'); return; }
    const caption = input.value.trim();
    if (caption && chars(caption) > cfg.maxTextLength) { showError('Your message is too long.'); return; }
    input.value = '';
    autosize();
    clearError();
    const p = newPending(caption, [], [{ friendlyName: file.name }]);
    p.uploading = true;
    renderPending(p);
    const headers = USER_ID ? { 'X-Byoc-User': USER_ID, 'X-Byoc-User-Signature': SIGNATURE || '' } : { 'X-Byoc-Visitor': VISITOR };
    const body = new FormData();
    body.append('file', file, file.name);
    try {
      const res = await fetch(ORIGIN + '/webchat/v1/channels/' + encodeURIComponent(CHANNEL) + '/attachments',
        { method: 'POST', body, headers, credentials: 'omit', mode: 'cors' });
      let data = null;
      try { data = await res.json(); } catch (e) { data = null; }
      if (!res.ok || !data || !data.id) {
        throw new Error(res.status === 413 ? 'That file is too large.' : res.status === 415 ? 'Files of this type can’t be sent here.' :
          (data && (data.detail || data.title)) || 'The file could not be uploaded.');
      }
      p.uploading = false;
      p.attachments = [{ id: data.id, friendlyName: data.friendlyName }];
      p.local = [{ friendlyName: data.friendlyName, url: data.url, mimeType: data.mimeType }];
      renderPending(p);
      queue(p);
    } catch (e) {
      if (p.el) p.el.remove();
      showError(e && e.message && e.message !== 'Failed to fetch' ? e.message : 'The file could not be uploaded. Check your connection and try again.');
      if (caption && !input.value) { input.value = caption; autosize(); }
    }
  }

  // --- Receipts, unread, title ------------------------------------------------------------
  function flushReceipts() {
    if (!live) return;
    const visible = isOpen && document.visibilityState === 'visible';
    let changed = false;
    for (const { m } of rendered.values()) {
      if (!fromAgent(m)) continue;
      const had = S.receipts[m.id] || (m.status === 'seen' ? 'seen' : m.status === 'delivered' ? 'delivered' : '');
      if (!had && send({ type: 'delivered', messageId: m.id })) { S.receipts[m.id] = 'delivered'; changed = true; }
      if (visible && had !== 'seen' && send({ type: 'seen', messageId: m.id })) { S.receipts[m.id] = 'seen'; changed = true; }
      else if (had && !S.receipts[m.id]) S.receipts[m.id] = had;
    }
    if (changed) save();
    updateUnread();
  }
  function unreadCount() {
    let n = 0;
    for (const { m } of rendered.values()) if (fromAgent(m) && S.receipts[m.id] !== 'seen' && m.status !== 'seen') n++;
    return n;
  }
  function updateUnread() {
    const n = unreadCount();
    badge.textContent = n > 9 ? '9+' : String(n);
    badge.hidden = !n || isOpen;
    launcher.setAttribute('aria-label', (isOpen ? 'Close chat' : 'Open chat') + (n && !isOpen ? ', ' + n + ' unread' : ''));
    const minimised = !isOpen || document.visibilityState !== 'visible';
    const current = document.title;
    const bare = current.replace(/^\(\d+\+?\) /, '');
    if (bare !== baseTitle) baseTitle = bare;
    const want = n && minimised ? '(' + n + ') ' + baseTitle : baseTitle;
    if (current !== want) document.title = want;
  }
  function announce(text) {
    announcer.textContent = '';
    setTimeout(() => { announcer.textContent = text; }, 50);
  }

  // --- Typing -----------------------------------------------------------------------------
  function onInput() {
    autosize();
    if (!input.value.trim()) { stopTyping(); return; }
    const now = Date.now();
    if ((!typingOn || now - typingSentAt > 5000) && send({ type: 'typing', typing: true })) {
      typingOn = true;
      typingSentAt = now;
    }
    clearTimeout(typingTimer);
    typingTimer = setTimeout(stopTyping, 3000);
  }
  function stopTyping() {
    clearTimeout(typingTimer);
    if (typingOn) {
      typingOn = false;
      send({ type: 'typing', typing: false });
    }
  }
  function showTyping(on, author) {
    clearTimeout(agentTypingTimer);
    const name = author && (author.firstName || author.nickname);
    typingName.textContent = (name || 'Agent') + ' is typing…';
    const stick = nearBottom();
    typingEl.hidden = !on;
    if (on) {
      if (stick) scrollBottom();
      agentTypingTimer = setTimeout(() => showTyping(false), 60000);
    }
  }
  function autosize() {
    input.style.height = 'auto';
    input.style.height = Math.min(input.scrollHeight + 2, 132) + 'px';
  }

  // --- Errors, idle countdown, end of conversation ----------------------------------------
  function showError(text, sticky) {
    clearTimeout(errorTimer);
    errorEl.textContent = text;
    if (!sticky) errorTimer = setTimeout(clearError, 10000);
  }
  function clearError() {
    if (fatal) return;
    clearTimeout(errorTimer);
    errorEl.textContent = '';
  }
  const ERRORS = {
    'rate-limited': 'You’re sending messages too quickly. Please wait a moment and try again.',
    'too-long': 'That message is too long. Please shorten it.',
    'conversation-ended': 'This conversation has ended. Start a new one to keep chatting.',
    unauthenticated: 'We couldn’t verify who you are, so the chat isn’t available. Please sign in again.',
    'forbidden-origin': 'The chat isn’t available on this site.',
    'channel-not-found': 'This chat isn’t available right now.',
    'bad-hello': 'The chat couldn’t start. Please reload the page.',
  };
  const FATAL = ['unauthenticated', 'forbidden-origin', 'channel-not-found', 'bad-hello'];
  function onError(f) {
    const code = f.code || 'error';
    if (FATAL.indexOf(code) >= 0) {
      fatal = true;
      setConn('dead');
      setComposerEnabled();
    }
    if (f.clientId) {
      const p = pending.find((q) => q.clientId === f.clientId);
      if (p) {
        pending = pending.filter((q) => q !== p);
        p.failed = code;
        if (p.adopted) { p.el = null; } else renderPending(p);
        save();
      }
    }
    if (code === 'conversation-ended') setEnded(true);
    showError(ERRORS[code] || f.detail || 'Something went wrong.', fatal);
  }
  function idle(deadline, text) {
    idleDeadline = deadline || null;
    idleBox.hidden = !idleDeadline;
    if (idleDeadline) {
      idleText.textContent = text || 'Are you still there? This chat will close in';
      tickIdle();
    }
  }
  function tickIdle() {
    if (!idleDeadline) return;
    const s = Math.max(0, Math.ceil((idleDeadline - skew - Date.now()) / 1000));
    idleCount.textContent = Math.floor(s / 60) + ':' + String(s % 60).padStart(2, '0');
  }
  function onStillHere() {
    send({ type: 'still_here' });
    input.focus();
  }
  function setEnded(on) {
    S.ended = on;
    endedBox.hidden = !on;
    if (on) {
      showTyping(false);
      idle(null);
      stopTyping();
    }
    setComposerEnabled();
  }
  function setComposerEnabled() {
    const off = S.ended || fatal;
    input.disabled = sendBtn.disabled = attachBtn.disabled = off;
    input.placeholder = fatal ? 'Chat unavailable' : S.ended ? 'This conversation has ended' : 'Write a message…';
  }
  function onNewConversation() {
    send({ type: 'new_conversation' });
    resetThread();
    S.prechat = null;
    setEnded(false);
    clearError();
    save();
    renderPrechat();
    focusFirst();
  }

  // --- Pre-chat form ----------------------------------------------------------------------
  let prechatBuiltFor = '';
  function needPrechat() {
    return !!(cfg.prechat && cfg.prechat.length) && !S.prechat && !S.threadId && !rendered.size && !pending.length && !S.ended;
  }
  function renderPrechat() {
    const need = needPrechat();
    prechatForm.hidden = !need;
    composer.hidden = need;
    if (!need) return;
    const sig = JSON.stringify(cfg.prechat);
    if (sig === prechatBuiltFor) return;
    prechatBuiltFor = sig;
    prechatForm.textContent = '';
    prechatForm.append(h('p', { text: 'Before we start, tell us a little about yourself.' }));
    for (const field of cfg.prechat) {
      const type = ['email', 'tel', 'url', 'number'].indexOf(field.type) >= 0 ? field.type : 'text';
      prechatForm.append(h('label', {}, [
        (field.label || field.ident) + (field.required ? ' *' : ''),
        h('input', { name: field.ident, type, required: !!field.required, 'data-testid': 'byoc-prechat-' + field.ident, autocomplete: type === 'email' ? 'email' : 'on' }),
      ]));
    }
    prechatForm.append(h('button', { type: 'submit', class: 'btn', 'data-testid': 'byoc-prechat-submit', text: 'Start chatting' }));
  }
  prechatForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (!prechatForm.reportValidity()) return;
    const values = {};
    for (const el of prechatForm.querySelectorAll('input')) if (el.value.trim()) values[el.name] = el.value.trim();
    S.prechat = values;
    save();
    renderPrechat();
    input.focus();
  });

  // --- The socket -------------------------------------------------------------------------
  function setConn(state) {
    sub.className = 'sub' + (state === 'live' ? '' : state === 'dead' ? ' dead' : ' off');
    sub.textContent = state === 'live' ? 'We reply as soon as we can' : state === 'dead' ? 'Chat unavailable' : 'Reconnecting…';
  }
  function send(frame) {
    if (!ws || !live || ws.readyState !== 1) return false;
    try { ws.send(JSON.stringify(frame)); return true; } catch (e) { return false; }
  }
  function connect() {
    clearTimeout(reconnectTimer);
    if (fatal || ws) return;
    let sock;
    try { sock = new WebSocket(WS_URL); } catch (e) { scheduleReconnect(); return; }
    ws = sock;
    live = false;
    lastFrame = openedAt = Date.now();
    sock.onopen = () => {
      lastFrame = Date.now();
      const hello = { type: 'hello', channel: CHANNEL, visitorId: VISITOR, userId: USER_ID, signature: SIGNATURE, name: USER_NAME };
      if (S.threadId) {
        hello.threadId = S.threadId;
        let seq = -1;
        for (const { m } of rendered.values()) if (m.threadId === S.threadId && m.seq > seq) seq = m.seq;
        if (seq >= 0) hello.afterSeq = seq;
      }
      sock.send(JSON.stringify(hello));
    };
    sock.onmessage = (ev) => {
      if (sock !== ws) return;
      lastFrame = Date.now();
      let f;
      try { f = JSON.parse(ev.data); } catch (e) { return; }
      if (f && typeof f.type === 'string') onFrame(f);
    };
    sock.onclose = (ev) => {
      if (sock !== ws) return;
      ws = null;
      live = false;
      typingOn = false;
      if ([4400, 4401, 4403, 4404].indexOf(ev.code) >= 0) {
        fatal = true;
        setConn('dead');
        setComposerEnabled();
        if (!errorEl.textContent) showError('The chat isn’t available right now.', true);
        return;
      }
      setConn('off');
      scheduleReconnect();
    };
  }
  function scheduleReconnect() {
    clearTimeout(reconnectTimer);
    if (fatal) return;
    const base = Math.min(15000, 500 * Math.pow(2, attempt++));
    reconnectTimer = setTimeout(connect, base / 2 + Math.random() * base / 2);
  }
  function dropSocket() {
    const sock = ws;
    ws = null;
    live = false;
    typingOn = false;
    if (sock) { sock.onclose = null; try { sock.close(); } catch (e) { /* already gone */ } }
    setConn('off');
    scheduleReconnect();
  }
  function onFrame(f) {
    switch (f.type) {
      case 'welcome': onWelcome(f); break;
      case 'ack': onAck(f); break;
      case 'message': upsert(f.message, true); save(); flushReceipts(); break;
      case 'typing': showTyping(!!f.typing, f.author); break;
      case 'status': updateStatus(f.messageId, f.status); save(); break;
      case 'idle_warning': idle(f.deadline, f.text); break;
      case 'idle_cleared': idle(null); break;
      case 'ended':
        if (!f.threadId || f.threadId === S.threadId || !S.threadId) setEnded(true);
        save();
        break;
      case 'error': onError(f); break;
      case 'ping': try { ws.send('{"type":"pong"}'); } catch (e) { /* closing */ } break;
      default: break;
    }
  }
  function onWelcome(f) {
    live = true;
    attempt = 0;
    if (!fatal) clearErrorIfTransport();
    setConn('live');
    if (f.config && typeof f.config === 'object') {
      S.config = f.config;
      cfg = Object.assign({}, DEFAULTS, f.config);
      applyConfig();
    }
    const conv = f.conversation;
    if (conv && conv.threadId) {
      if (conv.threadId !== S.threadId) {
        if (S.threadId || rendered.size) resetThread();
        S.threadId = conv.threadId;
      }
    } else if (S.threadId && rendered.size) {
      // The server has no conversation for this customer: what is shown here is over.
      if (!S.ended) setEnded(true);
    } else {
      S.threadId = null;
    }
    for (const m of f.messages || []) upsert(m, !firstWelcome);
    firstWelcome = false;
    if (conv) setEnded(conv.state !== 'open');
    else if (!S.threadId) setEnded(false);
    showTyping(!!f.agentTyping);
    for (const p of pending.slice()) transmit(p);
    save();
    renderPrechat();
    flushReceipts();
  }
  function clearErrorIfTransport() {
    if (errorEl.textContent && /reconnect|connection/i.test(errorEl.textContent)) clearError();
  }

  // --- Open / close -----------------------------------------------------------------------
  function focusFirst() {
    const field = !prechatForm.hidden && prechatForm.querySelector('input');
    (field || (input.disabled ? (S.ended ? newConv : closeBtn) : input)).focus();
  }
  function open() {
    if (isOpen) return;
    isOpen = true;
    panel.hidden = false;
    root.classList.add('open');
    launcher.setAttribute('aria-expanded', 'true');
    try { sessionStorage.setItem(KEY + 'open', '1'); } catch (e) { /* no storage */ }
    scrollBottom();
    autosize();
    focusFirst();
    flushReceipts();
    updateUnread();
  }
  function close() {
    if (!isOpen) return;
    isOpen = false;
    panel.hidden = true;
    root.classList.remove('open');
    launcher.setAttribute('aria-expanded', 'false');
    try { sessionStorage.removeItem(KEY + 'open'); } catch (e) { /* no storage */ }
    stopTyping();
    launcher.focus();
    updateUnread();
  }

  // --- Wiring -----------------------------------------------------------------------------
  composer.addEventListener('submit', (ev) => { ev.preventDefault(); sendText(); input.focus(); });
  input.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing && ev.keyCode !== 229) {
      ev.preventDefault();
      sendText();
    }
  });
  input.addEventListener('input', onInput);
  input.addEventListener('blur', () => { if (!input.value.trim()) stopTyping(); });
  fileInput.addEventListener('change', () => {
    const file = fileInput.files && fileInput.files[0];
    fileInput.value = '';
    if (file) upload(file);
  });
  panel.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') { ev.preventDefault(); close(); }
  });
  document.addEventListener('visibilitychange', flushReceipts);
  window.addEventListener('online', () => { if (!ws && !fatal) { attempt = 0; connect(); } });
  setInterval(() => {
    tickIdle();
    const hb = (cfg.heartbeatSeconds || 20) * 1000;
    // A socket that stays silent for two heartbeats, or never says welcome, is dead.
    if (ws && (Date.now() - lastFrame > 2 * hb || (!live && Date.now() - openedAt > 15000))) dropSocket();
  }, 1000);

  function mount() {
    const host = h('div', { id: 'byoc-widget', 'data-byoc-widget': '' });
    host.style.cssText = 'all:initial;position:static';
    const shadow = host.attachShadow({ mode: 'open' });
    shadow.append(h('style', { text: CSS }), root);
    document.body.append(host);
    applyConfig();
    for (const m of S.messages || []) upsert(m, false);
    for (const saved of S.pending || []) {
      const p = Object.assign({ tries: 0 }, saved);
      pending.push(p);
      if (!(p.adopted && rendered.has(p.adopted))) renderPending(p);
    }
    setEnded(!!S.ended);
    renderPrechat();
    updateUnread();
    let reopen = false;
    try { reopen = sessionStorage.getItem(KEY + 'open') === '1'; } catch (e) { /* no storage */ }
    if (reopen) {
      isOpen = true;
      panel.hidden = false;
      root.classList.add('open');
      launcher.setAttribute('aria-expanded', 'true');
      scrollBottom();
      updateUnread();
    }
    connect();
  }

  window.ByocWidget = Object.freeze({
    open,
    close,
    state: () => ({
      open: isOpen, connected: live, threadId: S.threadId, ended: S.ended, unread: unreadCount(),
      messages: rendered.size, pending: pending.length,
    }),
  });
  if (document.body) mount();
  else document.addEventListener('DOMContentLoaded', mount);
})();

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
    const named = [a.firstName, a.nickname].find((n) => typeof n === 'string' && n);
    return named || (m.sender === 'bot' ? 'Assistant' : m.sender === 'agent' ? 'Agent' : '');
  }
  function contrastText(hex) {
    const m = /^#?([0-9a-f]{6})$/i.exec(hex || '');
    if (!m) return '#fff';
    const n = parseInt(m[1], 16);
    const lin = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); };
    const L = 0.2126 * lin(n >> 16) + 0.7152 * lin((n >> 8) & 255) + 0.0722 * lin(n & 255);
    return L > 0.45 ? '#111827' : '#fff';
  }


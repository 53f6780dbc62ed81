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
  const USER_EXPIRES = ds.userExpires || null;  // unix seconds, inside the signed text
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


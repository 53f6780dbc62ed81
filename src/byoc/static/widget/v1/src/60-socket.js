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
      const hello = { type: 'hello', channel: CHANNEL, visitorId: VISITOR, userId: USER_ID, signature: SIGNATURE, userExpires: USER_EXPIRES, name: USER_NAME };
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

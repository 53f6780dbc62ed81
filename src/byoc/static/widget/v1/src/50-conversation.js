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
    const wasEnded = S.ended;
    // Disabling the focused message box would drop focus to <body>: move it first.
    const focusInPanel = on && !wasEnded && panel.contains(panel.getRootNode().activeElement);
    S.ended = on;
    endedBox.hidden = !on;
    if (on) {
      showTyping(false);
      idle(null);
      stopTyping();
    }
    setComposerEnabled();
    if (on && !wasEnded) {
      if (focusInPanel) newConv.focus();
      announce('This conversation has ended');
    }
  }
  function setComposerEnabled() {
    const off = S.ended || fatal;
    input.disabled = sendBtn.disabled = attachBtn.disabled = off;
    for (const b of list.querySelectorAll('button[data-choice]')) b.disabled = off;
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
    // The form can appear after the panel opened (the channel's settings come with the socket's
    // first frame): it then takes the focus the composer, or nothing, had.
    const active = panel.getRootNode().activeElement;
    const takeFocus = need && prechatForm.hidden && isOpen && (!active || active === input);
    prechatForm.hidden = !need;
    composer.hidden = need;
    if (!need) return;
    buildPrechat();
    if (takeFocus) focusFirst();
  }
  function buildPrechat() {
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


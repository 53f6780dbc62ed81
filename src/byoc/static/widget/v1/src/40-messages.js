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
    const rich = mine ? null : richEl(m, bubble);
    if (!rich && m.text) richText(bubble, m.text);
    if (m.attachments && m.attachments.length) bubble.append(attachmentsEl(m.attachments));
    el.append(bubble);
    if (rich && rich.after) el.append(rich.after);
    el.append(metaEl(m, mine, p));
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
      // An agent's files shown before they were kept here come again with lasting links.
      if (JSON.stringify(have.m.attachments || []) !== JSON.stringify(m.attachments || [])) {
        have.m.attachments = m.attachments || [];
        const el = messageEl(have.m);
        have.el.replaceWith(el);
        have.el = el;
      }
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
    pruneQuickReplies();
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
    pruneQuickReplies();
    save();
    transmit(p);
    renderPrechat();
  }
  function transmit(p) {
    const frame = { type: 'message', clientId: p.clientId, text: p.text || '' };
    if (p.postback != null) frame.postback = p.postback;
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
    if (USER_ID && USER_EXPIRES) headers['X-Byoc-User-Expires'] = USER_EXPIRES;
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


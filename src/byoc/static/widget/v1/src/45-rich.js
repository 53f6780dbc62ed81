  // --- Rich messages (docs/rich-messages.md, `rich` version 1) -----------------------------
  // Built from the message's `rich` view with h() only: every string is a text node or an
  // attribute, every URL passes safeUrl(), links open in a new tab without an opener.
  function choose(label, postback, from) {
    if (S.ended || fatal || !label) return;
    const group = from && from.closest('.qr');
    if (group) group.remove();
    const p = newPending(label, []);
    if (postback != null) p.postback = String(postback);
    queue(p);
    input.focus();
  }
  // Choices answer in the conversation: once it has ended (or the chat is unavailable) they are
  // disabled, like the message box, rather than buttons that do nothing.
  function choiceButton(c, cls, testid, kids) {
    return h('button', { type: 'button', class: cls, 'data-testid': testid, 'data-choice': true, 'data-postback': c.postback == null ? null : c.postback,
      disabled: S.ended || fatal, onclick: (ev) => choose(c.label, c.postback, ev.currentTarget) }, kids);
  }
  function richImage(url, alt, cls) {
    const src = url && safeUrl(url);
    // An image that arrives after its message was placed keeps the newest message in view.
    const onload = (ev) => { const m = ev.target.closest('.msg'); if (m && m === list.lastElementChild) scrollBottom(); };
    return src ? h('img', { class: cls, src, alt: alt || '', referrerpolicy: 'no-referrer', onload }) : null;
  }
  function newTabLink(href, cls, testid, kids) {
    return h('a', { href, class: cls, 'data-testid': testid, target: '_blank', rel: 'noopener noreferrer nofollow' },
      kids.concat([h('span', { class: 'sr', text: ' (opens in a new tab)' })]));
  }
  function quickReplies(r, bubble) {
    richText(bubble, r.text || '');
    const group = h('div', { class: 'qr', role: 'group', 'aria-label': 'Suggested replies', 'data-testid': 'byoc-quick-replies' });
    for (const c of r.choices || []) group.append(choiceButton(c, 'chip', 'byoc-quick-reply', [h('span', { text: c.label })]));
    return group;
  }
  function listPicker(r, bubble) {
    bubble.append(h('strong', { class: 'rt', text: r.title || '' }));
    if (r.text) bubble.append(h('span', { class: 'rs', text: r.text }));
    const items = h('ul', { class: 'lp', 'aria-label': r.title || 'Choices', 'data-testid': 'byoc-list-picker' });
    for (const c of r.choices || []) {
      const kids = [richImage(c.imageUrl, '', 'lp-img'), h('span', { class: 'lp-t' }, [
        h('span', { class: 'lp-l', text: c.label }), c.description ? h('span', { class: 'lp-d', text: c.description }) : null,
      ])];
      items.append(h('li', {}, [choiceButton(c, 'lp-item', 'byoc-list-item', kids)]));
    }
    bubble.append(items);
  }
  function richLink(r, bubble) {
    const href = safeUrl(r.url);
    let host = '';
    try { host = new URL(href).host; } catch (e) { host = ''; }
    const kids = [richImage(r.imageUrl, '', 'rl-img'), h('span', { class: 'rl-t', text: r.title || r.url }), h('span', { class: 'rl-h', text: host })];
    bubble.append(href ? newTabLink(href, 'rl', 'byoc-rich-link', kids) : h('span', { text: r.title || '' }));
  }
  function adaptiveCard(r, bubble, fallback) {
    const card = h('div', { class: 'ac', 'data-testid': 'byoc-card' });
    for (const b of r.body || []) {
      if (b.type === 'text') card.append(h('p', { class: 'ac-' + (b.style || 'text'), text: b.text }));
      else if (b.type === 'image') card.append(richImage(b.url, b.altText, 'ac-img'));
      else if (b.type === 'facts') {
        const dl = h('dl', { class: 'ac-facts' });
        for (const f of b.facts || []) dl.append(h('dt', { text: f.title }), h('dd', { text: f.value }));
        card.append(dl);
      }
    }
    if (!r.complete && fallback) card.append(h('p', { class: 'ac-fb', 'data-testid': 'byoc-card-fallback', text: fallback }));
    const actions = h('div', { class: 'ac-actions' });
    for (const a of r.actions || []) {
      if (a.type === 'postback') actions.append(choiceButton(a, 'chip', 'byoc-card-action', [h('span', { text: a.label })]));
      else if (a.type === 'link' && safeUrl(a.url)) actions.append(newTabLink(safeUrl(a.url), 'chip', 'byoc-card-link', [h('span', { text: a.label })]));
    }
    if (actions.children.length) card.append(actions);
    bubble.append(card);
  }
  // The bubble of an agent's rich message, and what goes below it (quick replies), or null
  // for a type this widget does not know: the caller shows the fallback text instead.
  function richEl(m, bubble) {
    const r = m.rich;
    if (!r || r.version !== 1) return null;
    bubble.classList.add('rich');
    if (r.type === 'quick_replies') return { after: quickReplies(r, bubble) };
    if (r.type === 'list_picker') listPicker(r, bubble);
    else if (r.type === 'rich_link') richLink(r, bubble);
    else if (r.type === 'adaptive_card') adaptiveCard(r, bubble, m.fallbackText || m.text);
    else { bubble.classList.remove('rich'); return null; }
    return { after: null };
  }
  // Quick replies answer the moment they were asked in: once the customer has said anything
  // after them, their buttons go.
  function pruneQuickReplies() {
    let later = false;
    for (let el = list.lastElementChild; el; el = el.previousElementSibling) {
      if (el.dataset.sender === 'customer') later = true;
      else if (later) {
        const qr = el.querySelector('.qr');
        if (qr) qr.remove();
      }
    }
  }

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
      pending: pending.map((p) => ({ adopted: p.adopted, clientId: p.clientId, text: p.text, attachments: p.attachments, local: p.local, prechat: p.prechat, postback: p.postback, createdAt: p.createdAt })),
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


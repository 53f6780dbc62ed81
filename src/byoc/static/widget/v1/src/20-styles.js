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
.sub{font-size:12.5px;display:flex;align-items:center;gap:6px}
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
.bubble.rich{white-space:normal;min-width:0;width:82%}
.rt{display:block;color:#111827}
.rs{display:block;margin-top:2px;color:#374151;white-space:pre-wrap}
.qr{display:flex;flex-wrap:wrap;gap:6px;margin:8px 0 0 34px;max-width:calc(100% - 34px)}
.chip{display:inline-flex;align-items:center;min-height:34px;padding:6px 14px;border-radius:999px;border:1.5px solid var(--a);background:#fff;color:var(--a);font-weight:600;text-decoration:none!important;overflow-wrap:anywhere}
.chip:hover:not(:disabled){background:color-mix(in srgb,var(--a) 10%,#fff)}
.lp{list-style:none;margin:8px 0 0;padding:0;display:flex;flex-direction:column;gap:6px}
.lp-item{display:flex;align-items:center;gap:10px;width:100%;padding:8px;border-radius:12px;border:1px solid #d5d9e0;background:#fff;text-align:left}
.lp-item:hover:not(:disabled){border-color:var(--a)}
button[data-choice]:disabled{opacity:.55;cursor:default}
.lp-img{flex:none;width:48px;height:48px;border-radius:8px;object-fit:cover;background:#eef0f3}
.lp-t{display:flex;flex-direction:column;min-width:0}
.lp-l{font-weight:600;color:#111827}
.lp-d{font-size:12.5px;color:#4b5563}
.rl{display:flex;flex-direction:column;margin:-9px -13px;border-radius:inherit;overflow:hidden;color:#111827!important;text-decoration:none!important}
.rl-img{display:block;width:100%;max-height:160px;object-fit:cover;background:#eef0f3}
.rl-t{padding:9px 13px 0;font-weight:600;text-decoration:underline;text-underline-offset:2px}
.rl-h{padding:0 13px 9px;font-size:12.5px;color:#4b5563}
.ac p{margin:0 0 6px}
.ac-heading{font-weight:700;font-size:15.5px;color:#111827}
.ac-subtle{color:#4b5563}
.ac-fb{font-style:italic;color:#374151;white-space:pre-wrap}
.ac-img{display:block;max-width:100%;max-height:180px;margin:0 0 8px;border-radius:10px}
.ac-facts{display:grid;grid-template-columns:auto 1fr;gap:2px 12px;margin:0 0 8px}
.ac-facts dt{font-weight:600;color:#374151}
.ac-facts dd{margin:0}
.ac-actions{display:flex;flex-wrap:wrap;gap:6px;margin-top:4px}
@media (max-width:480px){
.panel{inset:0;width:100%;height:100%;border-radius:0;animation:none}
.open .launcher{display:none}
.composer textarea{font-size:16px}
}`;


/* The operator page: plain DOM, no framework, no build. Served by the back office at /operator/. */
/* global document, sessionStorage, fetch, atob, crypto */
'use strict';

(function operatorPage() {
  const TOKEN_KEY = 'operatorToken';
  const $ = (id) => document.getElementById(id);
  const el = (tag, props, ...children) => {
    const node = document.createElement(tag);
    Object.assign(node, props);
    for (const child of children) node.append(child);
    return node;
  };

  /** The row data as the last GET /v1/gateways returned it; its `version` is what If-Match sends. */
  let gateways = [];

  function show(kind, text) {
    const box = $('message');
    box.className = kind;
    box.textContent = text;
    box.hidden = false;
  }
  function clearMessage() {
    $('message').hidden = true;
    $('message').textContent = '';
  }

  /** Who the token says it is, for display only: the server checks the token on every call. */
  function describeToken(token) {
    try {
      const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      const claims = JSON.parse(atob(part));
      return `${claims.sub || 'unknown'} (${claims.scope || 'no scopes'})`;
    } catch {
      return 'unreadable token';
    }
  }

  /** Calls the rules API with the token; resolves with { ok, status, body } and never throws on an HTTP error. */
  async function api(method, path, body, headers) {
    const init = { method, headers: { authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) || ''}`, ...headers } };
    if (body !== undefined) {
      init.headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      return { ok: false, status: 0, body: { error: { message: `the back office could not be reached (${error.message})` } } };
    }
    let parsed = null;
    try {
      parsed = await response.json();
    } catch {
      parsed = null;
    }
    return { ok: response.ok, status: response.status, body: parsed };
  }

  /** "403 — this operation needs the rules:write scope": the status and the API's own message. */
  function describeError(answer) {
    const message = answer.body && answer.body.error && answer.body.error.message;
    if (answer.status === 0) return message;
    return `${answer.status} — ${message || 'no error message in the answer'}`;
  }

  function warningsOf(answer) {
    const warnings = (answer.body && answer.body.warnings) || [];
    return warnings.map((warning) => `Warning: ${warning.message || warning.code}`).join('\n');
  }

  function signedIn(token) {
    $('login').hidden = true;
    $('gateways').hidden = false;
    $('reload').hidden = false;
    $('signout').hidden = false;
    $('who').textContent = `Signed in as ${describeToken(token)}`;
  }
  function signedOut() {
    sessionStorage.removeItem(TOKEN_KEY);
    gateways = [];
    $('rows').replaceChildren();
    $('gateways').hidden = true;
    $('review-rows').replaceChildren();
    $('reviews').hidden = true;
    $('reload').hidden = true;
    $('signout').hidden = true;
    $('who').textContent = '';
    $('login').hidden = false;
    $('token').value = '';
  }

  async function load() {
    const answer = await api('GET', '/v1/gateways');
    if (!answer.ok) {
      show('error', `Could not load the gateways: ${describeError(answer)}`);
      if (answer.status === 401) {
        signedOut();
        $('message').hidden = false;
      }
      return false;
    }
    gateways = answer.body.gateways;
    render();
    await loadReviews();
    return true;
  }

  /** The payments in review, for a token with reviews:read; without it the section says which scope it needs. */
  async function loadReviews() {
    const answer = await api('GET', '/v1/reviews');
    $('reviews').hidden = false;
    if (!answer.ok) {
      $('reviews-table').hidden = true;
      $('reviews-note').textContent = `Reviews are not shown: ${describeError(answer)}.`;
      return;
    }
    $('reviews-table').hidden = false;
    const reviews = answer.body.reviews;
    $('reviews-note').textContent = reviews.length === 0 ? 'No payment is waiting for a person.' : `${reviews.length} payment${reviews.length === 1 ? '' : 's'} waiting for a person.`;
    $('review-rows').replaceChildren(...reviews.map(reviewRow));
  }

  /** A v4 UUID; randomUUID exists only in secure contexts (HTTPS, localhost), getRandomValues everywhere. */
  function newUuid() {
    if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = [...bytes].map((byte) => byte.toString(16).padStart(2, '0')).join('');
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  const DECISION_LABELS = { paid: 'The gateway paid', 'not-paid': 'The gateway did not pay', refunded: 'The gateway refunded' };

  function reviewRow(review) {
    const id = review.paymentId;
    const attempt = review.attempt || {};
    // One id per form: pressing Resolve again after a timeout sends the same resolution, which applies once.
    const resolutionId = newUuid();
    const decision = el('select', {}, ...review.decisions.map((value) => el('option', { value, textContent: DECISION_LABELS[value] || value })));
    decision.setAttribute('aria-label', `Decision for ${id}`);
    const note = el('input', { type: 'text', maxLength: 500, placeholder: 'What the PSP confirmed (required)' });
    note.setAttribute('aria-label', `Note for ${id}`);
    const submit = el('button', { type: 'submit', className: 'primary', textContent: 'Resolve' });
    submit.setAttribute('aria-label', `Resolve review of ${id}`);
    const form = el('form', { className: 'resolve-form' }, decision, note, submit);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      if (note.value.trim() === '') {
        show('error', `Write a note for ${id}: what the gateway confirmed.`);
        return;
      }
      resolveReview(review, { resolutionId, attemptId: attempt.id, decision: decision.value, note: note.value.trim() });
    });
    const lastWord = review.lastWord ? `${review.lastWord.text}${review.lastWord.at ? ` (${review.lastWord.at})` : ''}` : 'unknown';
    return el(
      'tr',
      {},
      el('td', {}, el('span', { className: 'mono', textContent: id }), el('span', { className: 'reason', textContent: `${review.type}, ${review.accountId}, ${review.region} · ${review.status}` })),
      el('td', { textContent: `${review.amount} ${review.currency}` }),
      el('td', {}, el('span', { textContent: `#${attempt.number} at ${review.gatewayId}` }), el('span', { className: 'reason mono', textContent: attempt.id || '' })),
      el('td', {}, el('span', { textContent: review.since }), el('span', { className: 'reason', textContent: review.reason })),
      el('td', { textContent: lastWord }),
      el('td', {}, form),
    );
  }

  async function resolveReview(review, body) {
    const id = review.paymentId;
    const answer = await api('POST', `/v1/reviews/${encodeURIComponent(id)}/resolution`, body);
    if (answer.status === 202) {
      show('warning', `Resolution of ${id} recorded, but no orchestrator has applied it yet. Press Resolve again to learn its outcome.`);
      return;
    }
    if (!answer.ok) {
      show('error', `Resolving ${id} failed: ${describeError(answer)}`);
      return;
    }
    await loadReviews();
    const payment = answer.body.payment;
    const latest = payment.attempts[payment.attempts.length - 1];
    const next = payment.status === 'PENDING' ? `still PENDING, now at ${latest.gatewayId} (attempt ${latest.number})` : `now ${payment.status}`;
    show('info', `Review of ${id} resolved (${DECISION_LABELS[body.decision] || body.decision}): the payment is ${next}.`);
  }

  const pill = (text, kind) => el('span', { className: `pill ${kind}`, textContent: text });
  const breakerKind = { closed: 'ok', open: 'bad', 'half-open': 'mid' };

  function render() {
    $('rows').replaceChildren(...gateways.map(row));
  }

  function row(gateway) {
    const id = gateway.gatewayId;

    const availability = el('td', {}, gateway.available ? pill('available', 'ok') : pill('unavailable', 'bad'));
    if (!gateway.available && gateway.unavailableReason) availability.append(el('span', { className: 'reason', textContent: gateway.unavailableReason }));

    const weight = el('input', { type: 'number', min: 0, max: 1000, step: 1, value: String(gateway.rule.weight) });
    weight.setAttribute('aria-label', `Weight of ${id}`);
    const save = el('button', { type: 'button', textContent: 'Save' });
    save.setAttribute('aria-label', `Save weight of ${id}`);
    save.addEventListener('click', () => saveWeight(gateway, weight.value));

    const actions = el('div', { className: 'actions' });
    const cell = el('td', {}, actions);
    if (gateway.available) {
      const mark = el('button', { type: 'button', className: 'danger', textContent: 'Mark unavailable' });
      mark.addEventListener('click', () => {
        mark.disabled = true;
        cell.append(reasonForm(gateway, () => (mark.disabled = false)));
        cell.querySelector('input').focus();
      });
      actions.append(mark);
    } else {
      const mark = el('button', { type: 'button', textContent: 'Mark available' });
      mark.addEventListener('click', () => setAvailability(id, true));
      actions.append(mark);
    }

    return el(
      'tr',
      {},
      el('td', { className: 'id', textContent: id }),
      el('td', { textContent: gateway.rule.regions.join(', ') }),
      el('td', {}, el('div', { className: 'actions' }, weight, save)),
      availability,
      el('td', {}, pill(gateway.breaker, breakerKind[gateway.breaker] || 'unknown')),
      successCell(gateway.recentSuccess),
      el('td', { textContent: String(gateway.version) }),
      cell,
    );
  }

  /** Recent success rate over every orchestrator's window, with the counts behind it on hover. */
  function successCell(recent) {
    if (!recent) return el('td', { className: 'success', textContent: 'no recent attempts' });
    const percent = `${(recent.rate * 100).toFixed(1)} %`;
    const cell = el('td', { className: 'success', textContent: `${percent} of ${recent.attempts}` });
    cell.title = `Last ${Math.round(recent.windowSeconds / 60)} min: ${recent.successes} succeeded, ${recent.declines} declined, ${recent.failures} failed, ${recent.timeouts} timed out`;
    return cell;
  }

  /** The inline "why?" asked before marking a gateway unavailable. */
  function reasonForm(gateway, onCancel) {
    const id = gateway.gatewayId;
    const reason = el('input', { type: 'text', maxLength: 200, placeholder: 'Reason, e.g. PSP maintenance', required: true });
    reason.setAttribute('aria-label', `Reason for marking ${id} unavailable`);
    const confirm = el('button', { type: 'submit', className: 'danger', textContent: 'Confirm unavailable' });
    const cancel = el('button', { type: 'button', textContent: 'Cancel' });
    const form = el('form', { className: 'reason-form' }, reason, confirm, cancel);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      if (reason.value.trim() === '') {
        show('error', `Give a reason for marking ${id} unavailable.`);
        return;
      }
      setAvailability(id, false, reason.value.trim());
    });
    cancel.addEventListener('click', () => {
      form.remove();
      onCancel();
    });
    return form;
  }

  async function setAvailability(id, available, reason) {
    const answer = available
      ? await api('POST', `/v1/gateways/${encodeURIComponent(id)}/available`, {})
      : await api('POST', `/v1/gateways/${encodeURIComponent(id)}/unavailable`, { reason });
    const what = available ? `Mark ${id} available` : `Mark ${id} unavailable`;
    if (!answer.ok) {
      show('error', `${what} failed: ${describeError(answer)}`);
      return;
    }
    await load();
    const warnings = warningsOf(answer);
    show(warnings ? 'warning' : 'info', `${available ? `${id} is available again.` : `${id} is marked unavailable: ${reason}.`}${warnings ? `\n${warnings}` : ''}`);
  }

  async function saveWeight(gateway, value) {
    const id = gateway.gatewayId;
    const weight = Number(value);
    if (value === '' || !Number.isInteger(weight) || weight < 0 || weight > 1000) {
      show('error', `The weight of ${id} must be a whole number from 0 to 1000.`);
      return;
    }
    // The whole rule as this page last read it, with the new weight, based on that version.
    const answer = await api('PUT', `/v1/gateways/${encodeURIComponent(id)}`, { ...gateway.rule, weight }, { 'If-Match': `"${gateway.version}"` });
    if (answer.status === 412) {
      show('error', `Weight of ${id} not saved: someone changed ${id} since this page loaded it (412). Press Reload to see the current rule, then save again.`);
      return;
    }
    if (!answer.ok) {
      show('error', `Saving the weight of ${id} failed: ${describeError(answer)}`);
      return;
    }
    await load();
    const warnings = warningsOf(answer);
    show(warnings ? 'warning' : 'info', `Weight of ${id} is now ${weight} (version ${answer.body.version}).${warnings ? `\n${warnings}` : ''}`);
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('login').addEventListener('submit', async (event) => {
      event.preventDefault();
      const token = $('token').value.trim().replace(/^Bearer\s+/i, '');
      if (!token) return;
      sessionStorage.setItem(TOKEN_KEY, token);
      clearMessage();
      signedIn(token);
      await load();
    });
    $('reload').addEventListener('click', async () => {
      if (await load()) show('info', 'Reloaded.');
    });
    $('signout').addEventListener('click', () => {
      clearMessage();
      signedOut();
    });

    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) {
      signedIn(token);
      load();
    } else {
      signedOut();
    }
  });
})();

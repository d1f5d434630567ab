// Switchboard dashboard, the Messages dialog's send form: a text to a phone number or chat, sent at most
// once however often it is submitted (one Idempotency-Key per message). Plain browser JavaScript, no
// build step; uses what app.js shares as window.Switchboard, the dialog's view (messages.js,
// window.SwitchboardMessages) and the receipts in words (messages-thread.js,
// window.SwitchboardMessagesThread), and offers window.SwitchboardMessagesSend to the dialog.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const el = {
    form: $("send-form"),
    to: $("send-to"),
    text: $("send-text"),
    submit: $("send-submit"),
    error: $("send-error"),
    result: $("send-result"),
  };

  const state = {
    /** The Idempotency-Key of the message in the form: kept while its outcome is unknown, so a retry
     * (or a second click) cannot send it twice; a new message gets a new key. */
    draftKey: null,
    sending: false,
  };

  const sb = () => window.Switchboard;
  const dialog = () => window.SwitchboardMessages;
  const thread = () => window.SwitchboardMessagesThread;

  // ---- words ----

  function errorText(err) {
    if (!err || err.status === undefined) {
      // No answer: the send may or may not have happened. The key is kept, so sending again is safe.
      return "The server could not be reached. Sending again will not send the message twice.";
    }
    if (err.type === "INVALID_STATE") return "The account is not connected, so nothing was sent.";
    if (err.type === "SEND_QUEUE_FULL") {
      const after = err.data && err.data.retryAfter;
      return `Too many messages are waiting for this account; try again${after ? ` in ${after} s` : " shortly"}.`;
    }
    return `Not sent: ${err.message}`;
  }

  // ---- sending ----

  /** A random key (crypto.randomUUID needs a secure context; a dashboard on a LAN over http has none). */
  function newKey() {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return `dash-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
  }

  async function send(event) {
    event.preventDefault();
    if (state.sending) return;
    el.error.textContent = "";
    el.result.textContent = "";
    const to = el.to.value.trim();
    const text = el.text.value;
    if (!to) {
      el.error.textContent = "Say who the message is for: a phone number or a chat id.";
      el.to.focus();
      return;
    }
    if (!text.trim()) {
      el.error.textContent = "Write a message first.";
      el.text.focus();
      return;
    }
    const gen = dialog().generation();
    const accountId = dialog().accountId();
    if (!state.draftKey) state.draftKey = newKey();
    state.sending = true;
    dialog().renderAccountState();
    try {
      const r = await sb().api(
        "POST",
        `${dialog().accountPath()}/messages`,
        { to, type: "text", text },
        {
          "Idempotency-Key": state.draftKey,
        },
      );
      state.draftKey = null;
      if (gen !== dialog().generation() || accountId !== dialog().accountId()) return;
      thread().noteAck(r.id, r.status);
      el.result.dataset.messageId = r.id || "";
      el.result.dataset.status = r.status || "";
      el.result.textContent = `${thread().ackLabel(r.status) || r.status}${r.duplicate ? " (already sent before)" : ""}: message ${r.id}.`;
      el.text.value = "";
      dialog().showChat(dialog().chatIdOf(to));
      await dialog().refresh();
    } catch (err) {
      // A definite answer (4xx) settles this message: a retry would answer the same, so it gets a new
      // key. Without an answer, or on a server error, the key stays for a safe retry.
      if (err && err.status !== undefined && err.status < 500) state.draftKey = null;
      if (gen === dialog().generation()) el.error.textContent = errorText(err);
    } finally {
      state.sending = false;
      if (gen === dialog().generation()) dialog().renderAccountState();
    }
  }

  // ---- wiring ----

  el.form.addEventListener("submit", send);
  // Another message (or another recipient) is another send: it must not reuse a pending key.
  el.to.addEventListener("input", () => (state.draftKey = null));
  el.text.addEventListener("input", () => (state.draftKey = null));

  window.SwitchboardMessagesSend = {
    /** Another account: an empty form, and the next message gets a new key. */
    clearDraft() {
      state.draftKey = null;
      el.to.value = "";
      el.text.value = "";
    },
    /** Forgets what the last send said (the dialog opens anew). */
    clearOutcome() {
      el.error.textContent = "";
      el.result.textContent = "";
    },
    /** Addresses the form to a chosen chat: another recipient, so another key. */
    address(chatId) {
      el.to.value = chatId;
      state.draftKey = null;
    },
    /** Sending needs a connected account and no send under way. */
    allowSending(connected) {
      el.submit.disabled = state.sending || !connected;
    },
    focus: () => el.to.focus(),
  };
})();

// Switchboard dashboard, the QR dialog that links a new account: the account's live QR code, what its
// session is doing meanwhile, and a retry when it failed. Plain browser JavaScript, no build step; reads
// the accounts, their QR codes and their words from window.SwitchboardAccounts (accounts.js) and offers
// window.SwitchboardQrDialog to it.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const el = {
    connectButton: $("connect-account"),
    accountsNotice: $("accounts-notice"),
    dialog: $("qr-dialog"),
    qrFrame: $("qr-frame"),
    qrImage: $("qr-image"),
    qrPlaceholder: $("qr-placeholder"),
    qrStatus: $("qr-status"),
    qrError: $("qr-error"),
    qrDetail: $("qr-detail"),
    qrRetry: $("qr-retry"),
    qrClose: $("qr-close"),
  };

  const state = {
    /** The account the dialog shows (null: closed). */
    accountId: null,
    /** Where keyboard focus goes when the dialog closes. */
    returnFocus: null,
    qrFetchedFor: null,
  };

  const sb = () => window.Switchboard;
  const accounts = () => window.SwitchboardAccounts;

  function open(id) {
    if (!el.dialog.open) {
      const active = document.activeElement;
      state.returnFocus = active && active !== document.body && !active.disabled ? active : el.connectButton;
    }
    state.accountId = id;
    state.qrFetchedFor = null;
    el.dialog.dataset.accountId = id;
    el.qrError.textContent = "";
    el.qrStatus.textContent = "";
    render();
    if (!el.dialog.open) el.dialog.showModal();
  }

  function close() {
    state.accountId = null;
    delete el.dialog.dataset.accountId;
    if (el.dialog.open) el.dialog.close();
  }

  function showQrImage(qr) {
    if (el.qrImage.getAttribute("src") !== qr.dataUrl) el.qrImage.src = qr.dataUrl;
    el.qrImage.dataset.seq = String(qr.seq ?? "");
    el.qrImage.hidden = false;
    el.qrPlaceholder.hidden = true;
  }

  function showPlaceholder(text) {
    el.qrImage.hidden = true;
    el.qrImage.removeAttribute("src");
    el.qrPlaceholder.hidden = false;
    el.qrPlaceholder.textContent = text;
  }

  function setDialogStatus(text) {
    // Only real changes go to the live region: a refreshed QR is not worth an announcement.
    if (el.qrStatus.textContent !== text) el.qrStatus.textContent = text;
  }

  function render() {
    const id = state.accountId;
    if (!id) return;
    const a = accounts().account(id) || { id, status: "initializing" };
    const qr = accounts().qrOf(id);
    el.qrFrame.dataset.state = a.status;
    el.qrRetry.hidden = true;
    el.qrError.textContent = "";
    el.qrDetail.textContent = "";
    switch (a.status) {
      case "connected":
        el.accountsNotice.textContent = `${accounts().accountLabel(a)} is connected${a.phoneNumber ? ` as ${a.phoneNumber}` : ""}.`;
        close();
        return;
      case "qr_scanning":
        if (qr) {
          showQrImage(qr);
          setDialogStatus("Scan the code with WhatsApp. It refreshes by itself.");
        } else {
          showPlaceholder("Loading the QR code…");
          fetchQr(id);
        }
        return;
      case "authenticated":
        showPlaceholder("Scanned. Signing in…");
        setDialogStatus("Scanned. Signing in to WhatsApp…");
        return;
      case "disconnected":
        showPlaceholder("Connection lost. Reconnecting…");
        setDialogStatus(accounts().reasonText(a.reason, a.message) || "Connection lost. Reconnecting…");
        return;
      case "failed":
      case "logged_out":
      case "stopped": {
        showPlaceholder(accounts().statusText(a.status));
        setDialogStatus("");
        el.qrError.textContent =
          a.status === "failed"
            ? accounts().reasonText(a.reason, a.message) || "The session failed"
            : a.status === "logged_out"
              ? "The phone unlinked this device."
              : "This account is stopped.";
        if (a.message && a.message !== el.qrError.textContent)
          el.qrDetail.textContent = `Details: ${a.message}`;
        el.qrRetry.hidden = false;
        return;
      }
      default:
        if (qr) showQrImage(qr);
        else showPlaceholder("Starting a WhatsApp session…");
        setDialogStatus("Starting a WhatsApp session…");
    }
  }

  /** A QR broadcast before this page subscribed (or before the account was known) is fetched once. */
  async function fetchQr(id) {
    if (state.qrFetchedFor === id) return;
    state.qrFetchedFor = id;
    try {
      const qr = await sb().api("GET", `/api/v1/accounts/${encodeURIComponent(id)}/qr`);
      if (!accounts().qrOf(id)) accounts().setQr(id, qr);
    } catch {
      // 409 (not scanning any more) is fine: the status event that follows renders the dialog.
    }
  }

  /** The account shown was removed. */
  function removed(id) {
    if (state.accountId !== id) return;
    el.qrError.textContent = "This account was removed.";
    el.qrImage.hidden = true;
  }

  // ---- wiring ----

  el.qrClose.addEventListener("click", close);
  el.dialog.addEventListener("close", () => {
    // The browser sends "close" a moment later: the dialog may have been opened again meanwhile.
    if (el.dialog.open) return;
    state.accountId = null;
    // Back to the button that opened the dialog (the browser cannot: "Connect" was disabled while the
    // account was created, and a row's "Show QR" may have been replaced since).
    const target = state.returnFocus && state.returnFocus.isConnected ? state.returnFocus : el.connectButton;
    state.returnFocus = null;
    target.focus();
  });
  el.qrRetry.addEventListener("click", () => {
    // The button hides itself once the session restarts: keep keyboard focus inside the dialog.
    el.qrClose.focus();
    if (state.accountId) accounts().restart(state.accountId, false);
  });

  window.SwitchboardQrDialog = {
    open,
    close,
    /** Shows the account's news, when it is the one shown. */
    refresh: (id) => {
      if (state.accountId === id) render();
    },
    removed,
    shows: (id) => state.accountId === id,
  };
})();

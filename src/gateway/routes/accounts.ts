// Account routes: each places the params of its `accounts.*` action (src/accounts/params.ts) in the
// path or body, so REST, the services and OpenAPI validate the same rules.
import { ACCOUNT_PARAMS, type Rules } from "../../accounts/params.ts";
import { METRICS } from "../metrics.ts";
import { fieldOf, placed, v1, type RouteSpec } from "../route-spec.ts";

const PATH = { accountId: "path" } as const;
const account = placed(ACCOUNT_PARAMS.account, PATH);

/** `names` of `rules`, each required (a simulated phone's REST call says what it does). */
function required(rules: Rules, names: string[]): Rules {
  return Object.fromEntries(names.map((n) => [n, { ...rules[n], optional: false }]));
}

/** `names` of `rules`, each optional. */
function optional(rules: Rules, names: string[]): Rules {
  return Object.fromEntries(names.map((n) => [n, { ...rules[n], optional: true }]));
}

const SIMULATIONS: Record<string, { params: string[]; optional?: string[]; summary: string }> = {
  scan: { params: ["phoneNumber"], summary: "the phone scans the QR" },
  disconnect: { params: [], summary: "the connection drops (the engine reconnects)" },
  logout: { params: [], summary: "the phone unlinks the device" },
  message: {
    params: ["from"],
    optional: ["text", "type", "author", "quotedId", "media", "location", "emoji"],
    summary: "a message arrives (text, or media, a reply, a group message, a location, a reaction)",
  },
};

export const ACCOUNT_ROUTES: RouteSpec[] = [
  v1({
    id: "createAccount",
    method: "POST",
    path: "/accounts",
    action: "accounts.create",
    params: {
      ...placed(ACCOUNT_PARAMS.create),
      idempotencyKey: { ...ACCOUNT_PARAMS.create.idempotencyKey, in: "header", header: "Idempotency-Key" },
    },
    status: 201,
    location: (account) =>
      fieldOf(account, "id") ? `/api/v1/accounts/${fieldOf(account, "id")}` : undefined,
    summary:
      "Create an account; its session starts at once (status `initializing`). With an Idempotency-Key header, " +
      "one account per key: a repeat answers that account (header `Idempotent-Replayed: true`)",
    tag: "accounts",
    errors: [409, 503],
  }),
  v1({
    id: "listAccounts",
    method: "GET",
    path: "/accounts",
    action: "accounts.list",
    params: placed(ACCOUNT_PARAMS.list, {}, "query"),
    summary:
      "List the accounts of the workspace, oldest first: `{items, nextCursor}` (`nextCursor` null on the last page)",
    tag: "accounts",
  }),
  v1({
    id: "getAccount",
    method: "GET",
    path: "/accounts/:accountId",
    action: "accounts.get",
    params: account,
    summary: "Get an account",
    tag: "accounts",
    errors: [404],
  }),
  v1({
    id: "getQr",
    method: "GET",
    path: "/accounts/:accountId/qr",
    action: "accounts.qr",
    params: {
      ...account,
      format: {
        in: "query",
        type: "enum",
        values: ["json", "png"],
        optional: true,
        description: "`png` answers the QR image itself",
      },
    },
    gatewayOnly: ["format"],
    formats: {
      png: {
        type: "image/png",
        encode: (qr) => {
          const dataUrl = fieldOf(qr, "dataUrl");
          return dataUrl ? Buffer.from(dataUrl.replace(/^data:image\/png;base64,/, ""), "base64") : undefined;
        },
      },
    },
    counter: METRICS.qrServed,
    summary: "Current QR code of a scanning account (409 when the account is not scanning)",
    tag: "accounts",
    produces: ["application/json", "image/png"],
    errors: [404, 409],
  }),
  v1({
    id: "requestPairingCode",
    method: "POST",
    path: "/accounts/:accountId/pairing-code",
    action: "accounts.pairingCode",
    params: placed(ACCOUNT_PARAMS.pairingCode, PATH),
    summary: "Request a pairing code (linking by phone number instead of QR)",
    tag: "accounts",
    errors: [404, 409],
  }),
  v1({
    id: "restartAccount",
    method: "POST",
    path: "/accounts/:accountId/restart",
    action: "accounts.restart",
    params: account,
    summary: "Restart the session of an account",
    tag: "accounts",
    errors: [404, 409, 503],
  }),
  v1({
    id: "logoutAccount",
    method: "POST",
    path: "/accounts/:accountId/logout",
    action: "accounts.logout",
    params: account,
    summary: "Unlink the device and delete its auth state",
    tag: "accounts",
    errors: [404, 409, 503],
  }),
  v1({
    id: "deleteAccount",
    method: "DELETE",
    path: "/accounts/:accountId",
    action: "accounts.remove",
    params: account,
    summary: "Stop the session and delete the account",
    tag: "accounts",
    errors: [404, 409, 503],
  }),
  v1({
    // The id of the days when it sent text only (OpenAPI clients generated from it keep working).
    id: "sendText",
    method: "POST",
    path: "/accounts/:accountId/messages",
    action: "accounts.sendMessage",
    params: {
      ...placed(ACCOUNT_PARAMS.sendMessage, PATH),
      idempotencyKey: {
        ...ACCOUNT_PARAMS.sendMessage.idempotencyKey,
        in: "header",
        header: "Idempotency-Key",
      },
    },
    mediaBody: true,
    summary:
      "Send a message (text, image, document, audio, video, location, contact, reaction) from a connected account; " +
      "`{id, status, at}`. With an Idempotency-Key header (or clientId), at most once per key within 24 h",
    tag: "accounts",
    // 504 SEND_DEADLINE_EXCEEDED: a send without a key not handed to WhatsApp in time (never sent).
    errors: [404, 409, 413, 503, 504],
  }),
  v1({
    id: "getMessage",
    method: "GET",
    path: "/accounts/:accountId/messages/:messageId",
    action: "accounts.message",
    params: placed(ACCOUNT_PARAMS.message, { accountId: "path", messageId: "path" }),
    summary: "The last known status of a message this account sent (sent, delivered, read, played, failed)",
    tag: "accounts",
    errors: [404],
  }),
  v1({
    id: "getMessageMedia",
    method: "GET",
    path: "/accounts/:accountId/messages/:messageId/media",
    action: "accounts.media",
    params: placed(ACCOUNT_PARAMS.message, { accountId: "path", messageId: "path" }),
    summary:
      "The bytes of a received media message (its `mediaUrl`), with its Content-Type; kept for INCOMING_MEDIA_RETENTION_MS " +
      "(404 NOT_FOUND when unknown or expired)",
    tag: "accounts",
    // The file's own media type (image/jpeg, application/pdf, …).
    produces: ["*/*"],
    errors: [404],
  }),
  // ---- simulated engine only ----
  ...Object.entries(SIMULATIONS).map(([action, sim]) =>
    v1({
      id: `simulate${action[0].toUpperCase()}${action.slice(1)}`,
      method: "POST",
      path: `/accounts/:accountId/simulate/${action}`,
      action: "accounts.simulate",
      fixed: { action },
      params: {
        ...account,
        ...placed({
          ...required(ACCOUNT_PARAMS.simulate, sim.params),
          ...optional(ACCOUNT_PARAMS.simulate, sim.optional ?? []),
        }),
      },
      summary: `Simulated engine: ${sim.summary} (422 on other engines)`,
      tag: "simulation",
      errors: [404, 409],
    }),
  ),
];

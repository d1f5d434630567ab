import { strict as assert } from "node:assert";
import {
  INVALID_TOKEN_MESSAGE,
  MISSING_TOKEN_MESSAGE,
  authenticateSocket,
} from "../../../src/io/socket-auth.ts";
import type { Caller } from "../../../src/gateway/keys.ts";
import { Errors, type Logger } from "moleculer";
import { handshakeError, prepareSocketCall } from "../../../src/io/socket-calls.ts";
import { UnauthorizedError } from "../../../src/errors.ts";
import { refusal } from "../../../src/io/socket-auth.ts";

const callers = new Map<string, Caller>([
  ["k-good", { kind: "workspace", workspaceId: "w1", keyId: "key1" }],
  ["admin-secret", { kind: "admin", keyId: "admin" }],
]);
const resolveKey = async (t: string) => callers.get(t) ?? null;

describe("io socket auth", () => {
  it("accepts a workspace key and gives its workspace", async () => {
    assert.deepEqual(await authenticateSocket({ token: "k-good" }, resolveKey), {
      workspaceId: "w1",
      keyId: "key1",
      admin: false,
    });
  });

  it("refuses a missing or unknown key with a clear message and a stable type", async () => {
    await assert.rejects(authenticateSocket(undefined, resolveKey), (e: any) => {
      return e.message === MISSING_TOKEN_MESSAGE && e.data.type === "UNAUTHORIZED" && e.data.code === 401;
    });
    await assert.rejects(authenticateSocket({ token: "nope" }, resolveKey), {
      message: INVALID_TOKEN_MESSAGE,
    });
  });

  it("lets the admin key connect to a named workspace only", async () => {
    assert.deepEqual(await authenticateSocket({ token: "admin-secret", workspaceId: "w9" }, resolveKey), {
      workspaceId: "w9",
      keyId: "admin",
      admin: true,
    });
    await assert.rejects(authenticateSocket({ token: "admin-secret" }, resolveKey), /must name a workspace/);
  });
});

describe("io socket calls", () => {
  it("forces the socket's workspace over whatever the client sent", () => {
    assert.deepEqual(prepareSocketCall("accounts.get", { accountId: "a", workspaceId: "other" }, "w1"), {
      action: "accounts.get",
      params: { accountId: "a", workspaceId: "w1" },
    });
    assert.deepEqual(prepareSocketCall("accounts.list", undefined, "w1").params, { workspaceId: "w1" });
  });

  it("takes `id` for `accountId` (sockets written before the rename); `accountId` wins when both come", () => {
    assert.deepEqual(prepareSocketCall("accounts.get", { id: "a" }, "w1").params, {
      accountId: "a",
      workspaceId: "w1",
    });
    assert.deepEqual(prepareSocketCall("accounts.get", { id: "a", accountId: "b" }, "w1").params, {
      id: "a",
      accountId: "b",
      workspaceId: "w1",
    });
  });

  it("refuses actions outside the whitelist and non-object params", () => {
    assert.throws(() => prepareSocketCall("session.start", {}, "w1"), /cannot be called over Socket\.IO/);
    assert.throws(() => prepareSocketCall("api.broadcast", {}, "w1"), { code: 403 });
    assert.throws(() => prepareSocketCall("accounts.list", [1], "w1"), { code: 422 });
  });

  it("a refused handshake carries the contract's shape in `data`, whatever failed; a driver's words stay here", () => {
    const logged: unknown[][] = [];
    const logger = { error: (...a: unknown[]) => logged.push(a), warn: () => undefined } as unknown as Logger;
    const starting = handshakeError(
      new Errors.MoleculerRetryableError("Gateway is starting, retry", 503, "SERVICE_UNAVAILABLE"),
      logger,
    ) as Error & { data: { code: number; type: string } };
    assert.deepEqual(
      [starting.message, starting.data.code, starting.data.type],
      ["Gateway is starting, retry", 503, "SERVICE_UNAVAILABLE"],
    );
    const raw = handshakeError(new Error("connect ECONNREFUSED 10.1.2.3:27017"), logger) as Error & {
      data: { code: number; type: string };
    };
    assert.deepEqual([raw.message, raw.data.code, raw.data.type], ["Internal error", 500, "INTERNAL_ERROR"]);
    assert.equal(logged.length, 1, "logged on the gateway");
    const refused = refusal(new UnauthorizedError("Invalid API key"));
    assert.equal(handshakeError(refused, logger), refused, "a refusal is sent as it is");
  });
});

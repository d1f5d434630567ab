import { strict as assert } from "node:assert";
import {
  INVALID_TOKEN_MESSAGE,
  MISSING_TOKEN_MESSAGE,
  authenticateSocket,
} from "../../../src/io/socket-auth.ts";
import { prepareSocketCall } from "../../../src/io/socket-calls.ts";

const keys = new Map([["k-good", { workspaceId: "w1", keyId: "key1" }]]);
const opts = { resolveKey: async (t: string) => keys.get(t) ?? null, adminApiKey: "admin-secret" };

describe("io socket auth", () => {
  it("accepts a workspace key and gives its workspace", async () => {
    assert.deepEqual(await authenticateSocket({ token: "k-good" }, opts), {
      workspaceId: "w1",
      keyId: "key1",
      admin: false,
    });
  });

  it("refuses a missing or unknown key with a clear message and a stable type", async () => {
    await assert.rejects(authenticateSocket(undefined, opts), (e: any) => {
      return e.message === MISSING_TOKEN_MESSAGE && e.data.type === "UNAUTHORIZED" && e.data.code === 401;
    });
    await assert.rejects(authenticateSocket({ token: "nope" }, opts), { message: INVALID_TOKEN_MESSAGE });
  });

  it("lets the admin key connect to a named workspace only", async () => {
    assert.deepEqual(await authenticateSocket({ token: "admin-secret", workspaceId: "w9" }, opts), {
      workspaceId: "w9",
      admin: true,
    });
    await assert.rejects(authenticateSocket({ token: "admin-secret" }, opts), /must name a workspace/);
  });

  it("does not treat an empty admin key as a key", async () => {
    await assert.rejects(authenticateSocket({ token: "x" }, { ...opts, adminApiKey: "" }), {
      message: INVALID_TOKEN_MESSAGE,
    });
  });
});

describe("io socket calls", () => {
  it("forces the socket's workspace over whatever the client sent", () => {
    assert.deepEqual(prepareSocketCall("accounts.get", { id: "a", workspaceId: "other" }, "w1"), {
      action: "accounts.get",
      params: { id: "a", workspaceId: "w1" },
    });
    assert.deepEqual(prepareSocketCall("accounts.list", undefined, "w1").params, { workspaceId: "w1" });
  });

  it("refuses actions outside the whitelist and non-object params", () => {
    assert.throws(() => prepareSocketCall("session.start", {}, "w1"), /cannot be called over Socket\.IO/);
    assert.throws(() => prepareSocketCall("api.broadcast", {}, "w1"), { code: 403 });
    assert.throws(() => prepareSocketCall("accounts.list", [1], "w1"), { code: 422 });
  });
});

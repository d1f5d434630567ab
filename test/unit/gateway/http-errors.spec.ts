// The contract's error for a call no node can serve: an account's `session.*` action while every
// worker is down or restarting is a 503 SERVICE_UNAVAILABLE, not Moleculer's 404 (read as "no such
// account" by a client).
import { strict as assert } from "node:assert";
import { Errors } from "moleculer";
import { toContractError } from "../../../src/gateway/http-errors.ts";

const logger = { error() {}, warn() {}, info() {}, debug() {} } as never;
const req = { method: "POST", url: "/api/v1/accounts/acc_1/restart" } as never;

describe("gateway: errors of calls no node can serve", () => {
  it("a service not found or not available is 503 SERVICE_UNAVAILABLE, naming the action", () => {
    for (const err of [
      new Errors.ServiceNotFoundError({ action: "session.restart" }),
      new Errors.ServiceNotAvailableError({ action: "session.qr" }),
    ]) {
      const e = toContractError(req, err, logger);
      assert.equal(e.code, 503);
      assert.equal(e.type, "SERVICE_UNAVAILABLE");
      assert.match(e.message, /No node can serve 'session\.(restart|qr)'/);
    }
  });

  it("other errors keep their code and type", () => {
    const e = toContractError(req, new Errors.MoleculerClientError("nope", 404, "NOT_FOUND"), logger);
    assert.deepEqual([e.code, e.type], [404, "NOT_FOUND"]);
  });
});

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

  it("a body-parser failure is a 4xx whatever code it carries (a stream's own string code too)", () => {
    const aborted = Object.assign(new Error("request aborted"), {
      code: "ECONNABORTED",
      type: "request.aborted",
    });
    assert.deepEqual(
      [toContractError(req, aborted, logger).code, toContractError(req, aborted, logger).type],
      [400, "BAD_REQUEST"],
    );
    const gzip = Object.assign(new Error('unsupported content encoding "gzip"'), {
      code: 415,
      type: "encoding.unsupported",
    });
    assert.deepEqual(
      [toContractError(req, gzip, logger).code, toContractError(req, gzip, logger).type],
      [415, "UNSUPPORTED_MEDIA_TYPE"],
    );
  });

  it("a database outage is 503 DATABASE_UNAVAILABLE without the driver's message (it names the server)", () => {
    const err = Object.assign(new Error("connect ECONNREFUSED 10.0.0.5:27017"), {
      name: "MongoServerSelectionError",
    });
    const e = toContractError(req, err, logger);
    assert.deepEqual([e.code, e.type], [503, "DATABASE_UNAVAILABLE"]);
    assert.doesNotMatch(JSON.stringify(e), /10\.0\.0\.5|ECONNREFUSED/);
  });
});

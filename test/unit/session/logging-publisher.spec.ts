// A log write that fails because the database is away: a session's publisher rejects (its pipeline
// waits for the database and logs the event then), a service's goes on with the event unlogged; any
// other failure is logged and the event goes on unlogged either way.
import { strict as assert } from "node:assert";
import { DatabaseUnavailableError } from "../../../src/errors.ts";
import { loggingPublisher } from "../../../src/session/event-publisher.ts";
import type { EventsRepo } from "../../../src/store/events-repo.ts";

const quiet = { error() {}, warn() {}, info() {}, debug() {} } as never;
const payload = { workspaceId: "ws", accountId: "acc_1", status: "connected" };

function failingLog(err: Error): EventsRepo {
  return {
    append: async () => {
      throw err;
    },
  } as unknown as EventsRepo;
}

describe("session/event-publisher: a failed log write", () => {
  const away = Object.assign(new Error("connect ECONNREFUSED 10.0.0.5:27017"), {
    name: "MongoServerSelectionError",
  });

  it("a session's publisher rejects while the database is away; a service's resolves unlogged", async () => {
    const strict = loggingPublisher(failingLog(away), () => undefined, quiet, { throwWhenUnavailable: true });
    await assert.rejects(strict.record("account.status", payload), DatabaseUnavailableError);
    const lenient = loggingPublisher(failingLog(away), () => undefined, quiet);
    assert.deepEqual(await lenient.record("account.status", payload), payload);
  });

  it("any other failure leaves the event unlogged, for both", async () => {
    const strict = loggingPublisher(failingLog(new Error("document too large")), () => undefined, quiet, {
      throwWhenUnavailable: true,
    });
    assert.deepEqual(await strict.record("account.status", payload), payload);
  });
});

// Switchboard's errors thrown on one node are instances of their class on the caller's node, after
// the trip over NATS, with their code, type and data.
import { strict as assert } from "node:assert";
import { Errors } from "moleculer";
import { NotOwnerError, ValidationError } from "../../../src/errors.ts";
import { TestCluster } from "../../support/cluster.ts";

describe("errors over NATS", () => {
  let cluster: TestCluster;
  afterEach(async () => cluster?.stop());

  it("a NotOwnerError and a ValidationError thrown on a remote node are instanceof their class", async () => {
    cluster = new TestCluster({}, "errs");
    cluster.node("thrower", [
      {
        name: "thrower",
        actions: {
          notOwner: () => {
            throw new NotOwnerError("acc_1", "thrower", { epoch: 7 });
          },
          invalid: () => {
            throw new ValidationError("bad input", { field: "to" });
          },
          plain: () => {
            throw new Error("boom");
          },
        },
      },
    ]);
    const caller = cluster.node("caller", []);
    await cluster.start();
    await caller.waitForServices(["thrower"], 10000);
    const err = await caller.call("thrower.notOwner").catch((e: unknown) => e);
    assert.ok(err instanceof NotOwnerError, `got ${(err as Error).constructor.name}`);
    assert.ok(err instanceof Errors.MoleculerRetryableError);
    assert.equal(err.code, 409);
    assert.equal(err.type, "NOT_OWNER");
    assert.deepEqual(err.data, { epoch: 7 });
    assert.equal(err.retryable, true);
    const invalid = await caller.call("thrower.invalid").catch((e: unknown) => e);
    assert.ok(invalid instanceof ValidationError);
    assert.deepEqual((invalid as ValidationError).data, { field: "to" });
    const plain = await caller.call("thrower.plain").catch((e: unknown) => e);
    assert.ok(!(plain instanceof NotOwnerError) && plain instanceof Error, "other errors as before");
  });
});

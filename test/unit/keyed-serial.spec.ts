import { strict as assert } from "node:assert";
import { KeyedSerial } from "../../src/keyed-serial.ts";

/** A promise and the functions that settle it. */
function deferred<T = void>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe("KeyedSerial", () => {
  it("runs one key's operations one after another, in the order they were started", async () => {
    const serial = new KeyedSerial();
    const log: string[] = [];
    const first = deferred();
    const a = serial.run("k", async () => {
      log.push("a start");
      await first.promise;
      log.push("a end");
      return 1;
    });
    const b = serial.run("k", async () => {
      log.push("b");
      return 2;
    });
    await Promise.resolve();
    assert.deepEqual(log, ["a start"]);
    first.resolve();
    assert.deepEqual(await Promise.all([a, b]), [1, 2]);
    assert.deepEqual(log, ["a start", "a end", "b"]);
  });

  it("does not hold another key's operation behind a slow one", async () => {
    const serial = new KeyedSerial();
    const slow = deferred();
    const a = serial.run("a", () => slow.promise);
    assert.equal(await serial.run("b", async () => "b done"), "b done");
    slow.resolve();
    await a;
  });

  it("a failed operation fails its own caller only; the next one still runs", async () => {
    const serial = new KeyedSerial();
    const failed = serial.run("k", () => Promise.reject(new Error("boom")));
    const next = serial.run("k", async () => "ran");
    await assert.rejects(failed, /boom/);
    assert.equal(await next, "ran");
  });

  it("forgets a key once its last operation has settled", async () => {
    const serial = new KeyedSerial();
    await Promise.all([serial.run("a", async () => 1), serial.run("b", async () => 2)]);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(serial.size, 0);
  });
});

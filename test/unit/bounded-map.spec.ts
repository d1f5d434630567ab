import { strict as assert } from "node:assert";
import { BoundedMap } from "../../src/bounded-map.ts";

describe("BoundedMap", () => {
  it("drops the key set longest ago when a new key would pass the bound", () => {
    const map = new BoundedMap<string, number>(3);
    for (const [i, key] of ["a", "b", "c", "d"].entries()) map.set(key, i);
    assert.deepEqual(
      [...map],
      [
        ["b", 1],
        ["c", 2],
        ["d", 3],
      ],
    );
  });

  it("makes a key set again the newest, without dropping another", () => {
    const map = new BoundedMap<string, number>(3);
    map.set("a", 1).set("b", 2).set("c", 3);
    map.set("a", 10);
    assert.deepEqual([...map.keys()], ["b", "c", "a"]);
    map.set("d", 4);
    assert.deepEqual(
      [...map],
      [
        ["c", 3],
        ["a", 10],
        ["d", 4],
      ],
    );
  });

  it("does not reorder on reads, and a deleted key frees its place", () => {
    const map = new BoundedMap<string, number>(2);
    map.set("a", 1).set("b", 2);
    assert.equal(map.get("a"), 1);
    map.set("c", 3);
    assert.deepEqual([...map.keys()], ["b", "c"]);
    map.delete("b");
    map.set("d", 4);
    assert.deepEqual([...map.keys()], ["c", "d"]);
  });

  it("refuses a bound that is not a positive integer", () => {
    for (const max of [0, -1, 1.5, Number.NaN])
      assert.throws(() => new BoundedMap(max), /max must be a positive integer/);
  });
});

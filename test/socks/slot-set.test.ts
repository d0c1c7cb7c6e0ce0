import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { SlotSet } from "../../src/socks/slot-set.js";

test("SlotSet behaves like a Set under random adds and deletes", () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.boolean(), fc.nat(19)), { maxLength: 200 }), (ops) => {
      const items = Array.from({ length: 20 }, (_, id) => ({ id, slot: -1 }));
      const set = new SlotSet<(typeof items)[number]>();
      const ref = new Set<(typeof items)[number]>();
      for (const [add, i] of ops) {
        const item = items[i]!;
        if (add) {
          set.add(item);
          ref.add(item);
        } else assert.equal(set.delete(item), ref.delete(item));
        assert.equal(set.size, ref.size);
        for (const x of items) assert.equal(set.has(x), ref.has(x));
      }
      assert.deepEqual(new Set(set), ref);
    }),
  );
});

test("SlotSet iterates over a copy: deleting while iterating visits every item once", () => {
  const items = Array.from({ length: 5 }, (_, id) => ({ id, slot: -1 }));
  const set = new SlotSet<(typeof items)[number]>();
  for (const x of items) set.add(x);
  const seen: number[] = [];
  for (const x of set) {
    seen.push(x.id);
    set.delete(x);
  }
  assert.deepEqual(seen.sort(), [0, 1, 2, 3, 4]);
  assert.equal(set.size, 0);
  assert.ok(items.every((x) => x.slot === -1));
});

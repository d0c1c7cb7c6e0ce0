import assert from "node:assert/strict";
import { test } from "node:test";
import { nextReadSize, READ_SIZES } from "../../src/socks/relay.js";

const [small, medium, bulk] = READ_SIZES;

test("read size: a full read moves one size up, never past the largest", () => {
  assert.equal(nextReadSize(small, small), medium);
  assert.equal(nextReadSize(medium, medium), bulk);
  assert.equal(nextReadSize(bulk, bulk), bulk);
});

test("read size: a partial read goes down to the smallest that would have held it", () => {
  assert.equal(nextReadSize(small, 100), small);
  assert.equal(nextReadSize(medium, 100), small);
  assert.equal(nextReadSize(medium, small + 1), medium);
  assert.equal(nextReadSize(bulk, 10), small);
  assert.equal(nextReadSize(bulk, medium - 1), medium);
});

test("read size: the largest is kept only while reads fill it (a leg gone quiet after bulk lets it go)", () => {
  assert.equal(nextReadSize(bulk, bulk - 1), medium);
  assert.equal(nextReadSize(bulk, medium + 1), medium);
});

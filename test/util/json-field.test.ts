import assert from "node:assert/strict";
import { test } from "node:test";
import { jsonField } from "../../src/util/log.js";

/** jsonField quotes most values as they are; whatever it writes must be what JSON.stringify writes. */

const VALUES = [
  "",
  "example.com:443",
  "[2001:db8::1]:80",
  'quote " inside',
  "back\\slash",
  "new\nline and tab\t",
  "nul \u0000 and unit separator \u001f",
  "DEL \u007f, NBSP \u00a0, LS \u2028, PS \u2029",
  "café, Straße, 東京",
  "emoji 😀 (a surrogate pair)",
  "lone high \ud800 surrogate",
  "lone low \udfff surrogate",
];

test("jsonField writes exactly what JSON.stringify writes, and the line parses back", () => {
  for (const value of VALUES) {
    const field = jsonField(',"destination":', value);
    assert.equal(field, `,"destination":${JSON.stringify(value)}`, JSON.stringify(value));
    const parsed = JSON.parse(`{"id":1${field}}`) as { destination: string };
    assert.equal(parsed.destination, value);
  }
});

test("jsonField leaves an absent value out", () => {
  assert.equal(jsonField(',"user":', undefined), "");
});

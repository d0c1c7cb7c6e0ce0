import assert from "node:assert/strict";
import { test } from "node:test";
import { compileLabelSelector } from "../fakes/hetzner/label-selector.js";

/** The fake's label selector must behave like the documented one, or the client tests prove nothing. */

test("label selector expressions: equality, inequality, presence, absence, sets; comma means AND", () => {
  const l = { "managed-by": "wg-egress", env: "prod", tier: "exit" };
  const yes = [
    "managed-by=wg-egress",
    "managed-by==wg-egress",
    "env!=dev",
    "tier",
    "!missing",
    "env in (prod,dev)",
    "env notin (dev)",
    "managed-by=wg-egress,env=prod,!x",
  ];
  const no = [
    "managed-by=other",
    "env!=prod",
    "missing",
    "!tier",
    "env in (dev)",
    "env notin (prod,dev)",
    "managed-by=wg-egress,env=dev",
  ];
  for (const s of yes) assert.equal(compileLabelSelector(s)(l), true, s);
  for (const s of no) assert.equal(compileLabelSelector(s)(l), false, s);
  assert.throws(() => compileLabelSelector("a=b=c"));
});

import assert from "node:assert/strict";
import { test } from "node:test";
import {
  asCidr,
  firewallRules,
  monthlyCost,
  sameRules,
  sshSourcesOf,
  summarizeRules,
} from "../../src/exit/providers/hetzner/plan.js";
import type { ServerType } from "../../src/exit/providers/hetzner/types.js";
import { UserError } from "../../src/util/errors.js";

const price = (location: string, gross: string) => ({
  location,
  price_hourly: { net: "0", gross: "0" },
  price_monthly: { net: (Number(gross) / 1.19).toFixed(4), gross },
});
const TYPE: ServerType = {
  id: 1,
  name: "cax11",
  description: "",
  cores: 2,
  memory: 4,
  disk: 40,
  architecture: "arm",
  deprecated: false,
  prices: [price("nbg1", "3.9151"), price("fsn1", "3.9151")],
};

test("firewall rules: WireGuard from anywhere, SSH only from the home address as /32", () => {
  const rules = firewallRules(["198.51.100.7"], 51820);
  assert.deepEqual(summarizeRules(rules), [
    "in udp 51820 from 0.0.0.0/0, ::/0",
    "in tcp 22 from 198.51.100.7/32",
  ]);
  assert.deepEqual(sshSourcesOf({ id: 1, name: "f", labels: {}, created: "", rules, applied_to: [] }), [
    "198.51.100.7/32",
  ]);
  assert.equal(asCidr("2001:db8::1"), "2001:db8::1/128");
  assert.equal(asCidr("10.0.0.0/8"), "10.0.0.0/8");
  assert.throws(() => firewallRules([], 51820), UserError);
});

test("rules compare equal regardless of order and descriptions, and differ when the home IP moved", () => {
  const a = firewallRules(["198.51.100.7"], 51820);
  const b = [...a].reverse().map((r) => ({ ...r, description: null }));
  assert.ok(sameRules(a, b));
  assert.ok(!sameRules(a, firewallRules(["198.51.100.8"], 51820)));
  assert.ok(!sameRules(a, firewallRules(["198.51.100.7"], 51821)));
  assert.ok(!sameRules(a, a.slice(1)));
});

test("monthly cost comes from the location's price; a location lacking the type lists those that have it", () => {
  assert.deepEqual(monthlyCost(TYPE, "fsn1"), { gross: 3.9151, net: 3.29, location: "fsn1" });
  assert.throws(
    () => monthlyCost(TYPE, "ash"),
    /cax11 is not available in location ash; locations that have it: fsn1, nbg1/,
  );
});

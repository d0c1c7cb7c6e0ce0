import assert from "node:assert/strict";
import { test } from "node:test";
import {
  asCidr,
  checkHomeSource,
  firewallRules,
  monthlyCost,
  sameRules,
  sshSourcesOf,
  summarizeRules,
} from "../../src/exit/providers/hetzner/plan.js";
import type { Pricing, ServerType } from "../../src/exit/providers/hetzner/types.js";
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

const PRICING: Pricing = {
  currency: "EUR",
  vat_rate: "19.00",
  primary_ips: [
    { type: "ipv6", prices: [price("fsn1", "0")] },
    { type: "ipv4", prices: [price("nbg1", "0.7"), price("fsn1", "0.595")] },
  ],
};

test("monthly cost: the location's server price plus its primary IPv4; a location lacking the type lists those that have it", () => {
  const c = monthlyCost(TYPE, "fsn1", PRICING);
  assert.deepEqual(
    [c.gross.toFixed(4), c.net.toFixed(2), c.server.net, c.ipv4.gross, c.location],
    ["4.5101", "3.79", 3.29, 0.595, "fsn1"],
  );
  assert.throws(
    () => monthlyCost(TYPE, "ash", PRICING),
    /cax11 is not available in location ash; locations that have it: fsn1, nbg1/,
  );
});

test("a home IP is one public address or a narrow prefix: wildcards, private ranges and wide prefixes are refused", () => {
  for (const ok of ["198.51.100.7", "198.51.100.0/24", "2001:db8:1::/56", "2001:db8::1"])
    assert.equal(checkHomeSource(ok, "--home-ip"), ok);
  for (const [bad, why] of [
    ["0.0.0.0/0", /unspecified address is not your home's public address/],
    ["::/0", /unspecified address/],
    ["10.0.0.0/8", /private address/],
    ["192.168.1.10", /private address/],
    ["100.64.1.1", /carrierGradeNat/],
    ["198.0.0.0/8", /a \/8 opens SSH to far more than your home.*at least \/24/],
    ["2001:db8::/32", /at least \/48/],
    ["bogus", /expected your home's public IP address/],
  ] as const)
    assert.throws(
      () => checkHomeSource(bad, "--home-ip"),
      (e) =>
        e instanceof UserError &&
        e.exitCode === 2 &&
        why.test(e.message) &&
        e.message.startsWith("--home-ip "),
    );
});

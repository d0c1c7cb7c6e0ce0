/** Several exits on the gateway: each its own data path, nft table and kill switch (pure plans). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { resolveExits } from "../../src/config/exits.js";
import { parseConfig } from "../../src/config/load.js";
import { dataPathOf, NOTHING, type RuleEntry } from "../../src/gateway/model.js";
import { expectedChains, renderRuleset } from "../../src/gateway/nft.js";
import { describeStep, planDown, planKillSwitch } from "../../src/gateway/plan.js";
import { isOurRule, isStaleRule, ourRules, ruleArgsOf } from "../../src/gateway/routes.js";

const LAN = { v4: ["10.1.0.0/24"], v6: [] };

function paths(extra: Record<string, unknown> = {}) {
  const c = parseConfig({
    exits: [
      { name: "fra" },
      { name: "hel", address: "10.100.1.2/24" },
      { name: "ams", address: "10.100.2.2/24", address6: "fd00:100:2::2/64" },
    ],
    proxy: { dns: { servers: ["192.0.2.53"] } }, // several exits: resolved through each
    ...extra,
  });
  const all = resolveExits(c.gateway, c.exits);
  return all.map((x) => dataPathOf(x, all, 400, LAN));
}

const chain = (p: ReturnType<typeof paths>[number], name: string) =>
  expectedChains(p).find((c) => c.name === name)!.rules;

test("one exit: no source rules, no source kill switch (today's data path, unchanged)", () => {
  const c = parseConfig({});
  const all = resolveExits(c.gateway, c.exits);
  const p = dataPathOf(all[0], all, 400, LAN);
  assert.deepEqual([p.sources, p.otherSources, p.primary, p.nftTable], [[], [], true, "wg-egress"]);
  assert.ok(!renderRuleset(p).includes("saddr"));
  assert.ok(!ourRules(p).some((r) => r.args.includes("from")));
});

test("the first exit marks the proxy's uid except what is bound to another exit; its source leaves only through its tunnel", () => {
  const [fra] = paths();
  assert.equal(fra.nftTable, "wg-egress");
  assert.deepEqual(fra.sources, ["10.100.0.2"]);
  assert.deepEqual(fra.otherSources, ["10.100.1.2", "10.100.2.2", "fd00:100:2::2"]);
  const mark = chain(fra, "mark_proxy");
  assert.match(
    mark[0],
    /^meta skuid 400 .* ip daddr != \{ 10\.1\.0\.0\/24 \} ip saddr != \{ 10\.100\.1\.2, 10\.100\.2\.2 \} meta mark set 0xca6c$/,
  );
  assert.match(mark[1], /meta nfproto ipv6 ip6 saddr != \{ fd00:100:2::2 \} meta mark set 0xca6c$/);
  assert.ok(
    chain(fra, "kill_switch").includes(
      'ip saddr 10.100.0.2 oifname != { "wg-egress", "lo" } counter name killswitch_rejects reject with icmpx type admin-prohibited',
    ),
  );
  assert.ok(
    chain(fra, "leak_guard").includes(
      'ip saddr 10.100.0.2 oifname != { "wg-egress", "lo" } counter name killswitch_rejects drop',
    ),
  );
  const rules = ourRules(fra).map((r) => `${r.fam} ${r.args.join(" ")}`);
  assert.ok(rules.includes("-4 priority 5182 from 10.100.0.2 lookup 51820"));
  assert.ok(rules.includes("-4 priority 5184 uidrange 400-400 lookup 51820"), "the uid rules stay");
});

test("another exit: its own nft table, marked and kill-switched by source only, rules before the first's", () => {
  const [, hel, ams] = paths();
  assert.equal(hel.nftTable, "wg-egress-hel");
  assert.equal(hel.primary, false);
  const text = renderRuleset(hel);
  assert.match(text, /^table inet wg-egress-hel\ndelete table inet wg-egress-hel\n/);
  assert.ok(!text.includes("skuid"), "no uid marking: the first exit's");
  assert.deepEqual(chain(hel, "mark_proxy"), [
    'ip saddr 10.100.1.2 oifname != "lo" ct direction original meta mark set 0xca6d',
    "meta mark 0xca6d ct mark set meta mark",
  ]);
  assert.ok(
    chain(hel, "kill_switch").includes(
      'meta mark 0xca6d oifname != "wge-hel" counter name killswitch_rejects reject with icmpx type admin-prohibited',
    ),
  );
  assert.ok(
    chain(hel, "kill_switch").some((r) => r.startsWith('ip saddr 10.100.1.2 oifname != { "wge-hel", "lo" }')),
  );
  assert.ok(
    chain(hel, "kill_switch").some((r) => r.includes("meta nfproto ipv6")),
    "no IPv6 address: refused",
  );
  assert.ok(!chain(ams, "kill_switch").some((r) => r.includes("meta nfproto ipv6")));
  assert.ok(
    chain(ams, "leak_guard").some((r) =>
      r.startsWith('ip6 saddr fd00:100:2::2 oifname != { "wge-ams", "lo" }'),
    ),
  );
  assert.deepEqual(
    ourRules(hel).map((r) => `${r.fam} ${r.args.join(" ")}`),
    [
      "-4 priority 5172 fwmark 0xca6d lookup 51821",
      "-4 priority 5172 from 10.100.1.2 lookup 51821",
      "-6 priority 5172 fwmark 0xca6d lookup 51821",
    ],
  );
  assert.deepEqual(
    ourRules(ams)
      .filter((r) => r.args.includes("from"))
      .map((r) => `${r.fam} ${r.args.join(" ")}`),
    ["-4 priority 5162 from 10.100.2.2 lookup 51822", "-6 priority 5162 from fd00:100:2::2 lookup 51822"],
  );
});

test("an exit never claims another's rules; its own source rule is recognised as printed by ip", () => {
  const [fra, hel] = paths();
  const uidRule: RuleEntry = { priority: 5184, uid_start: 400, uid_end: 400, table: "51820" };
  assert.ok(isOurRule(fra, uidRule));
  assert.ok(!isOurRule(hel, uidRule), "the first exit's uid rule is not the second's to remove");
  const printed: RuleEntry = { priority: 5172, src: "10.100.1.2", table: "51821" };
  assert.ok(ourRules(hel).some((r) => r.fam === "-4" && r.matches(printed)));
  assert.ok(!isStaleRule(hel, "-4", printed));
  const old: RuleEntry = { priority: 5172, src: "10.100.9.2", table: "51821" };
  assert.ok(isStaleRule(hel, "-4", old), "a source no longer configured goes");
  assert.deepEqual(ruleArgsOf(old), ["priority", "5172", "from", "10.100.9.2", "lookup", "51821"]);
  assert.ok(!isOurRule(hel, { priority: 5172, src: "all", table: "main" }));
});

test("each exit's kill switch is planned on its own; down --purge removes only that exit's table", () => {
  const [, hel] = paths();
  const up = planKillSwitch(hel, NOTHING).map(describeStep).join("\n");
  assert.match(up, /load table inet wg-egress-hel atomically/);
  assert.match(up, /ip -4 route replace unreachable default metric 4294967295 table 51821/);
  assert.match(up, /ip -4 rule add priority 5172 from 10\.100\.1\.2 lookup 51821/);
  assert.ok(!up.includes("uidrange"));
  const state = { ...NOTHING, nft: { hash: null, chains: [], rejected: 0 } };
  const down = planDown(hel, state, { purge: true }).map(describeStep).join("\n");
  assert.match(down, /nft delete table inet wg-egress-hel/);
  assert.ok(!/table inet wg-egress\n/.test(`${down}\n`));
});

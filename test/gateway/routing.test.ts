import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfig } from "../../src/config/load.js";
import { clientSubnets, networkOf } from "../../src/gateway/model.js";
import { inClientSubnets, isStaleRule, ourRules, ruleArgsOf } from "../../src/gateway/routes.js";
import { UserError } from "../../src/util/errors.js";
import { dataPath } from "../support/datapath.js";

const IFACES = [
  { address: "127.0.0.1", cidr: "127.0.0.1/8" },
  { address: "10.1.0.1", cidr: "10.1.0.1/24" },
  { address: "198.51.100.2", cidr: "198.51.100.2/24" },
  { address: "fd00:1::1", cidr: "fd00:1::1/64" },
];
const proxy = (p: Record<string, unknown>) => parseConfig({ proxy: p }).proxy;

test("client subnets: the allow-list plus the listen addresses' subnets, never loopback or the WAN", () => {
  assert.deepEqual(clientSubnets(proxy({ listen: ["10.1.0.1:1080"] }), IFACES), {
    v4: ["10.1.0.0/24"],
    v6: [],
  });
  assert.deepEqual(
    clientSubnets(
      proxy({
        listen: ["10.1.0.1:1080", "[fd00:1::1]:1080"],
        allowClients: ["10.42.0.0/16", "10.1.0.9", "127.0.0.0/8"],
      }),
      IFACES,
    ),
    { v4: ["10.1.0.0/24", "10.1.0.9/32", "10.42.0.0/16"], v6: ["fd00:1::/64"] },
  );
  // A wildcard listen address names no subnet (the proxy's own default would admit the WAN's too).
  assert.deepEqual(clientSubnets(proxy({ listen: ["0.0.0.0:1080"] }), IFACES), { v4: [], v6: [] });
  assert.deepEqual(clientSubnets(proxy({}), IFACES), { v4: [], v6: [] });
  assert.throws(() => clientSubnets(proxy({ allowClients: ["0.0.0.0/0"] }), IFACES), UserError);
  assert.throws(() => clientSubnets(proxy({ allowClients: ["::/0"] }), IFACES), /every address/);
  assert.equal(networkOf("10.1.0.77/24"), "10.1.0.0/24");
  assert.equal(networkOf("fd00:1::5/64"), "fd00:1::/64");
});

const p = dataPath({ ifname: "wg0", rulePriority: 100, clients: { v4: ["10.1.0.0/24"], v6: [] } });

test("rules: client subnets to main, the rest of the proxy's traffic to the tunnel table", () => {
  assert.deepEqual(
    ourRules(p).map((r) => `${r.fam} ${r.args.join(" ")}`),
    [
      "-4 priority 100 fwmark 0xca6c lookup 51820",
      "-4 priority 101 uidrange 400-400 to 10.1.0.0/24 lookup main",
      "-4 priority 102 uidrange 400-400 lookup 51820",
      "-6 priority 100 fwmark 0xca6c lookup 51820",
      "-6 priority 102 uidrange 400-400 lookup 51820",
    ],
  );
  // As `ip -j rule show` prints them.
  const client = { priority: 101, dst: "10.1.0.0", dstlen: 24, uid_start: 400, uid_end: 400, table: "main" };
  assert.ok(ourRules(p)[1].matches(client));
  assert.ok(!ourRules(p)[2].matches(client), "a 'to' rule is not the catch-all uid rule");
  assert.ok(!isStaleRule(p, "-4", client));
  assert.ok(isStaleRule(p, "-4", { ...client, dst: "10.2.0.0" }));
  assert.ok(
    isStaleRule(p, "-4", {
      priority: 101,
      uid_start: 400,
      uid_end: 400,
      table: "main",
      suppress_prefixlen: 0,
    }),
  );
  assert.ok(!isStaleRule(p, "-4", { priority: 101, uid_start: 401, uid_end: 401, table: "main" }));
  assert.deepEqual(ruleArgsOf(client), [
    "priority",
    "101",
    "uidrange",
    "400-400",
    "to",
    "10.1.0.0/24",
    "lookup",
    "main",
  ]);
  assert.ok(inClientSubnets(p, "10.1.0.254"));
  assert.ok(!inClientSubnets(p, "10.100.0.1"));
  assert.ok(!inClientSubnets(p, "198.51.100.1"));
  assert.ok(!inClientSubnets(p, "not-an-ip"));
});

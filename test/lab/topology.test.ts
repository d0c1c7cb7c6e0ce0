import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfig } from "../../src/config/load.js";
import { renderExitHost } from "../../src/exit/host.js";
import {
  ADDR,
  EXIT_IF,
  EXIT_PUBLIC_IF,
  GW_IF,
  LAB_NAMESPACES,
  labConfig,
  NS,
  networkCommands,
} from "../../src/lab/topology.js";
import { generatePrivateKey, publicKeyOf } from "../../src/wireguard/keys.js";

const keys = {
  gatewayPublic: publicKeyOf(generatePrivateKey()),
  exitPublic: publicKeyOf(generatePrivateKey()),
};

test("the documented names and addresses", () => {
  assert.deepEqual(LAB_NAMESPACES, ["wgelab-pod", "wgelab-gw", "wgelab-inet", "wgelab-exit"]);
  const cmds = networkCommands().map((c) => c.join(" "));
  for (const [ns, a] of [
    [NS.pod, "10.1.0.2/24"],
    [NS.gw, "10.1.0.1/24"],
    [NS.gw, "198.51.100.2/24"],
    [NS.inet, "198.51.100.1/24"],
    [NS.inet, "203.0.113.1/24"],
    [NS.inet, "192.0.2.80/32"],
    [NS.exit, "203.0.113.10/24"],
  ])
    assert.ok(
      cmds.some((c) => c.startsWith(`ip netns exec ${ns} ip address add ${a} `)),
      `${ns} ${a}`,
    );
  // Every command stays inside the lab: namespaced, or creating links directly in lab namespaces.
  for (const c of cmds)
    assert.match(
      c,
      /^ip (netns (add|exec) wgelab-|link add \S+ netns wgelab-\S+ type veth peer name \S+ netns wgelab-)/,
    );
  // The pod has no default route: it can only talk to the proxy.
  assert.ok(!cmds.some((c) => c.startsWith(`ip netns exec ${NS.pod} ip route add default`)));
});

test("wireguard-go sockets are host-wide: distinct interface names, valid lengths", () => {
  assert.notEqual(GW_IF, EXIT_IF);
  for (const n of [GW_IF, EXIT_IF]) assert.ok(n.length <= 15);
});

test("the lab config is a valid wg-egress config and feeds the same exit renderer", () => {
  const c = parseConfig(labConfig(keys));
  assert.equal(c.gateway.interface, GW_IF);
  assert.equal(String(c.gateway.peer.endpoint), `${ADDR.exitPublic}:51820`);
  assert.equal(c.gateway.proxyUid, 400);
  assert.equal(c.exit.gatewayPublicKey, keys.gatewayPublic);
  const exit = renderExitHost(c.exit, { privateKey: generatePrivateKey() });
  assert.match(exit.nftRuleset, new RegExp(`iifname "${EXIT_IF}" oifname "${EXIT_PUBLIC_IF}" masquerade`));
  assert.match(exit.setupScript, new RegExp(`ip address replace ${ADDR.exitTunnel}/24 dev ${EXIT_IF}`));
});

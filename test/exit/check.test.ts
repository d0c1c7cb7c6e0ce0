import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfig } from "../../src/config/load.js";
import { checkScript, exitChecks, parseCollected } from "../../src/exit/check.js";
import { renderExitHost } from "../../src/exit/host.js";
import { generatePrivateKey, publicKeyOf } from "../../src/wireguard/keys.js";

/** `exit check`'s verdicts from what its script collects (the real thing runs in ssh-install.system.test). */

const exit = parseConfig({}).exit;
const exitPub = publicKeyOf(generatePrivateKey());
const gwPub = publicKeyOf(generatePrivateKey());
const want = {
  exitPublicKey: exitPub,
  gatewayPublicKey: gwPub,
  resolveName: "deb.debian.org",
  install: "wg-egress exit install",
};
const nft = renderExitHost(exit, {
  privateKey: generatePrivateKey(),
  gatewayPublicKey: gwPub,
}).nftRuleset.replace(/^table inet wg-egress-exit\ndelete table inet wg-egress-exit\n/, "");

/** What the script prints on a healthy exit, `now` seconds after the gateway's handshake at 1000. */
const healthy = (now: number, over: Record<string, string> = {}) => {
  const s: Record<string, string> = {
    wg: `(hidden)\t${exitPub}\t51820\toff\n${gwPub}\t(none)\t198.51.100.2:41000\t10.100.0.2/32\t1000\t100\t200\toff`,
    link: JSON.stringify([
      {
        ifname: "wg0",
        flags: ["POINTOPOINT", "NOARP", "UP", "LOWER_UP"],
        addr_info: [{ local: "10.100.0.1", prefixlen: 24 }],
      },
    ]),
    fwd4: "1",
    fwd6: "0",
    nft,
    route: JSON.stringify([{ dst: "default", gateway: "172.31.1.1", dev: "eth0" }]),
    resolv: "nameserver 185.12.64.1",
    resolve: "151.101.2.132   STREAM deb.debian.org",
    now: String(now),
    ...over,
  };
  return parseCollected(
    Object.entries(s)
      .map(([k, v]) => `== ${k}\n${v}`)
      .join("\n"),
  );
};
const verdicts = (c: ReturnType<typeof healthy>) =>
  Object.fromEntries(exitChecks(exit, c, want).map((r) => [r.name, r.verdict]));

test("the collector is read-only and never prints the exit's private key", () => {
  const script = checkScript(exit, "deb.debian.org");
  assert.match(script, /wg show 'wg0' dump 2>\/dev\/null \| sed '1s\/\^\[\^\[:space:\]\]\*\/\(hidden\)\/'/);
  assert.doesNotMatch(script, /\bwg set\b|\bnft (add|delete|flush|-f)\b|sysctl -w|>\s*\/proc/);
});

test("a healthy exit passes; a stale handshake warns, an old one fails", () => {
  assert.deepEqual(Object.values(verdicts(healthy(1020))), [
    "pass",
    "pass",
    "pass",
    "pass",
    "pass",
    "pass",
    "pass",
  ]);
  assert.equal(verdicts(healthy(1200))["handshake (exit's view)"], "warn");
  assert.equal(verdicts(healthy(1400))["handshake (exit's view)"], "fail");
});

test("another key, wrong allowed IPs, no forwarding, the default route elsewhere: each named", () => {
  const other = publicKeyOf(generatePrivateKey());
  const v = verdicts(
    healthy(1020, {
      wg: `(hidden)\t${other}\t51820\toff\n${gwPub}\t(none)\t(none)\t10.100.0.3/32\t0\t0\t0\toff`,
      fwd4: "0",
      route: JSON.stringify([{ dst: "default", dev: "ens3" }]),
      resolve: "",
    }),
  );
  assert.deepEqual(v, {
    "exit interface": "fail",
    "gateway peer": "fail",
    "handshake (exit's view)": "fail",
    "IP forwarding": "fail",
    masquerade: "fail",
    firewall: "pass",
    resolver: "warn",
  });
  const results = exitChecks(exit, healthy(1020, { route: JSON.stringify([{ dev: "ens3" }]) }), want);
  assert.equal(
    results.find((r) => r.name === "masquerade")!.fix,
    "set exit.publicInterface: ens3, then wg-egress exit install",
  );
});

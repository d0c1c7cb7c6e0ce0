import assert from "node:assert/strict";
import { test } from "node:test";
import {
  exitHostOf,
  exitsOf,
  peerKey,
  pickExit,
  pickExits,
  sshTargetKey,
  targetOf,
} from "../../src/config/exit-hosts.js";
import { parseConfig } from "../../src/config/load.js";
import { UserError } from "../../src/util/errors.js";

/** Which exit a command works on, each exit's VPS settings and where its values live in the file. */

const two = (extra: Record<string, unknown> = {}, hel: Record<string, unknown> = {}) =>
  parseConfig({
    exit: { ssh: { target: "root@203.0.113.10" }, reverseDns: "fra.example.org", ...extra },
    exits: [{ name: "fra" }, { name: "hel", address: "10.100.1.2/24", ...hel }],
  });

function message(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof UserError && e.exitCode === 2, `expected a usage error, got ${e}`);
    assert.ok(!e.message.includes("\n"));
    return e.message;
  }
  assert.fail("expected an error");
}

test("the exit a command targets: the only one, or the one named; several must be named; unknown names list the known", () => {
  const one = exitsOf(parseConfig({}));
  assert.equal(pickExit(one, undefined, "exit provision").name, "default");
  assert.deepEqual(
    pickExits(one).map((x) => x.name),
    ["default"],
  );
  const all = exitsOf(two());
  assert.equal(
    message(() => pickExit(all, undefined, "exit provision")),
    "exit provision works on one exit and this config has 2: pass --exit with one of fra, hel",
  );
  assert.equal(pickExit(all, "hel", "exit provision").name, "hel");
  assert.deepEqual(
    pickExits(all).map((x) => x.name),
    ["fra", "hel"],
  );
  assert.deepEqual(
    pickExits(all, "fra").map((x) => x.name),
    ["fra"],
  );
  for (const f of [() => pickExits(all, "ams"), () => pickExit(all, "ams", "exit render")])
    assert.equal(message(f), "no exit named ams in the config: --exit takes one of fra, hel");
});

test("the first exit is today's exit; another gets its own server, firewall, label, addresses and no machine of the first", () => {
  const c = two({ hetzner: { sshKeyNames: ["laptop"] } });
  const [fra, hel] = exitsOf(c).map((x) => targetOf(c, x).host);
  assert.deepEqual(fra, c.exit, "the exit: section unchanged");
  assert.equal(fra.hetzner.serverName, "wg-exit");
  assert.deepEqual(fra.hetzner.labels, { "managed-by": "wg-egress" });
  assert.equal(hel.hetzner.serverName, "wg-exit-hel");
  assert.equal(hel.hetzner.firewallName, "wg-exit-fw-hel");
  assert.deepEqual(hel.hetzner.labels, { "managed-by": "wg-egress", "wg-egress-exit": "hel" });
  assert.equal(hel.address, "10.100.1.1/24");
  assert.deepEqual(hel.gatewayAllowedIps, ["10.100.1.2/32"]);
  assert.equal(hel.ssh.target, undefined, "exit fra's machine is not hel's");
  assert.equal(hel.reverseDns, undefined);
  assert.deepEqual(hel.hetzner.sshKeyNames, ["laptop"], "shared settings are inherited");

  // Its own section wins, custom names and labels keep the exit's label; IPv6 joins the allowed IPs.
  const own = two(
    { hetzner: { serverName: "exit", labels: { team: "irc" } } },
    {
      address6: "fd00:1::2/64",
      exit: { address: "10.100.1.9/24", ssh: { target: "root@203.0.113.20" }, hetzner: { location: "hel1" } },
    },
  );
  const h = targetOf(own, exitsOf(own)[1]).host;
  assert.equal(h.address, "10.100.1.9/24");
  assert.equal(h.ssh.target, "root@203.0.113.20");
  assert.equal(h.ssh.port, 22);
  assert.equal(h.hetzner.location, "hel1");
  assert.equal(h.hetzner.serverName, "exit-hel");
  assert.deepEqual(h.hetzner.labels, { team: "irc", "wg-egress-exit": "hel" });
  assert.deepEqual(h.gatewayAllowedIps, ["10.100.1.2/32", "fd00:1::2/128"]);
});

test("the config check names a bad exits[i].exit value, a tunnel with no derivable exit address and shared Hetzner names", () => {
  const err = (raw: unknown) => message(() => parseConfig(raw, "c.yaml"));
  assert.match(
    err({ exits: [{ name: "a" }, { name: "b", address: "10.100.1.2/24", exit: { listenPort: 0 } }] }),
    /^invalid config c\.yaml: exits\[1\]\.exit\.listenPort = 0: /,
  );
  assert.match(
    err({
      exits: [{ name: "a" }, { name: "b", address: "10.100.1.1/24" }],
      proxy: { dns: { servers: ["192.0.2.53"] } },
    }),
    /^invalid config c\.yaml: exits\[1\]\.exit\.address = missing: exit b: set exits\[1\]\.exit\.address, the exit's side of its tunnel/,
  );
  assert.match(
    err({
      exits: [
        { name: "a" },
        { name: "b", address: "10.100.1.2/24", exit: { hetzner: { serverName: "wg-exit" } } },
      ],
    }),
    /exits\[1\]\.exit\.hetzner\.serverName = "wg-exit": exit b uses the Hetzner serverName wg-exit, as exit a does/,
  );
  // Without exits: nothing new is checked, nothing changes.
  const c = parseConfig({});
  assert.equal("problems" in exitHostOf(c, exitsOf(c)[0]), false);
});

test("where an exit's endpoint and SSH target are written: today's keys for the first exit, its own entry for the others", () => {
  const one = parseConfig({});
  const [d] = exitsOf(one);
  assert.equal(peerKey(one, d, "endpoint"), "gateway.peer.endpoint");
  assert.equal(sshTargetKey(one, d), "exit.ssh.target");
  const c = two();
  const [fra, hel] = exitsOf(c);
  assert.equal(peerKey(c, fra, "endpoint"), "gateway.peer.endpoint");
  assert.equal(peerKey(c, hel, "publicKey"), "exits.1.peer.publicKey");
  assert.equal(sshTargetKey(c, hel), "exits.1.exit.ssh.target");
  // The first exit's own entry already says it: written there, or the gateway's value would be shadowed.
  const own = parseConfig({
    exits: [
      { name: "fra", peer: { endpoint: "203.0.113.10:51820" }, exit: { ssh: { target: "root@x" } } },
      { name: "hel", address: "10.100.1.2/24" },
    ],
  });
  const [f2] = exitsOf(own);
  assert.equal(peerKey(own, f2, "endpoint"), "exits.0.peer.endpoint");
  assert.equal(peerKey(own, f2, "publicKey"), "gateway.peer.publicKey");
  assert.equal(sshTargetKey(own, f2), "exits.0.exit.ssh.target");
});

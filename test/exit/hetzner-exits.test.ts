import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { parse } from "yaml";
import { startFakeHetzner } from "../fakes/hetzner/server.js";
import { cli } from "../support/cli.js";
import { writeConfig } from "../support/config.js";
import { tempDir } from "../support/tmp.js";
import { FAKE_TOKEN, LOGIN, urls, useHomeIpServer } from "./hetzner-world.js";

/**
 * Two exits on Hetzner, through the real CLI against the local fake: each exit its own server and
 * firewall (the first under today's names), commands that change an exit told which, status showing
 * both, and deprovisioning one leaving the other's resources and config alone.
 */

useHomeIpServer();

const HEADER = "# two exits; comments must survive\n";

async function twoExits() {
  const fake = await startFakeHetzner({ actionPolls: 2, token: FAKE_TOKEN });
  fake.seedSshKey("laptop", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFake me@laptop");
  const dir = tempDir("wgetest-hcloud-");
  const config = writeConfig(
    dir,
    {
      exit: { homeIpUrls: [urls.dead, urls.ip], hetzner: LOGIN },
      gateway: { interface: "wgetest-none" },
      exits: [{ name: "fra" }, { name: "hel", address: "10.100.1.2/24" }],
    },
    HEADER,
  );
  const env = { HCLOUD_ENDPOINT: fake.url, HCLOUD_TOKEN: fake.token, HCLOUD_POLL_INTERVAL: "10ms" };
  const run = (args: string[]) => cli([...args, "-c", config], { env });
  const init = await run(["secrets", "init"]);
  assert.equal(init.code, 0, init.stderr);
  return { fake, config, run };
}

const serverNamed = (fake: Awaited<ReturnType<typeof startFakeHetzner>>, name: string) =>
  [...fake.servers.values()].find((s) => s.name === name);
const firewallNamed = (fake: Awaited<ReturnType<typeof startFakeHetzner>>, name: string) =>
  [...fake.firewalls.values()].find((f) => f.name === name);

test("two exits: each provisioned as its own server and firewall, status shows both, deprovision removes one", async () => {
  const { fake, config, run } = await twoExits();
  try {
    // A command that changes one exit must be told which; an unknown name lists the known ones.
    const which = await run(["exit", "provision"]);
    assert.equal(which.code, 2);
    assert.equal(
      which.stderr.trim(),
      "wg-egress: exit provision works on one exit and this config has 2: pass --exit with one of fra, hel",
    );
    const unknown = await run(["exit", "provision", "--exit", "ams"]);
    assert.equal(unknown.code, 2);
    assert.equal(
      unknown.stderr.trim(),
      "wg-egress: no exit named ams in the config: --exit takes one of fra, hel",
    );
    assert.ok(!fake.requests.some((r) => r.method !== "GET"), "nothing created");

    const fra = await run(["exit", "provision", "--exit", "fra"]);
    assert.equal(fra.code, 0, fra.stderr);
    assert.match(fra.stdout, /^created server wg-exit \(id \d+\)/m);
    const hel = await run(["exit", "provision", "--exit", "hel"]);
    assert.equal(hel.code, 0, hel.stderr);
    assert.match(hel.stdout, /^created server wg-exit-hel \(id \d+\)/m);
    // The first exit keeps today's names and labels (existing servers are still found); the other's carry its name.
    const s1 = serverNamed(fake, "wg-exit")!;
    const s2 = serverNamed(fake, "wg-exit-hel")!;
    assert.deepEqual(s1.labels, { "managed-by": "wg-egress" });
    assert.deepEqual(s2.labels, { "managed-by": "wg-egress", "wg-egress-exit": "hel" });
    const fw1 = firewallNamed(fake, "wg-exit-fw")!;
    const fw2 = firewallNamed(fake, "wg-exit-fw-hel")!;
    assert.deepEqual(fw2.labels, { "managed-by": "wg-egress", "wg-egress-exit": "hel" });
    assert.deepEqual(fw1.applied_to, [{ type: "server", server: { id: s1.id } }]);
    assert.deepEqual(fw2.applied_to, [{ type: "server", server: { id: s2.id } }]);

    // Each server got its own exit's keys and tunnel addresses.
    const userData = (name: string) =>
      (
        fake.requests.find(
          (r) =>
            r.method === "POST" && r.path === "/v1/servers" && (r.body as { name: string }).name === name,
        )!.body as { user_data: string }
      ).user_data;
    const reveal = async (exit: string) =>
      (await run(["secrets", "show", "--reveal", "exit.privateKey", "--exit", exit])).stdout.trim();
    const [key1, key2] = [await reveal("fra"), await reveal("hel")];
    assert.notEqual(key1, key2);
    assert.ok(userData("wg-exit").includes(key1) && !userData("wg-exit").includes(key2));
    assert.ok(userData("wg-exit-hel").includes(key2) && !userData("wg-exit-hel").includes(key1));
    assert.match(userData("wg-exit"), /ip address replace 10\.100\.0\.1\/24 dev wg0/);
    assert.match(userData("wg-exit"), /AllowedIPs = 10\.100\.0\.2\/32/);
    assert.match(userData("wg-exit-hel"), /ip address replace 10\.100\.1\.1\/24 dev wg0/);
    assert.match(userData("wg-exit-hel"), /AllowedIPs = 10\.100\.1\.2\/32/);

    // Each endpoint, public key and SSH target recorded where that exit reads it, comments kept.
    const text = readFileSync(config, "utf8");
    assert.ok(text.startsWith(HEADER));
    const c = parse(text);
    const ip1 = s1.public_net.ipv4!.ip;
    const ip2 = s2.public_net.ipv4!.ip;
    assert.notEqual(ip1, ip2);
    assert.equal(c.gateway.peer.endpoint, `${ip1}:51820`);
    assert.equal(c.exit.ssh.target, `root@${ip1}`);
    assert.equal(c.exits[1].peer.endpoint, `${ip2}:51820`);
    assert.equal(c.exits[1].exit.ssh.target, `root@${ip2}`);
    assert.equal(c.exits[0].peer, undefined, "the first exit's peer stays in gateway.peer");
    const shown = await run(["secrets", "show"]);
    assert.match(
      shown.stdout,
      new RegExp(
        `^exit hel:\\n  exit public key: +${c.exits[1].peer.publicKey.replace(/[+/]/g, "\\$&")}\\n`,
        "m",
      ),
    );
    assert.match(shown.stdout, new RegExp(`^  endpoint: ${ip2}:51820$`, "m"));

    // Read-only: every exit by default, each under its name; --exit narrows.
    const st = await run(["exit", "status"]);
    assert.equal(st.code, 0, st.stderr);
    assert.match(st.stdout, /^exit fra:\nserver: wg-exit \(id \d+\) running/m);
    assert.match(st.stdout, /^exit hel:\nserver: wg-exit-hel \(id \d+\) running/m);
    assert.match(st.stdout, /^firewall: wg-exit-fw-hel \(id \d+\) applied on wg-exit-hel$/m);
    const one = await run(["exit", "status", "--exit", "hel"]);
    assert.doesNotMatch(one.stdout, /wg-exit \(|exit fra/);

    // Deprovision one: the other's server, firewall and config stay.
    const dep = await run(["exit", "deprovision", "--exit", "hel", "--yes"]);
    assert.equal(dep.code, 0, dep.stderr);
    assert.match(dep.stdout, /^deleted server wg-exit-hel$/m);
    assert.match(dep.stdout, /^deleted firewall wg-exit-fw-hel$/m);
    assert.deepEqual(
      [...fake.servers.values()].map((s) => s.name),
      ["wg-exit"],
    );
    assert.deepEqual(
      [...fake.firewalls.values()].map((f) => f.name),
      ["wg-exit-fw"],
    );
    const after = parse(readFileSync(config, "utf8"));
    assert.equal(after.exits[1].peer.endpoint, undefined, "the deleted exit's address is forgotten");
    assert.equal(after.exits[1].exit.ssh.target, undefined);
    assert.equal(after.gateway.peer.endpoint, `${ip1}:51820`, "the other exit's stays");
    assert.equal(after.exit.ssh.target, `root@${ip1}`);
    // set-endpoint: told which exit, written where that exit reads it (config and store), comments kept.
    const ambiguous = await run(["exit", "set-endpoint", "203.0.113.30:51820"]);
    assert.equal(ambiguous.code, 2);
    assert.match(ambiguous.stderr, /exit set-endpoint works on one exit and this config has 2: pass --exit/);
    const set = await run(["exit", "set-endpoint", "203.0.113.30:51820", "--exit", "hel"]);
    assert.equal(set.code, 0, set.stderr);
    const moved = readFileSync(config, "utf8");
    assert.ok(moved.startsWith(HEADER));
    assert.equal(parse(moved).exits[1].peer.endpoint, "203.0.113.30:51820");
    assert.equal(parse(moved).gateway.peer.endpoint, `${ip1}:51820`);
    assert.match(
      (await run(["secrets", "show"])).stdout,
      /^exit hel:\n(?: {2}.*\n){2} {2}endpoint: 203\.0\.113\.30:51820$/m,
    );
    const st2 = await run(["exit", "status"]);
    assert.match(st2.stdout, /^exit hel:\nserver: none \(no server wg-exit-hel labelled/m);
    assert.match(st2.stdout, /^server: wg-exit \(id \d+\) running/m);
  } finally {
    await fake.close();
  }
});

test("two exits: a same-named server without the exit's label is refused, never adopted or deleted", async () => {
  const { fake, run } = await twoExits();
  try {
    // Today's labels only: what a first exit (or another config) would carry, not exit hel's.
    fake.seedServer("wg-exit-hel", { "managed-by": "wg-egress" });
    for (const args of [
      ["exit", "provision", "--exit", "hel"],
      ["exit", "deprovision", "--exit", "hel", "--yes"],
    ]) {
      const r = await run(args);
      assert.equal(r.code, 2, r.stdout);
      assert.match(
        r.stderr,
        /^wg-egress: server "wg-exit-hel" exists but lacks the label managed-by=wg-egress,wg-egress-exit=hel/,
      );
    }
    assert.equal(fake.servers.size, 1);
    assert.equal(fake.firewalls.size, 0);
  } finally {
    await fake.close();
  }
});

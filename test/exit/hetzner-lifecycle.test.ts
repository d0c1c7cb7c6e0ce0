import assert from "node:assert/strict";
import {
  chmodSync,
  chownSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  renameSync,
  statSync,
  symlinkSync,
} from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { parse } from "yaml";
import { HetznerClient } from "../../src/exit/providers/hetzner/client.js";
import { cli } from "../support/cli.js";
import { writeConfig } from "../support/config.js";
import { waitFor } from "../support/poll.js";
import { tempDir } from "../support/tmp.js";
import { assertNoSecretsLeaked, FAKE_TOKEN, LOGIN, urls, useHomeIpServer, world } from "./hetzner-world.js";

/**
 * The exit's lifecycle around provisioning, through the real CLI against the local Hetzner fake: exits one
 * can log into, lookup by name and label, rollback of failed operations, the server's firewall state,
 * reverse DNS, the home IP's checks, config files kept intact, and the dead ends of tokens and identities.
 */

useHomeIpServer();

test("provision refuses an exit nobody can log into, unless exit.noSsh says so; the user-data stays schema-valid", async () => {
  const { fake, run, dir } = await world({}, {});
  try {
    const p = await run(["exit", "provision"]);
    assert.equal(p.code, 2);
    assert.equal(
      p.stderr.trim(),
      "wg-egress: refusing to create an exit nobody can log into: set exit.hetzner.sshKeyNames (SSH keys in your Hetzner project) or exit.sshAuthorizedKeys (public key lines), or exit.noSsh: true if it needs no SSH (then secrets rotate and exit check cannot reach it)",
    );
    assert.ok(!fake.requests.some((r) => r.method !== "GET"), "nothing created or changed");
    const noSsh = writeConfig(dir, { exit: { homeIpUrls: [urls.ip], noSsh: true } });
    const ok = await run(["exit", "provision"], {}, noSsh);
    assert.equal(ok.code, 0, ok.stderr);
    const create = fake.requests.find((r) => r.method === "POST" && r.path === "/v1/servers")!.body as {
      user_data: string;
      ssh_keys: string[];
    };
    assert.deepEqual(create.ssh_keys, []);
    // cloud-init's schema wants at least one item in ssh_authorized_keys: no empty list.
    assert.ok(!("ssh_authorized_keys" in parse(create.user_data)), create.user_data);
    assert.equal(parse(readFileSync(noSsh, "utf8")).exit.ssh, undefined, "no SSH target recorded");
  } finally {
    await fake.close();
  }
});

test("lookup by name and label: another config's exit is neither reported, firewalled nor deleted", async () => {
  const { fake, run, dir } = await world();
  try {
    assert.equal((await run(["exit", "provision"])).code, 0);
    const [first] = fake.servers.values();
    const [firstFw] = fake.firewalls.values();
    const second = writeConfig(tempDir("wgetest-hcloud-"), {
      secrets: { file: join(dir, "secrets.age"), identityFile: join(dir, "age.key") },
      exit: {
        homeIpUrls: [urls.ip],
        hetzner: { ...LOGIN, serverName: "other-exit", firewallName: "other-fw" },
      },
    });
    const st = await run(["exit", "status"], {}, second);
    assert.match(st.stdout, /^server: none \(no server other-exit labelled/m, "wg-exit is not other-exit");
    const p = await run(["exit", "provision"], {}, second);
    assert.equal(p.code, 0, p.stderr);
    assert.match(p.stdout, /^created server other-exit/m);
    const otherServer = [...fake.servers.values()].find((s) => s.name === "other-exit")!;
    const otherFw = [...fake.firewalls.values()].find((f) => f.name === "other-fw")!;
    assert.deepEqual(firstFw.applied_to, [{ type: "server", server: { id: first.id } }]);
    assert.deepEqual(otherFw.applied_to, [{ type: "server", server: { id: otherServer.id } }]);
    assert.deepEqual(
      first.public_net.firewalls.map((f) => f.id),
      [firstFw.id],
      "the other firewall is not applied to wg-exit",
    );
    assert.equal((await run(["exit", "deprovision", "--yes"], {}, second)).code, 0);
    assert.deepEqual(
      [...fake.servers.values()].map((s) => s.name),
      ["wg-exit"],
    );
    assert.deepEqual(
      [...fake.firewalls.values()].map((f) => f.name),
      ["wg-exit-fw"],
    );
  } finally {
    await fake.close();
  }
});

test("a failed create action rolls back; what cannot be deleted is named; a failed server is never 'found'", async () => {
  const failure = { code: "server_error", message: "host unavailable" };
  const { fake, run } = await world({ failActions: { create_server: failure } });
  try {
    const p = await run(["exit", "provision"]);
    assert.equal(p.code, 1);
    assert.match(
      p.stderr,
      /^wg-egress: server wg-exit \(id \d+\): create server failed: server_error: host unavailable; rolled back: deleted server wg-exit \(id \d+\) and firewall wg-exit-fw \(id \d+\) \(created by this run\)$/m,
    );
    assert.equal(fake.servers.size, 0);
    assert.equal(fake.firewalls.size, 0);
  } finally {
    await fake.close();
  }
  // The rollback itself fails: what is left is named, and a re-run reports the failed server, exit 1.
  const stuck = await world({ failActions: { create_server: failure, delete_server: failure } });
  try {
    const p = await stuck.run(["exit", "provision"]);
    assert.equal(p.code, 1);
    assert.match(
      p.stderr,
      /: create server failed: server_error: host unavailable; left behind: server wg-exit \(id \d+\) and firewall wg-exit-fw \(id \d+\): delete with wg-egress exit deprovision --yes, then provision again$/m,
    );
    const again = await stuck.run(["exit", "provision"]);
    assert.equal(again.code, 1, again.stdout);
    assert.doesNotMatch(again.stdout, /found server/);
    assert.match(
      again.stderr,
      /^wg-egress: server wg-exit \(id \d+\) is initializing, not running: failed action\(s\): create server \(server_error: host unavailable\), delete server \(server_error: host unavailable\); delete it with wg-egress exit deprovision --yes, then run wg-egress exit provision again$/m,
    );
    const st = await stuck.run(["exit", "status"]);
    assert.equal(st.code, 1);
    assert.match(
      st.stdout,
      /^server: wg-exit \(id \d+\) initializing: .*not running: failed action\(s\): create server/m,
    );
  } finally {
    await stuck.fake.close();
  }
});

test("exit status reads the server's own firewall list: pending, applied, or not protecting it", async () => {
  const { fake, run, env, config } = await world({ actionPolls: 1000 });
  try {
    const provisioned = cli(["exit", "provision", "-c", config], { env });
    // While the create action runs, the server's firewall is pending.
    const server = await waitFor("the server", 10_000, () => [...fake.servers.values()][0]);
    const st = await run(["exit", "status"]);
    assert.equal(st.code, 1, "initializing is not fine");
    assert.match(st.stdout, /still running: create server/);
    assert.match(st.stdout, /^firewall: wg-exit-fw \(id \d+\) pending on wg-exit$/m);
    for (const a of fake.actions.values()) a.pollsLeft = 1;
    assert.equal((await provisioned).code, 0);
    const fw = [...fake.firewalls.values()][0];
    assert.match(
      (await run(["exit", "status"])).stdout,
      /^firewall: wg-exit-fw \(id \d+\) applied on wg-exit$/m,
    );
    // Removed from our server in the Console and applied to another one: old code said "applied".
    const other = fake.seedServer("unrelated", { "managed-by": "someone" });
    fake.opts.actionPolls = 0;
    const client = new HetznerClient({ token: fake.token, endpoint: fake.url });
    await client.removeFirewall(fw.id, [{ type: "server", server: { id: server.id } }]);
    await client.applyFirewall(fw.id, [{ type: "server", server: { id: other.id } }]);
    const off = await run(["exit", "status"]);
    assert.equal(off.code, 1);
    assert.match(
      off.stdout,
      /^firewall: wg-exit-fw \(id \d+\) NOT applied to wg-exit: .*; also applied to 1 other resource\(s\)$/m,
    );
    assert.equal((await run(["exit", "provision"])).code, 0, "provision puts it back");
    assert.match((await run(["exit", "status"])).stdout, /applied on wg-exit; also applied to 1 other/);
  } finally {
    await fake.close();
  }
});

test("IRC-ready: exit.reverseDns sets the PTR of the exit's IPv4 once; status shows it", async () => {
  const { fake, run } = await world({}, { hetzner: LOGIN, reverseDns: "irc.example.org" });
  try {
    const p = await run(["exit", "provision"]);
    assert.equal(p.code, 0, p.stderr);
    const [server] = fake.servers.values();
    const ip = server.public_net.ipv4!.ip;
    assert.equal(server.public_net.ipv4!.dns_ptr, "irc.example.org");
    const ptr = fake.requests.filter((r) => r.path.endsWith("/actions/change_dns_ptr"));
    assert.deepEqual(
      ptr.map((r) => r.body),
      [{ ip, dns_ptr: "irc.example.org" }],
    );
    assert.match(
      p.stderr,
      /reverse DNS of 203\.0\.113\.\d+ set to irc\.example\.org; give irc\.example\.org an A record/,
    );
    assert.equal((await run(["exit", "provision"])).code, 0);
    assert.equal(
      fake.requests.filter((r) => r.path.endsWith("/actions/change_dns_ptr")).length,
      1,
      "set once",
    );
    assert.match(
      (await run(["exit", "status"])).stdout,
      new RegExp(
        `^  reverse DNS ${ip.replaceAll(".", "\\.")} → irc\\.example\\.org \\(= exit\\.reverseDns\\)$`,
        "m",
      ),
    );
    const bad = writeConfig(tempDir("wgetest-hcloud-"), { exit: { reverseDns: "not a name" } });
    const r = await run(["exit", "status"], {}, bad);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /exit\.reverseDns = "not a name": expected a fully qualified host name/);
  } finally {
    await fake.close();
  }
});

test("update-home-ip keeps exit.sshAllowFrom and refuses bogus or wide --home-ip before any API call", async () => {
  const { fake, run, dir } = await world();
  try {
    assert.equal((await run(["exit", "provision"])).code, 0);
    for (const bad of ["0.0.0.0/0", "::/0", "10.0.0.0/8", "nonsense"]) {
      const before = fake.requests.length;
      const r = await run(["exit", "update-home-ip", "--home-ip", bad]);
      assert.equal(r.code, 2, bad);
      assert.match(r.stderr, new RegExp(`^wg-egress: --home-ip "?${bad.replace(/[./:]/g, "\\$&")}"?: `));
      assert.equal(fake.requests.length, before, `${bad}: no API call`);
    }
    const fixed = writeConfig(dir, {
      exit: { homeIpUrls: [urls.ip], sshAllowFrom: ["198.51.100.0/28", "2001:db8:7::/56"], hetzner: LOGIN },
    });
    const r = await run(["exit", "update-home-ip"], {}, fixed);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /^updated: SSH allowed from 198\.51\.100\.0\/28, 2001:db8:7::\/56 \(exit\.sshAllowFrom\)/m,
    );
    const fw = [...fake.firewalls.values()][0];
    assert.deepEqual(fw.rules.find((x) => x.port === "22")?.source_ips, [
      "198.51.100.0/28",
      "2001:db8:7::/56",
    ]);
    assert.match(
      (await run(["exit", "update-home-ip"], {}, fixed)).stdout,
      /^unchanged/m,
      "a timer keeps them",
    );
  } finally {
    await fake.close();
  }
});

test("config rewrites keep a symlinked config's target, owner, group and mode", async () => {
  const { fake, run, dir, config } = await world();
  try {
    // The README's layout: the real file elsewhere, root:wg-egress-proxy (gid 400) 0640, a symlink in place.
    mkdirSync(join(dir, "real"));
    const real = join(dir, "real", "config.yaml");
    renameSync(config, real);
    symlinkSync(real, config);
    const root = process.getuid?.() === 0;
    const gid = root ? 400 : process.getgroups?.().find((g) => g !== process.getegid?.());
    assert.ok(gid !== undefined, "this test needs root or a supplementary group");
    chownSync(real, root ? 0 : process.getuid!(), gid);
    chmodSync(real, 0o640);
    for (const args of [
      ["exit", "provision"],
      ["exit", "set-endpoint", "203.0.113.77:51820"],
    ]) {
      const r = await run(args);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(lstatSync(config).isSymbolicLink(), `${args.join(" ")}: still a symlink`);
      const st = statSync(real);
      assert.deepEqual([st.gid, st.mode & 0o777], [gid, 0o640], `${args.join(" ")}: group and mode kept`);
    }
    assert.match(readFileSync(real, "utf8"), /endpoint: 203\.0\.113\.77:51820/, "the target was written");
  } finally {
    await fake.close();
  }
});

test("dead ends fixed: endpoint without scheme, a rejected stored token, a missing one, a lost identity", async () => {
  const { fake, run, env, config, dir } = await world();
  try {
    const noScheme = await run(["exit", "status"], { HCLOUD_ENDPOINT: "api.example.invalid/v1" });
    assert.equal(noScheme.code, 2);
    assert.equal(
      noScheme.stderr.trim(),
      'wg-egress: HCLOUD_ENDPOINT "api.example.invalid/v1" is not an http(s) URL: use the form https://api.hetzner.cloud/v1 (with the scheme), or unset it for Hetzner\'s API',
    );
    // secrets init stored HCLOUD_TOKEN, which works; then the stored one is revoked: the message names the store.
    const fromStore = await cli(["exit", "status", "-c", config], { env: { ...env, HCLOUD_TOKEN: "" } });
    assert.equal(fromStore.code, 0, fromStore.stderr);
    const store = join(dir, "secrets.age");
    const renewed = await cli(["secrets", "set-token", "--token-stdin", "-c", config], {
      input: "revoked-token\n",
    });
    assert.equal(renewed.code, 0, renewed.stderr);
    assert.match(renewed.stdout, /^stored the Hetzner API token in /m);
    const bad = await cli(["exit", "status", "-c", config], { env: { ...env, HCLOUD_TOKEN: "" } });
    assert.equal(bad.code, 1);
    assert.match(
      bad.stderr,
      new RegExp(
        `^wg-egress: the token in ${store.replace(/[/.]/g, "\\$&")} rejected by the API: unable to authenticate; .* and store it with: wg-egress secrets set-token --token-stdin$`,
        "m",
      ),
    );
    const fixed = await cli(["secrets", "set-token", "-c", config], { env: { HCLOUD_TOKEN: FAKE_TOKEN } });
    assert.equal(fixed.code, 0, fixed.stderr);
    assert.equal(
      (await cli(["exit", "status", "-c", config], { env: { ...env, HCLOUD_TOKEN: "" } })).code,
      0,
    );
    // A store without a token: the advice is set-token (init refuses an existing store).
    const tokenless = tempDir("wgetest-hcloud-");
    const cfg2 = writeConfig(tokenless, { exit: { hetzner: LOGIN } });
    assert.equal((await cli(["secrets", "init", "-c", cfg2])).code, 0);
    const none = await cli(["exit", "status", "-c", cfg2], { env: { HCLOUD_ENDPOINT: fake.url } });
    assert.equal(none.code, 2);
    assert.match(
      none.stderr,
      /no Hetzner API token: set HCLOUD_TOKEN, or store it in .* with: wg-egress secrets set-token --token-stdin/,
    );
    const init = await cli(["secrets", "init", "-c", cfg2]);
    assert.match(
      init.stderr,
      /already exists: keep it \(to store the API token: wg-egress secrets set-token --token-stdin\)/,
    );
    // The identity is gone: the store cannot be read; only a backup or starting over helps.
    renameSync(join(tokenless, "age.key"), join(tokenless, "age.key.bak"));
    const lost = await cli(["secrets", "show", "-c", cfg2]);
    assert.equal(lost.code, 2);
    assert.match(
      lost.stderr,
      /the age identity .*age\.key is missing: restore it from your backup .* or start over with wg-egress secrets init --force/,
    );
  } finally {
    await fake.close();
  }
});

test("no private key or token ever appears in any command's output or logs", () => assertNoSecretsLeaked(20));

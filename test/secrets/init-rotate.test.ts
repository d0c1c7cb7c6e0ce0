import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { createServer } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { cli } from "../support/cli.js";
import { writeConfig } from "../support/config.js";
import { tempDir } from "../support/tmp.js";

/** `secrets init` and what `secrets rotate` refuses, through the real CLI on the real file system. */

const mode = (p: string) => statSync(p).mode & 0o777;

test("secrets init: the gateway key where --gateway-key says (or nowhere), directories a proxy can traverse", async () => {
  const dir = tempDir("wgetest-secrets-");
  const config = writeConfig(dir, {
    secrets: { file: join(dir, "etc", "secrets.age"), identityFile: join(dir, "etc", "age.key") },
  });
  const keyFile = join(dir, "keys", "gw.key");
  const init = await cli(["secrets", "init", "-c", config, "--gateway-key", keyFile]);
  assert.equal(init.code, 0, init.stderr);
  assert.match(init.stdout, new RegExp(`wrote the gateway's private key to ${keyFile} \\(0600\\)`));
  assert.equal(mode(keyFile), 0o600);
  assert.ok(
    !existsSync(join(dir, "gateway.key")),
    "not written where gateway.privateKeyFile would have put it",
  );
  // Created for the store: searchable by the proxy's user, who reads a 0640 config next to it.
  assert.equal(mode(join(dir, "etc")), 0o755);
  assert.equal(mode(join(dir, "etc", "secrets.age")), 0o600);
  const other = tempDir("wgetest-secrets-");
  const cfg2 = writeConfig(other);
  const none = await cli(["secrets", "init", "-c", cfg2, "--no-gateway-key"]);
  assert.equal(none.code, 0, none.stderr);
  assert.ok(!existsSync(join(other, "gateway.key")));
  assert.doesNotMatch(none.stdout, /gateway's private key/);
  // An old 0700 directory around the config: the proxy could not read it, and init says how to fix it.
  const closed = join(tempDir("wgetest-secrets-"), "wg-egress");
  mkdirSync(closed, { mode: 0o700 });
  const cfg3 = writeConfig(closed);
  chmodSync(closed, 0o700);
  const noted = await cli(["secrets", "init", "-c", cfg3]);
  assert.equal(noted.code, 0, noted.stderr);
  assert.match(
    noted.stdout,
    new RegExp(
      `^note: ${closed} is not searchable by other users: the proxy cannot read .*; chmod o\\+x ${closed}`,
      "m",
    ),
  );
});

/** Everything rotation could change, to prove it changed nothing. */
function snapshot(dir: string, files: string[]): string[] {
  return files.map((f) => `${f}:${existsSync(join(dir, f)) ? readFileSync(join(dir, f), "utf8") : "-"}`);
}

test("secrets rotate without a way to update the exit refuses and changes nothing", async () => {
  const dir = tempDir("wgetest-secrets-");
  const gwKeyFile = join(dir, "gw", "gateway.key");
  const config = writeConfig(
    dir,
    { gateway: { interface: "wgetest-none0", privateKeyFile: gwKeyFile } },
    "# keep me\n",
  );
  assert.equal((await cli(["secrets", "init", "-c", config])).code, 0);
  const files = ["secrets.age", "gw/gateway.key", "config.yaml"];
  const before = snapshot(dir, files);
  const r = await cli(["secrets", "rotate", "-c", config, "--log-level", "debug"]);
  assert.equal(r.code, 2);
  assert.equal(
    r.stderr.trim().split("\n").at(-1),
    "wg-egress: secrets rotate needs a way to update the exit: set exit.ssh.target (USER@HOST; exit provision records it for a Hetzner exit with SSH keys); nothing was changed",
  );
  assert.deepEqual(snapshot(dir, files), before);
});

test("secrets rotate with an exit it cannot reach over SSH refuses before changing anything", async () => {
  const dir = tempDir("wgetest-secrets-");
  // A loopback port nobody listens on: ssh fails at once.
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
  const port = (closed.address() as AddressInfo).port;
  await new Promise((r) => closed.close(r));
  const config = writeConfig(dir, {
    gateway: { interface: "wgetest-none0" },
    exit: { ssh: { target: "root@127.0.0.1", port, options: [`UserKnownHostsFile=${join(dir, "kh")}`] } },
  });
  assert.equal((await cli(["secrets", "init", "-c", config])).code, 0);
  const files = ["secrets.age", "gateway.key", "config.yaml"];
  const before = snapshot(dir, files);
  const r = await cli(["secrets", "rotate", "-c", config]);
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    new RegExp(`^wg-egress: ssh to root@127\\.0\\.0\\.1 port ${port} failed: .*; nothing was rotated$`, "m"),
  );
  assert.doesNotMatch(r.stderr + r.stdout, /new keys are in/);
  assert.deepEqual(snapshot(dir, files), before, "store, gateway key and config untouched");
});

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { test } from "node:test";
import { parse } from "yaml";
import { parseConfig } from "../../src/config/load.js";
import { renderCloudInit } from "../../src/exit/cloud-init.js";
import { renderExitHost } from "../../src/exit/host.js";
import { Progress } from "../../src/exit/progress.js";
import { generatePrivateKey, publicKeyOf } from "../../src/wireguard/keys.js";
import { cli } from "../support/cli.js";
import { writeConfig } from "../support/config.js";
import { tempDir } from "../support/tmp.js";

interface WriteFile {
  path: string;
  permissions: string;
  content: string;
}

test("cloud-init user-data: packages, files with safe modes, the setup script run now and at boot, SSH keys only", () => {
  const exit = parseConfig({
    exit: { sshAuthorizedKeys: ["ssh-ed25519 AAAAC3Nza me@home"], sshAllowFrom: ["198.51.100.7/32"] },
  }).exit;
  const priv = generatePrivateKey();
  const gw = publicKeyOf(generatePrivateKey());
  const host = renderExitHost(exit, { privateKey: priv, gatewayPublicKey: gw });
  const text = renderCloudInit(exit, host);
  assert.ok(text.startsWith("#cloud-config\n"));
  const doc = parse(text);
  assert.deepEqual(doc.packages, ["wireguard-tools", "nftables", "unattended-upgrades"]);
  assert.equal(doc.ssh_pwauth, false);
  assert.deepEqual(doc.ssh_authorized_keys, ["ssh-ed25519 AAAAC3Nza me@home"]);
  const files = new Map((doc.write_files as WriteFile[]).map((f) => [f.path, f]));
  const wg = files.get("/etc/wg-egress/wg0.conf")!;
  assert.equal(wg.permissions, "0600");
  assert.equal(wg.content, host.wgConfig, "the exact rendered config survives the YAML round trip");
  assert.ok(wg.content.includes(priv) && wg.content.includes(gw));
  assert.equal(files.get("/etc/wg-egress/exit.nft")!.content, host.nftRuleset);
  assert.match(files.get("/etc/sysctl.d/90-wg-egress.conf")!.content, /^net\.ipv4\.ip_forward = 1$/m);
  assert.equal(files.get("/etc/wg-egress/setup.sh")!.permissions, "0700");
  assert.equal(files.get("/etc/wg-egress/setup.sh")!.content, host.setupScript);
  const sshd = files.get("/etc/ssh/sshd_config.d/90-wg-egress.conf")!.content;
  assert.match(sshd, /^PasswordAuthentication no$/m);
  assert.match(sshd, /^PermitRootLogin prohibit-password$/m);
  assert.match(
    files.get("/etc/systemd/system/wg-egress-exit.service")!.content,
    /ExecStart=\/bin\/sh \/etc\/wg-egress\/setup\.sh/,
  );
  assert.match(files.get("/etc/apt/apt.conf.d/20auto-upgrades")!.content, /Unattended-Upgrade "1"/);
  for (const f of files.values())
    if (f.content.includes(priv)) assert.match(f.permissions, /^0[67]00$/, `${f.path} holds the key`);
  assert.deepEqual(doc.runcmd[2], ["systemctl", "enable", "--now", "wg-egress-exit.service"]);
  execFileSync("sh", ["-n"], { input: files.get("/etc/wg-egress/setup.sh")!.content });
});

test("exit render (the CLI) prints parseable user-data with the stored keys; --format script the setup script", async () => {
  const dir = tempDir("wgetest-render-");
  const config = writeConfig(dir, { exit: { sshAuthorizedKeys: ["ssh-ed25519 AAAAC3Nza me@home"] } });
  const missing = await cli(["exit", "render", "-c", config]);
  assert.equal(missing.code, 2);
  assert.match(
    missing.stderr,
    /^wg-egress: no secrets store at .*: create the keys with wg-egress secrets init/,
  );
  assert.equal((await cli(["secrets", "init", "-c", config])).code, 0);
  const r = await cli(["exit", "render", "-c", config]);
  assert.equal(r.code, 0, r.stderr);
  const doc = parse(r.stdout);
  const wg = (doc.write_files as WriteFile[]).find((f) => f.path === "/etc/wg-egress/wg0.conf")!.content;
  const exitPriv = (
    await cli(["secrets", "show", "--reveal", "exit.privateKey", "-c", config])
  ).stdout.trim();
  const gwPriv = (
    await cli(["secrets", "show", "--reveal", "gateway.privateKey", "-c", config])
  ).stdout.trim();
  assert.match(wg, new RegExp(`PrivateKey = ${reEscape(exitPriv)}`));
  assert.match(wg, new RegExp(`PublicKey = ${reEscape(publicKeyOf(gwPriv))}`));
  const other = publicKeyOf(generatePrivateKey());
  const script = await cli([
    "exit",
    "render",
    "--format",
    "script",
    "--gateway-public-key",
    other,
    "-c",
    config,
  ]);
  assert.match(script.stdout, /^#!\/bin\/sh\n/);
  assert.ok(script.stdout.includes(`PublicKey = ${other}`));
  const bad = await cli(["exit", "render", "--gateway-public-key", "nope", "-c", config]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /exit\.gatewayPublicKey = "nope": expected a WireGuard key/);
});

const reEscape = (s: string) => s.replace(/[+/]/g, "\\$&");

test("progress: redrawn in place on a terminal, plain lines otherwise", () => {
  const tty: string[] = [];
  const p = new Progress({ write: (s: string) => tty.push(s), isTTY: true });
  p.update("create server", 0);
  p.update("create server", 0);
  p.update("create server", 50);
  p.note("done");
  assert.deepEqual(tty, ["\r\x1b[Kcreate server: 0%", "\r\x1b[Kcreate server: 50%", "\n", "done\n"]);
  const plain: string[] = [];
  const q = new Progress({ write: (s: string) => plain.push(s), isTTY: false });
  q.update("x", 10);
  q.update("x", 10);
  q.update("x", 100);
  q.end();
  assert.deepEqual(plain, ["x: 10%\n", "x: 100%\n"]);
});

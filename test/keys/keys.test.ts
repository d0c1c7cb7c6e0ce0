import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const MAIN = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));
const cli = (args: string[], input?: string) =>
  spawnSync(process.execPath, [MAIN, ...args], { input, encoding: "utf8", timeout: 20_000 });
const wg = (args: string[], input?: string) => execFileSync("wg", args, { input, encoding: "utf8" }).trim();
const dir = mkdtempSync(join(tmpdir(), "wg-egress-keys-"));

test("keygen --out writes a 0600 key and prints only its public key, as wg pubkey computes it", () => {
  const file = join(dir, "a.key");
  const r = cli(["keygen", "--out", file]);
  assert.equal(r.status, 0, r.stderr);
  const priv = readFileSync(file, "utf8").trim();
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.equal(r.stdout.trim(), wg(["pubkey"], `${priv}\n`));
  assert.ok(!r.stdout.includes(priv), "the private key must not be printed");
});

test("pubkey agrees with wg pubkey for keys made by wg genkey", () => {
  for (let i = 0; i < 3; i++) {
    const priv = wg(["genkey"]);
    const r = cli(["pubkey"], `${priv}\n`);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), wg(["pubkey"], `${priv}\n`));
  }
});

test("keygen --print prints a private key that wg accepts", () => {
  const r = cli(["keygen", "--print"]);
  assert.equal(r.status, 0, r.stderr);
  const priv = r.stdout.trim();
  assert.equal(cli(["pubkey"], priv).stdout.trim(), wg(["pubkey"], priv));
});

test("keygen refuses to overwrite without --force, and --force makes the file 0600", () => {
  const file = join(dir, "b.key");
  writeFileSync(file, "keep me\n", { mode: 0o644 });
  const r = cli(["keygen", "--out", file]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /already exists.*--force/);
  assert.equal(readFileSync(file, "utf8"), "keep me\n");
  const f = cli(["keygen", "--out", file, "--force"]);
  assert.equal(f.status, 0, f.stderr);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.equal(f.stdout.trim(), wg(["pubkey"], readFileSync(file, "utf8")));
});

test("bad input gives one clear line", () => {
  const bad = cli(["pubkey"], "not a key\n");
  assert.equal(bad.status, 2);
  assert.equal(bad.stderr.trim().split("\n").length, 1);
  assert.match(bad.stderr, /not a WireGuard private key/);
  const nowhere = cli(["keygen"]);
  assert.equal(nowhere.status, 2);
  assert.match(nowhere.stderr, /--out FILE/);
});

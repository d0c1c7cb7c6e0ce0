import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { before, test } from "node:test";
import { generatePrivateKey, publicKeyOf } from "../../src/wireguard/keys.js";
import { cli } from "../support/cli.js";
import { tempDir } from "../support/tmp.js";
import { requireTools } from "../support/tools.js";

const wg = (args: string[], input?: string) => execFileSync("wg", args, { input, encoding: "utf8" }).trim();
const dir = tempDir("wgetest-keys-");

before(() => requireTools("wg"));

test("the key functions agree with wg in both directions, on this Node version", async () => {
  for (let i = 0; i < 5; i++) {
    const ours = generatePrivateKey();
    assert.equal(publicKeyOf(ours), wg(["pubkey"], ours));
    const theirs = wg(["genkey"]);
    assert.equal(publicKeyOf(`${theirs}\n`), wg(["pubkey"], theirs));
  }
  // A known pair, so a change that breaks both sides alike still fails.
  assert.equal(
    publicKeyOf("yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="),
    "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=",
  );
});

test("keygen --out writes a 0600 key and prints only its public key, as wg pubkey computes it", async () => {
  const file = join(dir, "a.key");
  const r = await cli(["keygen", "--out", file]);
  assert.equal(r.code, 0, r.stderr);
  const priv = readFileSync(file, "utf8").trim();
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.equal(r.stdout.trim(), wg(["pubkey"], `${priv}\n`));
  assert.ok(!r.stdout.includes(priv), "the private key must not be printed");
});

test("pubkey agrees with wg pubkey for keys made by wg genkey", async () => {
  for (let i = 0; i < 3; i++) {
    const priv = wg(["genkey"]);
    const r = await cli(["pubkey"], { input: `${priv}\n` });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), wg(["pubkey"], `${priv}\n`));
  }
});

test("keygen --print prints a private key that wg accepts", async () => {
  const r = await cli(["keygen", "--print"]);
  assert.equal(r.code, 0, r.stderr);
  const priv = r.stdout.trim();
  assert.equal((await cli(["pubkey"], { input: priv })).stdout.trim(), wg(["pubkey"], priv));
});

test("keygen refuses to overwrite without --force, and --force makes the file 0600", async () => {
  const file = join(dir, "b.key");
  writeFileSync(file, "keep me\n", { mode: 0o644 });
  const r = await cli(["keygen", "--out", file]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /already exists.*--force/);
  assert.equal(readFileSync(file, "utf8"), "keep me\n");
  const f = await cli(["keygen", "--out", file, "--force"]);
  assert.equal(f.code, 0, f.stderr);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.equal(f.stdout.trim(), wg(["pubkey"], readFileSync(file, "utf8")));
});

test("bad input gives one clear line", async () => {
  const bad = await cli(["pubkey"], { input: "not a key\n" });
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr.trim().split("\n").length, 1);
  assert.match(bad.stderr, /not a WireGuard private key/);
  const nowhere = await cli(["keygen"]);
  assert.equal(nowhere.code, 2);
  assert.match(nowhere.stderr, /--out FILE/);
});

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, readdirSync, readFileSync, symlinkSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { run } from "../../src/util/run.js";
import { tempDir } from "../support/tmp.js";

/**
 * The npm package as a user gets it: packed from a copy of this checkout (so prepack builds it, as
 * `npm publish` would), installed globally into a temporary prefix, run from another directory.
 */

const REPO = fileURLToPath(new URL("../../../", import.meta.url));
const { version } = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { version: string };

test("npm pack → npm install -g → wg-egress runs from anywhere", { timeout: 300_000 }, async () => {
  const work = tempDir("wgetest-pack-");
  const src = join(work, "src");
  // The files git knows (committed or not, minus ignored ones), and the installed dev dependencies for the build.
  const files = execFileSync("git", ["ls-files", "-co", "--exclude-standard"], {
    cwd: REPO,
    encoding: "utf8",
  })
    .split("\n")
    .filter(Boolean);
  for (const f of files) {
    mkdirSync(dirname(join(src, f)), { recursive: true });
    cpSync(join(REPO, f), join(src, f));
  }
  symlinkSync(join(REPO, "node_modules"), join(src, "node_modules"));

  const pack = await run("npm", ["pack", "--json", "--pack-destination", work], {
    timeoutMs: 180_000,
    env: { ...process.env, npm_config_loglevel: "error" },
  });
  const [info] = JSON.parse(pack.stdout.slice(pack.stdout.indexOf("["))) as {
    filename: string;
    files: { path: string }[];
  }[];
  const shipped = info.files.map((f) => f.path);
  assert.ok(shipped.includes("dist/src/cli/main.js"), "the compiled CLI is in the package");
  assert.ok(shipped.includes("LICENSE") && shipped.includes("bin/wg-egress"));
  for (const p of shipped)
    assert.match(
      p,
      /^(bin\/|dist\/src\/.*\.js$|dist\/src\/config\/defaults\.json$|README\.md$|LICENSE$|package\.json$)/,
      `${p} does not belong in the package`,
    );

  const prefix = join(work, "global");
  await run(
    "npm",
    [
      "install",
      "-g",
      "--prefix",
      prefix,
      "--prefer-offline",
      "--no-audit",
      "--no-fund",
      join(work, info.filename),
    ],
    {
      timeoutMs: 180_000,
    },
  );
  const bin = join(prefix, "bin", "wg-egress");
  const elsewhere = {
    cwd: "/",
    encoding: "utf8" as const,
    env: { ...process.env, WG_EGRESS_CONFIG: "" },
    timeout: 30_000,
  };
  assert.match(execFileSync(bin, ["--help"], elsewhere), /Usage: wg-egress/);
  assert.equal(execFileSync(bin, ["--version"], elsewhere).trim(), version);
  // The defaults in the help come from the schema at build time: the package must carry them.
  assert.match(
    execFileSync(bin, ["proxy", "--help"], elsewhere),
    /\(proxy\.listen; default: 127\.0\.0\.1:1080\)/,
  );
  const key = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
  assert.equal(
    execFileSync(bin, ["pubkey"], { ...elsewhere, input: `${key}\n` }).trim(),
    "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=",
  );
  assert.ok(
    readdirSync(join(prefix, "lib", "node_modules", "wg-egress", "node_modules")).includes("commander"),
  );
});

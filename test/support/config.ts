import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";

/** A config file in `dir` whose secrets live in `dir` too; `extra` is merged at the top level. */
export function writeConfig(dir: string, extra: Record<string, unknown> = {}, header = ""): string {
  const file = join(dir, "config.yaml");
  // Every file a command may write (secrets, the gateway's key) stays inside the test's directory.
  const gateway = { privateKeyFile: join(dir, "gateway.key"), ...(extra.gateway as object | undefined) };
  const base = { secrets: { file: join(dir, "secrets.age"), identityFile: join(dir, "age.key") } };
  writeFileSync(file, header + stringify({ ...base, ...extra, gateway }));
  return file;
}

import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { UsageError, UserError } from "../util/errors.js";
import { isWireGuardKey } from "../wireguard/keys.js";

/** Reads and checks a private key file; `key` names the config key for the error message. */
export function readPrivateKeyFile(path: string, key = "gateway.privateKeyFile"): string {
  let text: string;
  try {
    if (statSync(path).mode & 0o077)
      throw new UsageError(`${path} (${key}) is readable by other users: chmod 600 ${path}`);
    text = readFileSync(path, "utf8").trim();
  } catch (e) {
    if (e instanceof UserError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(
      `cannot read ${path} (${key}): ${code ?? e}; create it with: wg-egress keygen --out ${path}`,
    );
  }
  if (!isWireGuardKey(text))
    throw new UsageError(
      `${path} (${key}) does not hold a WireGuard private key (44 characters of base64, as from wg genkey)`,
    );
  return text;
}

/**
 * Hands a secret to a command as a 0600 file in a fresh 0700 directory (on tmpfs /run when present),
 * removed afterwards. Node's stdio pipes are sockets, which `wg` cannot fopen as /dev/stdin.
 */
export async function withSecretFile<T>(content: string, fn: (path: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(existsSync("/run") ? "/run" : tmpdir(), "wg-egress-"));
  try {
    const file = join(dir, "secret");
    writeFileSync(file, content, { mode: 0o600 });
    return await fn(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

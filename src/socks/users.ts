import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { UsageError } from "../util/errors.js";

export interface User {
  name: string;
  password: string;
}

/**
 * Parses a users file: one `name:password` per line (the password may contain ':'); blank lines and
 * lines starting with '#' are skipped. A bad line is a one-line error naming file:line, never its content.
 */
export function parseUsersFile(text: string, file: string): User[] {
  const users: User[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.replace(/\r$/, "");
    if (line.trim() === "" || line.startsWith("#")) return;
    const colon = line.indexOf(":");
    const name = line.slice(0, colon);
    const password = line.slice(colon + 1);
    const bad =
      colon < 1
        ? "expected name:password"
        : password === ""
          ? "empty password"
          : Buffer.byteLength(name) > 255 || Buffer.byteLength(password) > 255
            ? "name and password are limited to 255 bytes (RFC 1929)"
            : undefined;
    if (bad) throw new UsageError(`${file}:${i + 1}: ${bad}`);
    users.push({ name, password });
  });
  return users;
}

export function readUsersFile(file: string): User[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new UsageError(`cannot read users file ${file}: ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
  return parseUsersFile(text, file);
}

function digest(s: string): Buffer {
  return createHash("sha256").update(s, "utf8").digest();
}

/** Checks RFC 1929 credentials in constant time (equal-length digests; unknown names cost the same). */
export class UserStore {
  private readonly digests = new Map<string, Buffer>();
  private static readonly DUMMY = digest("\0wg-egress-no-such-user");

  constructor(users: readonly User[]) {
    for (const u of users) this.digests.set(u.name, digest(u.password));
  }

  get size(): number {
    return this.digests.size;
  }

  verify(name: string, password: string): boolean {
    const want = this.digests.get(name);
    const same = timingSafeEqual(want ?? UserStore.DUMMY, digest(password));
    return want !== undefined && same;
  }
}

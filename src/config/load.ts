import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import type { z } from "zod";
import { UsageError, type UserError } from "../util/errors.js";
import { type Config, configSchema } from "./schema.js";

export const DEFAULT_CONFIG_PATH = "/etc/wg-egress/config.yaml";

function describe(value: unknown): string {
  if (value === undefined) return "missing";
  const s = JSON.stringify(value);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function keyPath(path: readonly PropertyKey[]): string {
  return (
    path.map((p, i) => (typeof p === "number" ? `[${p}]` : `${i ? "." : ""}${String(p)}`)).join("") || "(top)"
  );
}

/** One line per problem: the key, the bad value, and what is expected. */
export function formatConfigError(source: string, error: z.ZodError): string {
  const issue = error.issues[0];
  let what = issue.message;
  if (issue.code === "unrecognized_keys")
    what = `unknown key(s) ${issue.keys.join(", ")}: remove or fix the spelling`;
  const at = keyPath(issue.path);
  const input = "input" in issue ? describe(issue.input) : undefined;
  const more = error.issues.length > 1 ? ` (+${error.issues.length - 1} more)` : "";
  return `invalid config ${source}: ${at}${input !== undefined && issue.code !== "unrecognized_keys" ? ` = ${input}` : ""}: ${what}${more}`;
}

/** Validates raw config data (from YAML, merged with flags); throws a UserError with a one-line message. */
export function parseConfig(raw: unknown, source = "(defaults)"): Config {
  const result = configSchema.safeParse(raw ?? {}, { reportInput: true });
  if (!result.success) throw new UsageError(formatConfigError(source, result.error));
  return result.data;
}

/** A YAML parser error as one line: the message and where, without the snippet (and its dangling colon). */
export function yamlError(file: string, e: unknown): UserError {
  const first = (e as Error).message.split("\n")[0].replace(/:\s*$/, "");
  return new UsageError(`invalid YAML in ${file}: ${first}`);
}

/** Why a config file cannot be read, and the fix for that cause (not always "pass another file"). */
function unreadable(file: string, code: string | undefined): UserError {
  if (code === "EACCES") {
    const who = process.getuid?.() === 0 ? "root" : `uid ${process.getuid?.()}`;
    return new UsageError(
      `cannot read config ${file} as ${who}: permission denied; the file must be readable by this user (the proxy: root:wg-egress-proxy, mode 0640) and every directory above it searchable (chmod o+x, or 0755)`,
    );
  }
  if (code === "ENOENT")
    return new UsageError(`cannot read config ${file}: no such file; pass an existing file with --config`);
  if (code === "EISDIR")
    return new UsageError(
      `cannot read config ${file}: it is a directory; pass the config file with --config`,
    );
  return new UsageError(`cannot read config ${file}: ${code}`);
}

/**
 * Reads the YAML config. An explicitly given path must exist; the default path may be absent,
 * in which case the embedded defaults apply (the proxy on 127.0.0.1:1080).
 */
export function readConfigFile(path: string | undefined): { raw: Record<string, unknown>; source: string } {
  const file = path ?? DEFAULT_CONFIG_PATH;
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (!path && code === "ENOENT") return { raw: {}, source: "(embedded defaults)" };
    throw unreadable(file, code ?? String(e));
  }
  let raw: unknown;
  try {
    raw = parseYaml(text) ?? {};
  } catch (e) {
    throw yamlError(file, e);
  }
  if (typeof raw !== "object" || Array.isArray(raw))
    throw new UsageError(`invalid config ${file}: expected a mapping at the top`);
  return { raw: raw as Record<string, unknown>, source: file };
}

/** Sets `value` at a dotted path inside `raw` (flags override config keys). */
export function setPath(raw: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split(".");
  let obj = raw;
  for (const k of keys.slice(0, -1)) {
    if (typeof obj[k] !== "object" || obj[k] === null) obj[k] = {};
    obj = obj[k] as Record<string, unknown>;
  }
  obj[keys.at(-1)!] = value;
}

export function loadConfig(path: string | undefined, overrides: Record<string, unknown> = {}): Config {
  const { raw, source } = readConfigFile(path);
  for (const [k, v] of Object.entries(overrides)) if (v !== undefined) setPath(raw, k, v);
  return parseConfig(raw, source);
}

import { type Command, InvalidArgumentError, Option } from "commander";
import { schemaDefault } from "../config/defaults.js";

/**
 * Each command declares its flags once, as a table: the flag, the config key it sets, how its value is
 * parsed, and its help. The table makes the commander options and the config overrides, and the help
 * shows each key's default from the schema. A flag given on the command line replaces the config
 * file's value; flags without a key belong to the command alone (--dry-run, --json).
 */
export interface Flag {
  /** commander syntax: "--listen <host:port>", "-i, --interface <name>", "--no-keepalive". */
  flags: string;
  help: string;
  /** The dotted config key the flag overrides. */
  key?: string;
  /** Parses one value (a repeatable flag gets the values so far as `previous`); throw InvalidArgumentError. */
  parse?: (value: string, previous: unknown) => unknown;
  /**
   * What the key gets for the parsed value; undefined = nothing (two flags sharing an attribute, e.g.
   * `--keepalive <s>` and `--no-keepalive`, each take their own values).
   */
  toConfig?: (value: unknown) => unknown;
  /** Help's "(default: …)" text instead of the schema's value; false = none. */
  defaultText?: string | false;
  /** A default for a flag without a config key. */
  default?: unknown;
}

/** The WireGuard interface, shared by gateway, doctor and metrics. */
export const INTERFACE: Flag = {
  flags: "-i, --interface <name>",
  key: "gateway.interface",
  help: "WireGuard interface",
};

/** --exit for commands that show or run every exit unless told one. */
export const EXIT_ALL: Flag = {
  flags: "--exit <name>",
  help: "only this exit (a name from exits:); default: all of them",
};

/** --exit for commands that work on one exit. */
export const EXIT_ONE: Flag = {
  flags: "--exit <name>",
  help: "the exit to work on (a name from exits:); needed when the config has several",
};

/** Repeatable flag: `--listen a --listen b` → ["a", "b"]. */
export function repeatable(parse: (v: string) => unknown = (v) => v) {
  return (value: string, previous: unknown): unknown[] => [...((previous as unknown[]) ?? []), parse(value)];
}

/** A number flag; `integer` for whole numbers; always >= min. */
export function number(flag: string, opts: { integer?: boolean; min?: number } = {}) {
  const min = opts.min ?? 0;
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === "" || !Number.isFinite(n) || n < min || (opts.integer && !Number.isInteger(n)))
      throw new InvalidArgumentError(
        `${flag} expects a ${opts.integer ? "whole " : ""}number >= ${min}, got "${v}"`,
      );
    return n;
  };
}

export const port = (flag: string) => {
  const n = number(flag, { integer: true, min: 1 });
  return (v: string): number => {
    const p = n(v);
    if (p > 65535) throw new InvalidArgumentError(`${flag} expects a port 1-65535, got "${v}"`);
    return p;
  };
};

/** "(default: …)" as a user reads it: host:port objects joined, lists comma-separated, nothing when empty. */
function shown(value: unknown): string | undefined {
  if (value === undefined || value === null || value === "" || value === false) return undefined;
  if (Array.isArray(value)) return value.length ? value.map(shown).join(", ") : undefined;
  if (typeof value === "object") {
    const hp = value as { host?: unknown; port?: unknown };
    if (typeof hp.host === "string" && typeof hp.port === "number")
      return hp.host.includes(":") ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
    return JSON.stringify(value);
  }
  return String(value);
}

function optionOf(f: Flag): Option {
  const opt = new Option(f.flags, f.help);
  const takesValue = opt.required || opt.optional;
  const text =
    f.defaultText === false
      ? undefined
      : (f.defaultText ?? (takesValue && f.key ? shown(schemaDefault(f.key)) : undefined));
  // The key tells where the same setting lives in the config file.
  const notes = [f.key, f.default === undefined && text ? `default: ${text}` : undefined].filter(Boolean);
  if (notes.length) opt.description = `${f.help} (${notes.join("; ")})`;
  if (f.default !== undefined) opt.default(f.default, text);
  if (f.parse) opt.argParser(f.parse);
  return opt;
}

/** Adds the table's options to `cmd`. */
export function addFlags(cmd: Command, table: readonly Flag[]): Command {
  for (const f of table) cmd.addOption(optionOf(f));
  return cmd;
}

/** The config overrides the command line gave: dotted key → value (only flags really given). */
export function overridesOf(cmd: Command, table: readonly Flag[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of table) {
    if (!f.key) continue;
    const name = new Option(f.flags).attributeName();
    if (cmd.getOptionValueSource(name) !== "cli") continue;
    const value = cmd.getOptionValue(name);
    const v = f.toConfig ? f.toConfig(value) : value;
    if (v !== undefined) out[f.key] = v;
  }
  return out;
}

import { readFileSync } from "node:fs";

/**
 * The config schema's defaults as JSON, written next to this module by the build (`npm run build` runs
 * write-defaults.js), so `--help` can show them without loading zod and the schema: that costs more
 * than the rest of a start.
 */
export const DEFAULTS_JSON = new URL("./defaults.json", import.meta.url);

let cached: Record<string, unknown> | undefined;

/** The value of a dotted config key in the defaults; undefined when unknown (or the file was not built). */
export function schemaDefault(key: string): unknown {
  if (!cached) {
    try {
      cached = JSON.parse(readFileSync(DEFAULTS_JSON, "utf8")) as Record<string, unknown>;
    } catch {
      cached = {}; // help then shows no defaults; nothing else depends on this file
    }
  }
  let v: unknown = cached;
  for (const k of key.split("."))
    v = v !== null && typeof v === "object" ? (v as Record<string, unknown>)[k] : undefined;
  return v;
}

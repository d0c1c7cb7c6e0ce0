import type { Command } from "commander";
import { loadConfig } from "../config/load.js";
import type { Config } from "../config/schema.js";
import { log } from "../util/log.js";

/** Collects a repeatable flag into an array (`--listen a --listen b`). */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

export function addConfigOption(cmd: Command): Command {
  return cmd.option("-c, --config <file>", "config file (YAML)", process.env.WG_EGRESS_CONFIG);
}

/**
 * Loads the config file named by --config (or the default path), applies flag overrides given as
 * dotted config keys, validates, and applies log.level unless --log-level was given.
 */
export function configFrom(opts: { config?: string }, overrides: Record<string, unknown> = {}): Config {
  const config = loadConfig(opts.config, overrides);
  if (!process.argv.includes("--log-level") && !process.env.WG_EGRESS_LOG_LEVEL) log.level = config.log.level;
  return config;
}

import { loadConfig } from "../config/load.js";
import type { Config } from "../config/schema.js";
import { log } from "../util/log.js";

/**
 * Loads the config file named by --config (or the default path), applies flag overrides given as
 * dotted config keys, validates, and applies log.level unless --log-level was given. Loaded by actions
 * only (it brings the schema): declaring commands must stay cheap.
 */
export function configFrom(opts: { config?: string }, overrides: Record<string, unknown> = {}): Config {
  const config = loadConfig(opts.config, overrides);
  if (!process.argv.includes("--log-level") && !process.env.WG_EGRESS_LOG_LEVEL) log.level = config.log.level;
  return config;
}

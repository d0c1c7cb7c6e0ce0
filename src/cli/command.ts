import type { Command } from "commander";
import type { Config } from "../config/schema.js";
import { addFlags, type Flag, overridesOf } from "./flags.js";

/** The default config path (config/load.ts has the same constant; this module must not load the schema). */
const DEFAULT_CONFIG = "/etc/wg-egress/config.yaml";

export const CONFIG_FLAG: Flag = {
  flags: "-c, --config <file>",
  help: "config file (YAML); default $WG_EGRESS_CONFIG, else /etc/wg-egress/config.yaml when it exists",
  defaultText: false,
};

/** What an action gets: its flags, its arguments, and the config with the flags applied. */
export interface Invocation<O> {
  opts: O & { config?: string };
  args: string[];
  /** The config file in use: --config, else $WG_EGRESS_CONFIG, else the default path. */
  configFile: string;
  /** Loads and validates the config with the given flags applied (and `extra` overrides on top). */
  config(extra?: Record<string, unknown>): Promise<Config>;
}

export interface CommandSpec<O> {
  /** commander syntax with arguments, e.g. "set-endpoint [endpoint]". */
  name: string;
  description: string;
  flags?: readonly Flag[];
  /** Text after the options in --help. */
  help?: string;
  /** Whether the command reads the config file (adds -c/--config); default true. */
  usesConfig?: boolean;
  /**
   * The action: keep its heavy imports (schema, cloud client, age, …) inside it, so that declaring every
   * command for `--help` costs almost nothing.
   */
  run(inv: Invocation<O>): Promise<void> | void;
}

/** Declares a command from its spec: options from its flag table, config overrides from the flags given. */
export function defineCommand<O>(parent: Command, spec: CommandSpec<O>): Command {
  const flags = spec.usesConfig === false ? (spec.flags ?? []) : [CONFIG_FLAG, ...(spec.flags ?? [])];
  const cmd = addFlags(parent.command(spec.name).description(spec.description), flags);
  if (spec.help) cmd.addHelpText("after", spec.help);
  cmd.action(async (...params: unknown[]) => {
    const self = params.at(-1) as Command;
    const opts = self.opts<O & { config?: string }>();
    const file = opts.config || process.env.WG_EGRESS_CONFIG || undefined;
    const overrides = overridesOf(self, flags);
    await spec.run({
      opts,
      args: self.args,
      configFile: file ?? DEFAULT_CONFIG,
      config: async (extra = {}) =>
        (await import("./common.js")).configFrom({ config: file }, { ...overrides, ...extra }),
    });
  });
  return cmd;
}

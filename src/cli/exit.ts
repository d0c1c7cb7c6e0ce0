import type { Command } from "commander";

export function registerExit(program: Command): void {
  program.command("exit").description("(not yet implemented)");
}

import type { Command } from "commander";

export function registerRender(program: Command): void {
  program.command("render").description("(not yet implemented)");
}

import { parse, stringify } from "yaml";
import { z } from "zod";
import { exitName } from "../config/egress-schema.js";
import type { ExitSpec } from "../config/exits.js";
import { hostPortText, wgKey } from "../config/types.js";
import { OperationError } from "../util/errors.js";
import type { SecretField } from "./fields.js";

/** Another exit's material: its own key, the gateway's key for it when that is its own, its endpoint. */
const exitSecretsSchema = z
  .object({ privateKey: wgKey, gatewayPrivateKey: wgKey.optional(), endpoint: hostPortText.optional() })
  .strict();

/**
 * What the encrypted store holds: both sides' WireGuard keys, the API token and the exit's endpoint —
 * the first exit's at the top, as with one exit (a one-exit file reads and writes unchanged), every
 * other exit's under `exits.NAME`.
 */
export const secretsDataSchema = z
  .object({
    exit: z.object({ privateKey: wgKey }).strict(),
    gateway: z.object({ privateKey: wgKey }).strict(),
    hcloudToken: z.string().min(1).optional(),
    endpoint: hostPortText.optional(),
    exits: z.record(exitName, exitSecretsSchema).optional(),
  })
  .strict();

export type SecretsData = z.infer<typeof secretsDataSchema>;

/** One exit's material in the store; gatewayPrivateKey only when that exit has its own. */
export type ExitSecrets = z.infer<typeof exitSecretsSchema>;

type Exit = Pick<ExitSpec, "name" | "primary">;

/** This exit's material, undefined when the store has none for it yet. */
export function exitSecretsOf(data: SecretsData, x: Exit): ExitSecrets | undefined {
  if (x.primary) return { privateKey: data.exit.privateKey, endpoint: data.endpoint };
  return data.exits?.[x.name];
}

/** The store with this exit's material replaced (endpoint undefined = none). */
export function withExitSecrets(data: SecretsData, x: Exit, s: ExitSecrets): SecretsData {
  if (x.primary) {
    const { endpoint: _old, ...rest } = data;
    return { ...rest, exit: { privateKey: s.privateKey }, ...(s.endpoint ? { endpoint: s.endpoint } : {}) };
  }
  const { endpoint, ...own } = s;
  return { ...data, exits: { ...data.exits, [x.name]: { ...own, ...(endpoint ? { endpoint } : {}) } } };
}

/** The gateway private key this exit's peer knows: its own, else the store's one gateway key. */
export const gatewayKeyOf = (data: SecretsData, x: Exit): string =>
  exitSecretsOf(data, x)?.gatewayPrivateKey ?? data.gateway.privateKey;

export function secretField(data: SecretsData, field: SecretField, x: Exit): string | undefined {
  if (field === "hcloudToken") return data.hcloudToken;
  return field === "exit.privateKey" ? exitSecretsOf(data, x)?.privateKey : gatewayKeyOf(data, x);
}

export function serializeSecrets(data: SecretsData): string {
  return stringify(secretsDataSchema.parse(data));
}

/** Parses decrypted YAML text; the message names the file but never a value. */
export function parseSecretsYaml(text: string, source: string): unknown {
  try {
    return parse(text);
  } catch {
    throw new OperationError(
      `${source}: decrypted content is not YAML; recreate it with wg-egress secrets init --force`,
    );
  }
}

/** Checks decrypted data; the message names the file and the field but never a value. */
export function validateSecrets(raw: unknown, source: string): SecretsData {
  const r = secretsDataSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new OperationError(`${source}: ${issue.path.map(String).join(".") || "(top)"}: ${issue.message}`);
  }
  return r.data;
}

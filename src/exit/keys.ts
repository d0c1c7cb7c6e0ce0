import type { Config } from "../config/schema.js";
import { openSecretsStore } from "../secrets/store.js";
import { UsageError } from "../util/errors.js";
import { publicKeyOf } from "../wireguard/keys.js";
import type { ExitKeys } from "./host.js";

/**
 * The exit's keys for rendering: its private key from the secrets store; the gateway's public key from
 * exit.gatewayPublicKey, or derived from the stored gateway private key.
 */
export async function exitKeysFromStore(config: Config): Promise<ExitKeys> {
  const store = openSecretsStore(config.secrets);
  if (!store.exists())
    throw new UsageError(
      `no secrets store at ${store.file}: create the keys with wg-egress secrets init (or set secrets.file)`,
    );
  const data = await store.read();
  return {
    privateKey: data.exit.privateKey,
    gatewayPublicKey: config.exit.gatewayPublicKey ?? publicKeyOf(data.gateway.privateKey),
  };
}

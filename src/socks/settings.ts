import type { ProxyConfig } from "../config/proxy-schema.js";
import { ClientPolicy, defaultClientCidrs } from "../policy/clients.js";
import { DestinationPolicy } from "../policy/destination.js";
import type { Egress, NameRequest } from "../policy/egress.js";
import {
  type DnsObserver,
  type ExitResolution,
  resolveThroughExit,
  resolveUnrouted,
} from "../policy/exit-dns.js";
import { DestinationResolver } from "../policy/resolve.js";
import { UsageError } from "../util/errors.js";
import type { HostPort } from "../util/hostport.js";
import { defaultMaxConnections, readFdLimit } from "./fd-limit.js";
import { readUsersFile, UserStore } from "./users.js";

/**
 * Everything a connection consults, built once from the config. SIGHUP builds a new one and swaps
 * it in: new connections use it, established ones keep the one they started with.
 */
export interface ProxySettings {
  listen: HostPort[];
  users: UserStore;
  /** Username/password required (users configured); false only without any users source. */
  requireAuth: boolean;
  /** The config said `auth: none` (open access on purpose). */
  openOnPurpose: boolean;
  clients: ClientPolicy;
  /** Who may use /metrics. */
  metricsClients: ClientPolicy;
  destinations: DestinationPolicy;
  /** The resolver without exits (proxy.dns, unbound). */
  resolver: DestinationResolver;
  /** Each exit's resolver: its servers, queried from its tunnel address (several exits). */
  resolverOf(exit: string): DestinationResolver;
  /** 0 = keepalive off. */
  keepaliveMs: number;
  /** 0 = relayed connections never time out. */
  idleTimeoutMs: number;
  handshakeTimeoutMs: number;
  connectTimeoutMs: number;
  maxConnections: number;
  maxPerClient: number;
  /** Process-wide memory for the relay's large read buffers. */
  relayBufferBytes: number;
  httpConnect: boolean;
  /** Which exit each connection leaves through (several exits); undefined: the one tunnel, nothing bound. */
  egress: Egress | undefined;
}

const ms = (seconds: number) => Math.round(seconds * 1000);

/**
 * Users from every source, and whether they are required. An empty source is an error (UserError,
 * exit 2), never "no users": at start the proxy does not run, on SIGHUP the previous config stays.
 */
function authOf(cfg: ProxyConfig): { users: UserStore; requireAuth: boolean; openOnPurpose: boolean } {
  const fromFile = cfg.usersFile ? readUsersFile(cfg.usersFile) : [];
  if (cfg.usersFile && fromFile.length === 0) {
    throw new UsageError(
      `users file ${cfg.usersFile} has no users: add name:password lines, or remove proxy.usersFile (proxy.auth: none for open access)`,
    );
  }
  const users = [...cfg.users, ...fromFile];
  if (cfg.auth === "none" && users.length > 0) {
    throw new UsageError(
      "proxy.auth is none but users are configured (proxy.users / proxy.usersFile): remove them, or remove proxy.auth",
    );
  }
  if (cfg.auth === "password" && users.length === 0) {
    throw new UsageError(
      "proxy.auth is password but no users are configured: set proxy.users or proxy.usersFile",
    );
  }
  return { users: new UserStore(users), requireAuth: users.length > 0, openOnPurpose: cfg.auth === "none" };
}

/**
 * One resolver per exit (`exitServers`: exit → its DNS servers), bound to the exit's tunnel addresses
 * when there are several; an exit without servers uses the proxy's resolver (one exit: today's).
 */
function resolversOf(
  dns: ProxyConfig["dns"],
  egress: Egress | undefined,
  exitServers: ReadonlyMap<string, string[]>,
): { resolver: DestinationResolver; resolverOf(exit: string): DestinationResolver } {
  const resolver = new DestinationResolver(dns);
  const byExit = new Map(
    [...exitServers].map(([exit, servers]) => [
      exit,
      new DestinationResolver({ ...dns, servers }, egress?.sourceOf(exit)),
    ]),
  );
  return {
    resolver,
    resolverOf(exit) {
      const r = byExit.get(exit);
      // Several exits: every one has its own (the config check requires servers); an unknown one is a bug.
      if (!r && byExit.size > 1) throw new Error(`no resolver for exit ${exit}`);
      return r ?? resolver;
    },
  };
}

/** Reads the users file too; throws a UserError on a bad one. */
export function buildSettings(
  cfg: ProxyConfig,
  egress?: Egress,
  exitServers: ReadonlyMap<string, string[]> = new Map(),
): ProxySettings {
  const listen = cfg.listen;
  const clients = new ClientPolicy(
    cfg.allowClients.length > 0 ? cfg.allowClients : defaultClientCidrs(listen),
  );
  return {
    listen,
    ...authOf(cfg),
    clients,
    metricsClients: cfg.metricsAllowClients.length > 0 ? new ClientPolicy(cfg.metricsAllowClients) : clients,
    destinations: new DestinationPolicy(cfg.destinations),
    ...resolversOf(cfg.dns, egress, exitServers),
    keepaliveMs: cfg.keepalive.enabled ? ms(cfg.keepalive.idleSeconds) : 0,
    idleTimeoutMs: ms(cfg.idleTimeoutSeconds),
    handshakeTimeoutMs: ms(cfg.handshakeTimeoutSeconds),
    connectTimeoutMs: ms(cfg.connectTimeoutSeconds),
    maxConnections: cfg.limits.maxConnections ?? defaultMaxConnections(readFdLimit()?.soft),
    maxPerClient: cfg.limits.maxPerClient,
    relayBufferBytes: cfg.limits.relayBufferMiB * 1024 * 1024,
    httpConnect: cfg.httpConnect,
    egress,
  };
}

/** A destination name, resolved through the exit the connection takes (or the one resolver without exits). */
export function resolveDestination(
  settings: ProxySettings,
  req: NameRequest,
  name: string,
  observe: DnsObserver,
): Promise<ExitResolution> {
  const { egress, resolver, resolverOf } = settings;
  return egress
    ? resolveThroughExit(egress, resolverOf, req, name, observe)
    : resolveUnrouted(resolver, name, observe);
}

/**
 * Why a reload must not apply: it would turn authentication off without the config saying so
 * (`auth: none`). Undefined when it may.
 */
export function reloadRefusal(current: ProxySettings, next: ProxySettings): string | undefined {
  if (current.requireAuth && !next.requireAuth && !next.openOnPurpose)
    return "the new config has no users, which would turn authentication off: set proxy.auth: none if that is intended";
  return undefined;
}

import { isIP } from "node:net";
import ipaddr from "ipaddr.js";
import { stringify } from "yaml";
import type { Config } from "../config/schema.js";
import { UsageError } from "../util/errors.js";
import { formatHostPort, type HostPort } from "../util/hostport.js";
import { alertGroups, GATEWAY_JOB } from "./alerts.js";
import { renderGrafana } from "./grafana.js";

/**
 * Kubernetes manifests so pods use a name (egress-proxy.infra.svc:1080) instead of the gateway's IP:
 * a Service without selector + an EndpointSlice pointing at the proxy's LAN address; ScrapeConfigs for
 * the two scrape targets (the gateway's exporter, and the proxy's own /metrics: a separate process
 * running as another user); the Grafana dashboard ConfigMap (sidecar label grafana_dashboard: "1");
 * the PrometheusRule with the alerts. PURE.
 */

export interface K8sOptions {
  namespace: string;
  /** The Service's name: pods reach the proxy at <name>.<namespace>.svc:<port>. */
  name: string;
  /** The gateway's LAN address; default: the first proxy.listen address that is not loopback/wildcard. */
  address?: string;
  /** Extra labels on ScrapeConfig/PrometheusRule, for the Prometheus' selectors (e.g. release=kube-prometheus-stack). */
  labels: Record<string, string>;
}

export interface K8sResult {
  objects: Record<string, unknown>[];
  /** Things the user should fix for the manifests to work; printed as comments. */
  warnings: string[];
}

const kind = (host: string) => {
  if (host === "0.0.0.0" || host === "::") return "wildcard";
  return ipaddr.process(host).range() === "loopback" ? "loopback" : "routable";
};

/**
 * Where Prometheus (outside the gateway) must connect for an endpoint listening on `listen`: a wildcard
 * listener is reached at the gateway's LAN address; a loopback one cannot be reached at all, and a target
 * where nothing listens would only fail silently in Prometheus: refused, with the fix.
 */
function scrapeTarget(listen: HostPort, gateway: string, key: string): string {
  if (isIP(listen.host) && kind(listen.host) === "loopback")
    throw new UsageError(
      `${key} is ${formatHostPort(listen)} (loopback): Prometheus in the cluster cannot reach it, and nothing listens on ${formatHostPort({ host: gateway, port: listen.port })}; set ${key} to ${formatHostPort({ host: gateway, port: listen.port })} (or ${formatHostPort({ host: isIP(gateway) === 6 ? "::" : "0.0.0.0", port: listen.port })})`,
    );
  return formatHostPort(
    isIP(listen.host) && kind(listen.host) === "wildcard" ? { host: gateway, port: listen.port } : listen,
  );
}

export function k8sObjects(config: Config, opts: K8sOptions): K8sResult {
  const warnings: string[] = [];
  const listens = config.proxy.listen;
  const lan = listens.find((l) => isIP(l.host) && kind(l.host) === "routable");
  const address = opts.address ?? lan?.host;
  if (!address || !isIP(address))
    throw new UsageError(
      `proxy.listen (${config.proxy.listen.join(", ")}) has no LAN address for the EndpointSlice: set proxy.listen to the gateway's LAN address (e.g. 10.1.0.1:1080) or pass --address`,
    );
  const port = lan?.port ?? listens[0].port;
  const meta = (name: string, labels: Record<string, string> = {}) => ({
    name,
    namespace: opts.namespace,
    labels: { "app.kubernetes.io/name": "wg-egress", "app.kubernetes.io/managed-by": "wg-egress", ...labels },
  });
  const scrape = (name: string, target: string, job: string) => ({
    apiVersion: "monitoring.coreos.com/v1alpha1",
    kind: "ScrapeConfig",
    metadata: meta(name, opts.labels),
    spec: {
      staticConfigs: [{ targets: [target], labels: { job } }],
      metricsPath: "/metrics",
      scrapeInterval: "30s",
    },
  });

  const objects: Record<string, unknown>[] = [
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: meta(opts.name),
      // No selector: the EndpointSlice below says where the endpoints are (the gateway, outside the cluster).
      spec: { type: "ClusterIP", ports: [{ name: "socks", port, targetPort: port, protocol: "TCP" }] },
    },
    {
      apiVersion: "discovery.k8s.io/v1",
      kind: "EndpointSlice",
      metadata: meta(`${opts.name}-gateway`, {
        "kubernetes.io/service-name": opts.name,
        "endpointslice.kubernetes.io/managed-by": "wg-egress",
      }),
      addressType: isIP(address) === 6 ? "IPv6" : "IPv4",
      endpoints: [{ addresses: [address], conditions: { ready: true } }],
      ports: [{ name: "socks", port, protocol: "TCP" }],
    },
    scrape(
      `${opts.name}-gateway`,
      scrapeTarget(config.gateway.metrics, address, "gateway.metrics"),
      GATEWAY_JOB,
    ),
  ];
  if (config.proxy.metrics)
    objects.push(
      scrape(
        `${opts.name}-proxy`,
        scrapeTarget(config.proxy.metrics, address, "proxy.metrics"),
        "wg-egress-proxy",
      ),
    );
  else
    warnings.push(
      `proxy.metrics is unset: the proxy's connection metrics are not served; set it (e.g. ${formatHostPort({ host: address, port: 9587 })}) for the second ScrapeConfig`,
    );
  objects.push(
    {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: meta(`${opts.name}-dashboard`, { grafana_dashboard: "1" }),
      data: { "wg-egress.json": renderGrafana(config) },
    },
    {
      apiVersion: "monitoring.coreos.com/v1",
      kind: "PrometheusRule",
      metadata: meta(opts.name, opts.labels),
      spec: { groups: alertGroups(config) },
    },
  );
  return { objects, warnings };
}

export function renderK8s(config: Config, opts: K8sOptions): string {
  const { objects, warnings } = k8sObjects(config, opts);
  const head = [
    "# Rendered by `wg-egress render k8s`.",
    `# Pods use socks5://${opts.name}.${opts.namespace}.svc:${(objects[0] as { spec: { ports: { port: number }[] } }).spec.ports[0].port}`,
    ...warnings.map((w) => `# WARNING: ${w}`),
  ];
  return `${head.join("\n")}\n${objects.map((o) => stringify(o, { blockQuote: "literal" })).join("---\n")}`;
}

/**
 * Prometheus metrics and the /metrics, /healthz, /readyz endpoints. The
 * registry is per agent (not prom-client's global one) so tests can run
 * several agents in one process.
 */
import * as http from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { messageOf } from '../errors.js';

export interface AgentMetrics {
  registry: Registry;
  reconciles: Counter<'result'>;
  reconcileDuration: Histogram<'result'>;
  vgpus: Gauge<'profile' | 'state'>;
  blocked: Gauge;
  errors: Counter<'kind'>;
  allocations: Gauge<'resource'>;
  allocateCalls: Counter<'resource' | 'result'>;
  apiRequests: Gauge<'verb'>;
  state: Gauge<'state'>;
  validation: Gauge<'check'>;
  drift: Counter;
}

export function createMetrics(opts: { defaultMetrics?: boolean } = {}): AgentMetrics {
  const registry = new Registry();
  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'vmgpu_agent_' });
  const m: AgentMetrics = {
    registry,
    reconciles: new Counter({ name: 'vmgpu_agent_reconciles_total', help: 'Reconciles by result (success, pending, failed, noop)', labelNames: ['result'], registers: [registry] }),
    reconcileDuration: new Histogram({
      name: 'vmgpu_agent_reconcile_duration_seconds',
      help: 'Time from a trigger (label, config, retry) to the node matching, by result',
      labelNames: ['result'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30],
      registers: [registry],
    }),
    vgpus: new Gauge({ name: 'vmgpu_vgpus', help: 'vGPUs on this node by profile and state (free, allocated)', labelNames: ['profile', 'state'], registers: [registry] }),
    blocked: new Gauge({ name: 'vmgpu_agent_blocked_changes', help: 'Changes waiting for devices in use by pods or VMs', registers: [registry] }),
    errors: new Counter({ name: 'vmgpu_agent_errors_total', help: 'Errors by kind (config, plan, apply, api, pod-resources, device-plugin, validate)', labelNames: ['kind'], registers: [registry] }),
    allocations: new Gauge({ name: 'vmgpu_device_plugin_allocated_devices', help: 'Devices of each vmgpu resource allocated to pods (from the kubelet pod-resources API)', labelNames: ['resource'], registers: [registry] }),
    allocateCalls: new Counter({
      name: 'vmgpu_device_plugin_allocate_calls_total',
      help: 'Allocate calls the kubelet made to our device plugins, by resource and result (ok, or the refusal reason: unknown-device, unhealthy-device, duplicate-device, empty-request, multi-vgpu)',
      labelNames: ['resource', 'result'],
      registers: [registry],
    }),
    apiRequests: new Gauge({ name: 'vmgpu_agent_api_requests', help: 'Requests this agent made to the API server since start, by verb', labelNames: ['verb'], registers: [registry] }),
    state: new Gauge({ name: 'vmgpu_agent_config_state', help: '1 for the current nvidia.com/vgpu.config.state', labelNames: ['state'], registers: [registry] }),
    validation: new Gauge({ name: 'vmgpu_agent_validation_passed', help: '1 when the validator check passed, 0 when it failed', labelNames: ['check'], registers: [registry] }),
    drift: new Counter({ name: 'vmgpu_agent_drift_detected_total', help: 'Times the periodic local check found the node no longer matching its config (VFs or vGPUs lost to a driver reload or an sriov_numvfs reset); each is repaired where the devices are free', registers: [registry] }),
  };
  return m;
}

export interface HealthSource {
  /** Liveness: the process loop runs. */
  healthy(): { ok: boolean; detail: string };
  /** Readiness: the last config is applied (or pending) and the device plugins are serving. */
  ready(): { ok: boolean; detail: string };
  /** Refresh gauges that are computed on scrape. */
  beforeScrape?(): Promise<void>;
}

/** Parse `HOST:PORT` (`0.0.0.0:9400`, `[::]:9400`, `:9400`). */
function parseListenAddress(addr: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:]+)\]|([^:]*)):(\d{1,5})$/.exec(addr);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new Error(`--metrics-addr ${JSON.stringify(addr)}: give HOST:PORT, e.g. 0.0.0.0:9400`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

export async function serveMetrics(addr: string, metrics: AgentMetrics, health: HealthSource): Promise<http.Server> {
  const { host, port } = parseListenAddress(addr);
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    const reply = (code: number, body: string, type = 'text/plain; charset=utf-8') => {
      res.writeHead(code, { 'Content-Type': type });
      res.end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(405, 'method not allowed\n');
    if (url === '/healthz' || url === '/readyz') {
      const r = url === '/healthz' ? health.healthy() : health.ready();
      return reply(r.ok ? 200 : 503, `${r.ok ? 'ok' : 'not ok'}: ${r.detail}\n`);
    }
    if (url === '/metrics') {
      void (async () => {
        try {
          await health.beforeScrape?.();
          reply(200, await metrics.registry.metrics(), metrics.registry.contentType);
        } catch (err) {
          reply(500, `collecting metrics failed: ${messageOf(err)}\n`);
        }
      })();
      return;
    }
    reply(404, 'not found: try /metrics, /healthz or /readyz\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}

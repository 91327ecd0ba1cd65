/**
 * What `vmgpu agent` is given: the node, its API server (or none), where the
 * config, state, kubelet sockets and metrics are, and the timings of its
 * checks and retries (tests shorten them).
 */
import type { Machine } from '../../machine/machine.js';
import type { DevicePluginManagerOptions } from '../deviceplugin/manager.js';
import type { DraHooks } from '../dra/modes.js';
import type { Kube } from '../kube/kube.js';
import type { Logger } from '../kube/logger.js';
import type { AgentMetrics } from './metrics.js';

export interface AgentOptions {
  nodeName: string;
  machine: Machine;
  /** Null: run without an API server (boot re-apply and device plugins only). */
  kube: Kube | null;
  configFile?: string | null;
  configMap?: { namespace: string; name: string } | null;
  defaultConfig?: string;
  stateDir: string;
  devicePluginDir: string;
  podResourcesSocket: string;
  /**
   * This host has no kubelet: which devices VMs hold is told by open VFIO
   * files alone. Off by default: without it, a missing pod-resources socket
   * means in-use cannot be determined, and nothing changes.
   */
  noKubelet?: boolean;
  iommufd?: boolean;
  metricsAddr?: string | null;
  logger?: Logger;
  /** 0 disables the periodic validator. */
  validateIntervalMs?: number;
  /** How often to re-check pod-resources while a change is pending (default 2 s). */
  pendingRecheckMs?: number;
  /** How often to check the node against its status, locally (drift.ts; default 30 s, 0 disables). */
  driftCheckMs?: number;
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** Run the device plugins in-process (default true). */
  devicePlugins?: boolean;
  devicePluginOptions?: Partial<DevicePluginManagerOptions>;
  eventNamespace?: string;
  /** The cluster catalog ConfigMap (vGPU type names shared between agents); null: none. */
  catalogMap?: { namespace: string; name: string } | null;
  /** Backoff of the node watch (tests shorten it). */
  watchBackoffInitialMs?: number;
  watchBackoffMaxMs?: number;
  metrics?: AgentMetrics;
  /** The DRA driver, in-process (`--dra`): told each desired state's DRA GPUs before the static plan. */
  dra?: DraHooks | null;
}

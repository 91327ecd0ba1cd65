/**
 * What Prepare takes from a ResourceClaim: the devices allocated to this
 * driver on this node (results of other drivers and pools are someone
 * else's), and the claim's opaque config for this driver, checked strictly:
 * an unknown key or a malformed vgpu_params entry is refused with what to fix,
 * before anything is written.
 *
 *   config:
 *   - requests: [gpu]              # optional: the requests it applies to (all when absent)
 *     opaque:
 *       driver: gpu.vmgpu.io
 *       parameters:
 *         apiVersion: gpu.vmgpu.io/v1alpha1
 *         kind: VgpuConfig
 *         vgpuParams: {frame_rate_limiter: "0"}
 *         iommufd: true            # also hand the VM /dev/iommu
 */
import { checkParamKey, checkParamValue } from '../../spec/grammar.js';
import type { ClaimJson } from './api.js';
import { DRIVER_NAME } from './names.js';

const CONFIG_API_VERSION = 'gpu.vmgpu.io/v1alpha1';
const CONFIG_KIND = 'VgpuConfig';
const EXTENDED_RESOURCE_CLAIM_ANNOTATION = 'resource.kubernetes.io/extended-resource-claim';
const POD_CLAIM_NAME_ANNOTATION = 'resource.kubernetes.io/pod-claim-name';

export interface AllocatedDevice {
  request: string;
  pool: string;
  device: string;
  shareId: string | null;
}

export interface VgpuConfig {
  /** `k=v,...` in the order written, or null. */
  params: string | null;
  iommufd: boolean;
}

export interface ClaimView {
  devices: AllocatedDevice[];
  config(request: string): VgpuConfig;
  /** A claim the scheduler made for a pod's extended resources (KEP-5004). */
  extendedResource: boolean;
  /** The request's device class (exact requests), for the extended resource name. */
  deviceClassOf(request: string): string | null;
  /** spec.resourceClaims[].name of the pod, for a claim made from a template. */
  podClaimName: string | null;
}

class ClaimError extends Error {
  override readonly name = 'ClaimError';
}

/** The claim as Prepare sees it. Throws ClaimError when it is not allocated here or its config is wrong. */
export function viewClaim(claim: ClaimJson, pool: string): ClaimView {
  const where = `ResourceClaim ${claim.metadata.namespace}/${claim.metadata.name}`;
  const alloc = claim.status?.allocation?.devices;
  if (!alloc) throw new ClaimError(`${where} is not allocated (status.allocation is empty); the scheduler allocates it before the kubelet prepares it`);
  const devices = (alloc.results ?? []).filter((r) => r.driver === DRIVER_NAME && r.pool === pool).map((r) => ({ request: r.request, pool: r.pool, device: r.device, shareId: r.shareID ?? null }));
  const byRequest = new Map<string, VgpuConfig>();
  for (const c of alloc.config ?? []) {
    if (c.opaque?.driver !== DRIVER_NAME) continue;
    const cfg = parseOpaque(c.opaque.parameters, `${where}: config for ${DRIVER_NAME}`);
    for (const d of devices) {
      if (c.requests && c.requests.length > 0 && !c.requests.includes(baseRequest(d.request))) continue;
      // Later entries win: the class's config comes first, the claim's after it.
      byRequest.set(d.request, mergeConfig(byRequest.get(d.request), cfg));
    }
  }
  const classes = new Map((claim.spec?.devices?.requests ?? []).map((r) => [r.name, r.exactly?.deviceClassName ?? null]));
  return {
    devices,
    config: (request) => byRequest.get(request) ?? { params: null, iommufd: false },
    extendedResource: claim.metadata.annotations?.[EXTENDED_RESOURCE_CLAIM_ANNOTATION] === 'true',
    deviceClassOf: (request) => classes.get(baseRequest(request)) ?? null,
    podClaimName: claim.metadata.annotations?.[POD_CLAIM_NAME_ANNOTATION] || null,
  };
}

/** `gpu/sub` (a subrequest of a prioritized list) -> `gpu`. */
export function baseRequest(request: string): string {
  const i = request.indexOf('/');
  return i < 0 ? request : request.slice(0, i);
}

function mergeConfig(a: VgpuConfig | undefined, b: VgpuConfig): VgpuConfig {
  return { params: b.params ?? a?.params ?? null, iommufd: b.iommufd || (a?.iommufd ?? false) };
}

const KEYS = ['apiVersion', 'kind', 'vgpuParams', 'iommufd'];

function parseOpaque(raw: unknown, where: string): VgpuConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new ClaimError(`${where}: parameters must be an object with apiVersion ${CONFIG_API_VERSION} and kind ${CONFIG_KIND}`);
  const p = raw as Record<string, unknown>;
  const unknown = Object.keys(p).filter((k) => !KEYS.includes(k));
  if (unknown.length) throw new ClaimError(`${where}: unknown key${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => JSON.stringify(k)).join(', ')}; allowed: ${KEYS.join(', ')}`);
  if (p.apiVersion !== CONFIG_API_VERSION || p.kind !== CONFIG_KIND) throw new ClaimError(`${where}: expected apiVersion ${CONFIG_API_VERSION} and kind ${CONFIG_KIND}, got ${JSON.stringify(p.apiVersion)} / ${JSON.stringify(p.kind)}`);
  if (p.iommufd !== undefined && typeof p.iommufd !== 'boolean') throw new ClaimError(`${where}: iommufd must be true or false`);
  return { params: parseParams(p.vgpuParams, where), iommufd: p.iommufd === true };
}

function parseParams(raw: unknown, where: string): string | null {
  if (raw === undefined || raw === null) return null;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new ClaimError(`${where}: vgpuParams must map keys to values, e.g. {frame_rate_limiter: "0"}`);
  const pairs: string[] = [];
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    const value = typeof v === 'number' && Number.isSafeInteger(v) ? String(v) : v;
    const problem = checkParamKey(k) ?? (typeof value === 'string' ? checkParamValue(value) : `the value of ${k} must be a string or a whole number`);
    if (problem) throw new ClaimError(`${where}: vgpuParams: ${problem}`);
    pairs.push(`${k}=${String(value)}`);
  }
  if (pairs.length > 32) throw new ClaimError(`${where}: vgpuParams has ${pairs.length} entries; at most 32`);
  return pairs.length ? pairs.join(',') : null;
}

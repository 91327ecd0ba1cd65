/**
 * What the DRA driver offers on a GPU: the config file's `dra:` section with
 * its defaults applied, and the profiles of one GPU it lets through.
 *
 * The default policy keeps the device count sane (docs/dra.md "Policy"): one
 * series per board (Q, the workstation profiles, where the board has them;
 * else C), the MIG-backed profiles, and only profiles with at most
 * `maxInstances` vGPUs per GPU, plus the whole GPU for passthrough.
 */
import type { DraAllocation, DraPolicySpec } from '../../spec/dra-policy.js';

const DEFAULT_MAX_INSTANCES = 8;

export interface DraPolicy {
  /** Allowlist patterns in order (earlier wins for `pinned`); null: the default policy. */
  profiles: string[] | null;
  maxInstances: number;
  passthrough: boolean;
  allocation: DraAllocation;
}

export function resolvePolicy(spec: DraPolicySpec | null | undefined): DraPolicy {
  return {
    profiles: spec?.profiles ?? null,
    maxInstances: spec?.maxInstances ?? DEFAULT_MAX_INSTANCES,
    passthrough: spec?.passthrough ?? true,
    allocation: spec?.allocation ?? 'auto',
  };
}

/** A profile the GPU offers, as the policy sees it. */
export interface Candidate {
  profile: string;
  series: string;
  migBacked: boolean;
  maxInstances: number;
}

function globToRegExp(pattern: string): RegExp {
  return new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
}

/**
 * The candidates the policy lets through, in the policy's order: the
 * allowlist's order (then the board's) when there is one, else the board's
 * order. A profile over `maxInstances` is dropped only by the default policy:
 * an allowlist is taken as the admin's choice.
 */
export function selectProfiles(policy: DraPolicy, candidates: readonly Candidate[]): Candidate[] {
  if (policy.profiles) {
    const out: Candidate[] = [];
    for (const pattern of policy.profiles) {
      const re = globToRegExp(pattern);
      for (const c of candidates) if (re.test(c.profile) && !out.includes(c)) out.push(c);
    }
    return out;
  }
  const series = candidates.some((c) => c.series === 'Q') ? 'Q' : 'C';
  return candidates.filter((c) => c.series === series && c.maxInstances <= policy.maxInstances);
}

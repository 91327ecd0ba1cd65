/**
 * The `dra:` section of a config file (vmgpu extension): what the DRA driver
 * offers on the GPUs it manages. Every key is optional; an absent section or
 * key means the default (docs/dra.md "Policy").
 *
 *   dra:
 *     profiles: [L40S-12Q, L40S-24Q, "H100-*C"]   # allowlist; * matches any characters
 *     max-instances: 8                            # default policy: skip profiles with more per GPU
 *     passthrough: true                           # offer each GPU whole as well
 *     allocation: auto                            # auto | compatibility-groups | shared | pinned
 */
import { isMap, isScalar, isSeq } from 'yaml';
import type { ConfigProblem } from './config.js';
import { didYouMean } from './suggest.js';
import { plainInteger, type Field, type YamlReader } from './yaml-reader.js';

/**
 * How devices are published so the scheduler never allocates what the driver
 * must refuse (docs/dra.md "Allocation models"):
 * - `compatibility-groups`: one device per vGPU slot, profile families kept apart by KEP-5963 groups;
 * - `shared`: one shareable device per GPU and profile, a per-GPU counter allowing one profile at a time;
 * - `pinned`: one profile per GPU, chosen by the policy, no counters (clusters without partitionable devices);
 * - `auto`: the first of these the API server keeps.
 */
export type DraAllocation = 'auto' | 'compatibility-groups' | 'shared' | 'pinned';
const DRA_ALLOCATIONS: readonly DraAllocation[] = ['auto', 'compatibility-groups', 'shared', 'pinned'];

export interface DraPolicySpec {
  /** Allowlist of profile names or globs; null: the default policy. */
  profiles: string[] | null;
  maxInstances: number | null;
  passthrough: boolean | null;
  allocation: DraAllocation | null;
}

const KEYS = ['profiles', 'max-instances', 'passthrough', 'allocation'] as const;
const PATTERN_RE = /^[A-Za-z0-9*][A-Za-z0-9*-]{0,62}$/;

/** Why `pattern` cannot be a profile allowlist entry, or null. */
function draProfilePatternProblem(pattern: string): string | null {
  if (!PATTERN_RE.test(pattern)) return `${JSON.stringify(pattern)} is not a profile name or pattern: use letters, digits, "-" and "*", e.g. L40S-12Q or "L40S-*Q"`;
  return null;
}

export function readDraPolicy(r: YamlReader, f: Field): DraPolicySpec {
  const out: DraPolicySpec = { profiles: null, maxInstances: null, passthrough: null, allocation: null };
  if (f.value === null || !isMap(f.value)) {
    r.wrongType(f.path, f.value, f.valueOffset, 'a mapping with profiles, max-instances, passthrough or allocation');
    return out;
  }
  const fields = r.known(r.fields(f.value, f.path), KEYS, f.path);
  const pf = fields.get('profiles');
  if (pf) out.profiles = readPatterns(r, pf);
  const mi = fields.get('max-instances');
  if (mi) {
    const n = plainInteger(mi.value);
    if (n === null || n < 1 || n > 1024) r.wrongType(mi.path, mi.value, mi.valueOffset, 'a whole number from 1 to 1024');
    else out.maxInstances = n;
  }
  const pt = fields.get('passthrough');
  if (pt) {
    if (pt.value && isScalar(pt.value) && typeof pt.value.value === 'boolean') out.passthrough = pt.value.value;
    else r.wrongType(pt.path, pt.value, pt.valueOffset, 'true or false');
  }
  const al = fields.get('allocation');
  if (al) {
    const v = al.value && isScalar(al.value) ? al.value.value : undefined;
    if (typeof v === 'string' && (DRA_ALLOCATIONS as readonly string[]).includes(v)) out.allocation = v as DraAllocation;
    else r.report(al.path, al.valueOffset, `expected one of ${DRA_ALLOCATIONS.join(', ')}, got ${r.describe(al.value)}.${typeof v === 'string' ? didYouMean(v, DRA_ALLOCATIONS, 1) : ''}`.replace(/\.$/, ''));
  }
  return out;
}

function readPatterns(r: YamlReader, f: Field): string[] {
  if (f.value === null || !isSeq(f.value)) {
    r.wrongType(f.path, f.value, f.valueOffset, 'a list of profile names or patterns, e.g. [L40S-12Q, "L40S-*Q"]');
    return [];
  }
  const out: string[] = [];
  for (const it of r.items(f.value, f.path)) {
    if (it.node === null || !isScalar(it.node) || typeof it.node.value !== 'string') {
      r.wrongType(it.path, it.node, it.offset, 'a profile name or pattern string');
      continue;
    }
    const problem = draProfilePatternProblem(it.node.value);
    if (problem) r.report(it.path, it.offset, problem);
    else out.push(it.node.value);
  }
  if (out.length === 0 && r.problems.every((p: ConfigProblem) => !p.path.startsWith(f.path))) r.report(f.path, f.valueOffset, 'list at least one profile, or remove "profiles" for the default policy');
  return out;
}

/**
 * NVIDIA's rules for giving one VM more than one vGPU, as data: which vGPUs a
 * guest driver accepts together, by host driver branch. The device plugin
 * (src/serve/deviceplugin/allocate.ts) enforces them in Allocate and
 * GetPreferredAllocation; docs/multi-vgpu.md gives the sources and what is
 * uncertain. Where a published rule is not certain, the stricter reading is
 * encoded (fail closed): a refused VM can be changed, a guest that does not
 * start its GPUs is harder to diagnose.
 */
import { boardProfile, boardsForProfile } from './boards.js';
import { parseProfile, type Profile, type VgpuSeries } from './profile.js';

export interface MultiVgpuRule {
  /** First host driver branch (major version, `/sys/module/nvidia/version`) the rule holds for. */
  fromBranch: number;
  /** The vGPU software releases the branch belongs to, for messages. */
  releases: string;
  /** Series whose vGPUs may be more than one in a VM (A- and B-series never are). */
  series: readonly VgpuSeries[];
  /** Only profiles that take a whole physical GPU's framebuffer (one per GPU) may be combined. */
  wholeGpuOnly: boolean;
  /** MIG-backed vGPUs may be more than one in a VM. */
  migBacked: boolean;
  /** Two vGPUs of one VM may sit on the same physical GPU. */
  sameGpu: boolean;
  /** The vGPUs of a VM may differ in framebuffer size (same board and series still required). */
  mixedSizes: boolean;
  /** What is documented and where, and what is the stricter reading taken here. */
  source: string;
}

const USER_GUIDE = 'NVIDIA Virtual GPU Software User Guide, "Multiple vGPU Support" / "vGPUs that Support Multiple vGPUs Assigned to a Single VM"';
const AIE_MULTI = 'NVIDIA AI Enterprise Infra 8, "Multi-vGPU" (https://docs.nvidia.com/ai-enterprise/release-8/8.1/infra-software/vgpu/features/multi-vgpu.html)';
const KB = 'NVIDIA vGPU Knowledge Base, "vGPU Features" (https://docs.nvidia.com/vgpu/knowledge-base/latest/vgpu-features.html)';

/** Sorted by branch; the last rule whose branch the host driver has reached applies. */
export const MULTI_VGPU_RULES: readonly MultiVgpuRule[] = [
  {
    fromBranch: 0,
    releases: 'vGPU 14 and older',
    series: ['Q', 'C'],
    wholeGpuOnly: true,
    migBacked: false,
    sameGpu: false,
    mixedSizes: false,
    source: `${USER_GUIDE} of those releases: only Q- and C-series vGPUs that take all of a physical GPU's framebuffer. Uncertain: some boards listed more on some hypervisors; the strict reading is kept`,
  },
  {
    fromBranch: 525,
    releases: 'vGPU 15 to 17',
    series: ['Q', 'C'],
    wholeGpuOnly: false,
    migBacked: true,
    sameGpu: false,
    mixedSizes: true,
    source: `${USER_GUIDE}; ${AIE_MULTI}: all Q- and C-series vGPUs, differing framebuffer allowed when board type and series are the same. Uncertain: the release that first allowed fractional profiles, and vGPUs of one VM on the same physical GPU (refused here until the knowledge base documents it)`,
  },
  {
    fromBranch: 570,
    releases: 'vGPU 18 and later',
    series: ['Q', 'C'],
    wholeGpuOnly: false,
    migBacked: true,
    sameGpu: true,
    mixedSizes: true,
    source: `${AIE_MULTI}; ${KB} (a VM's vGPUs may all come from one physical GPU or from several)`,
  },
];

/** The branch (major version) of a driver version string (`570.133.10` -> 570); undefined when it is not one. */
export function driverBranch(version: string | null | undefined): number | undefined {
  const m = /^\s*([0-9]{2,4})\.[0-9]+/.exec(version ?? '');
  return m ? Number(m[1]) : undefined;
}

/** The rule for a host driver version; undefined when the version cannot be read. */
export function multiVgpuRule(driverVersion: string | null | undefined): MultiVgpuRule | undefined {
  const branch = driverBranch(driverVersion);
  if (branch === undefined) return undefined;
  return [...MULTI_VGPU_RULES].reverse().find((r) => r.fromBranch <= branch);
}

/** One vGPU of a request: its profile name (null when unknown) and the physical GPU (PF address) it lives on. */
export interface VgpuMember {
  id: string;
  profile: string | null;
  gpu: string;
}

/** How several vGPUs may be combined in one VM on this node: refused with why, or allowed with the same-GPU rule. */
export type MultiVgpuPolicy = { ok: false; why: string } | { ok: true; sameGpu: boolean; rule: MultiVgpuRule };

/** Whether a profile may be one of several vGPUs in a VM under `driverVersion`; the rule's same-GPU answer when it may. */
export function multiVgpuPolicy(profile: string | null, driverVersion: string | null | undefined): MultiVgpuPolicy {
  const rule = multiVgpuRule(driverVersion);
  if (!rule) {
    return { ok: false, why: `the host driver version is unknown (${JSON.stringify(driverVersion ?? null)} in /sys/module/nvidia/version), so NVIDIA's multi-vGPU rules for it cannot be told; load the vGPU host driver, or request one vGPU per VM` };
  }
  const p = profile === null ? undefined : parseProfile(profile);
  if (!p) return { ok: false, why: `the vGPU profile ${JSON.stringify(profile)} is not one vmgpu can read, so whether the guest driver accepts several of it cannot be told; request one vGPU per VM` };
  const where = `the host driver (${driverVersion}, ${rule.releases})`;
  if (!rule.series.includes(p.series)) {
    return { ok: false, why: `${p.name} is a ${p.series}-series vGPU; with ${where} NVIDIA supports several vGPUs in one VM only for ${rule.series.join('- and ')}-series profiles; request one ${p.name} per VM, or use a ${rule.series.join('/')} profile` };
  }
  if (p.gpuInstanceSlices !== null && !rule.migBacked) {
    return { ok: false, why: `${p.name} is MIG-backed; with ${where} NVIDIA does not support several MIG-backed vGPUs in one VM; request one per VM, or upgrade the host driver to vGPU 15 or later` };
  }
  if (rule.wholeGpuOnly && !takesWholeGpu(p)) {
    return { ok: false, why: `with ${where} NVIDIA supports several vGPUs in one VM only for profiles that take a whole GPU's framebuffer, and ${p.name} does not (or vmgpu has no facts for its board); request one ${p.name} per VM, use the board's largest profile, or upgrade the host driver to vGPU 15 or later` };
  }
  return { ok: true, sameGpu: rule.sameGpu, rule };
}

/** A time-sliced profile of which one fills a GPU, by every board that offers the name. */
function takesWholeGpu(p: Profile): boolean {
  if (p.gpuInstanceSlices !== null) return false;
  const boards = boardsForProfile(p.name);
  return boards.length > 0 && boards.every((b) => boardProfile(b, p.name)?.maxInstances === 1);
}

/**
 * Why the guest driver would reject these vGPUs together in one VM, or null
 * when NVIDIA's rules for `driverVersion` allow them. One vGPU is always allowed.
 */
export function multiVgpuProblem(members: readonly VgpuMember[], driverVersion: string | null | undefined): string | null {
  if (members.length <= 1) return null;
  const parsed = members.map((m) => ({ m, p: m.profile === null ? undefined : parseProfile(m.profile) }));
  for (const { m } of parsed) {
    const policy = multiVgpuPolicy(m.profile, driverVersion);
    if (!policy.ok) return policy.why;
  }
  const rule = multiVgpuRule(driverVersion)!;
  const first = parsed[0]!.p!;
  for (const { p } of parsed.slice(1)) {
    if (p!.board.toUpperCase() !== first.board.toUpperCase() || p!.series !== first.series) {
      return `${first.name} and ${p!.name} cannot share a VM: NVIDIA requires every vGPU of a VM to have the same board type and series; request vGPUs of one board and series`;
    }
    if ((p!.gpuInstanceSlices === null) !== (first.gpuInstanceSlices === null)) {
      return `${first.name} and ${p!.name} cannot share a VM: NVIDIA documents time-sliced and MIG-backed vGPUs in one VM nowhere, so vmgpu refuses the mix; request vGPUs of one kind`;
    }
    if (!rule.mixedSizes && p!.name.toUpperCase() !== first.name.toUpperCase()) {
      return `${first.name} and ${p!.name} cannot share a VM: with the host driver (${driverVersion}, ${rule.releases}) every vGPU of a VM must be the same type`;
    }
  }
  if (!rule.sameGpu) {
    const byGpu = new Map<string, string>();
    for (const m of members) {
      const other = byGpu.get(m.gpu);
      if (other !== undefined) {
        return `vGPUs ${other} and ${m.id} both live on physical GPU ${m.gpu}; with the host driver (${driverVersion}, ${rule.releases}) NVIDIA supports a VM's vGPUs only on different physical GPUs; request fewer vGPUs, or wait until vGPUs on other GPUs are free`;
      }
      byGpu.set(m.gpu, m.id);
    }
  }
  return null;
}

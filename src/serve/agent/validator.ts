/**
 * The node validator (`vmgpu validate`, and the agent's periodic check): is
 * this node actually able to give GPUs to VMs the way it is configured? Each
 * check says what is wrong and how to fix it. Pure over its inputs, so the
 * CLI and the agent share it.
 */
import type { Inventory } from '../../inventory/types.js';
import type { Plan } from '../../plan/types.js';

export type CheckName = 'iommu' | 'vfio-modules' | 'vf-vfio-dev' | 'profiles-applied' | 'device-plugins-registered' | 'node-allocatable';

export interface CheckResult {
  check: CheckName;
  /** `skipped`: the input the check needs is not available here (e.g. no API access). */
  status: 'passed' | 'failed' | 'skipped';
  message: string;
  /** How to fix it; empty when passed. */
  fix: string;
}

export interface ValidationReport {
  passed: boolean;
  checkedAt: string;
  checks: CheckResult[];
}

export interface ValidateInput {
  inventory: Inventory;
  /** The plan from the current state to the configured layout (no in-use filtering), when a config is known. */
  plan?: Plan | null;
  /** Why there is no plan (no config, bad config), shown when `plan` is missing. */
  planUnavailable?: string;
  /** The device plugins and their devices (null: not known here). */
  plugins?: { resourceName: string; registered: boolean; devices: number; healthy: number }[] | null;
  /** The Node's status.allocatable (null: no API access). */
  allocatable?: Record<string, string> | null;
  now?: Date;
}

const ok = (check: CheckName, message: string): CheckResult => ({ check, status: 'passed', message, fix: '' });
const bad = (check: CheckName, message: string, fix: string): CheckResult => ({ check, status: 'failed', message, fix });
const skip = (check: CheckName, message: string): CheckResult => ({ check, status: 'skipped', message, fix: '' });

export function validateNode(input: ValidateInput): ValidationReport {
  const inv = input.inventory;
  const checks = [iommu(inv), vfioModules(inv), vfVfioDev(inv), profilesApplied(input), pluginsRegistered(input), nodeAllocatable(input)];
  return { passed: checks.every((c) => c.status !== 'failed'), checkedAt: (input.now ?? new Date()).toISOString(), checks };
}

function iommu(inv: Inventory): CheckResult {
  if (inv.node.iommuEnabled) return ok('iommu', 'the IOMMU is enabled (/sys/kernel/iommu_groups is populated)');
  return bad(
    'iommu',
    'the IOMMU is off: no IOMMU groups, so no device can be given to a VM',
    'enable VT-d / AMD-Vi in the firmware and boot with intel_iommu=on (Intel) or amd_iommu=on (AMD) plus iommu=pt on the kernel command line, then reboot',
  );
}

function vfioModules(inv: Inventory): CheckResult {
  const mods = new Set(inv.node.modules);
  const needed = ['vfio', 'vfio_iommu_type1'];
  if (inv.gpus.some((g) => g.framework === 'passthrough')) needed.push('vfio_pci');
  if (inv.gpus.some((g) => g.framework === 'sriov-vgpu' || g.framework === 'mdev-vgpu')) needed.push('nvidia_vgpu_vfio');
  const missing = needed.filter((m) => !mods.has(m) && !(m === 'vfio_iommu_type1' && mods.has('iommufd')));
  if (missing.length === 0) return ok('vfio-modules', `loaded: ${needed.join(', ')}`);
  return bad(
    'vfio-modules',
    `kernel modules not loaded: ${missing.join(', ')}`,
    `load them now with \`modprobe ${missing.join(' ')}\` and at boot by listing them in /etc/modules-load.d/vmgpu.conf${missing.includes('nvidia_vgpu_vfio') ? '; nvidia_vgpu_vfio ships with the NVIDIA vGPU manager (host) driver, install it if modprobe cannot find it' : ''}`,
  );
}

/** Every VF with a vGPU type has a vfio-dev node (the /dev/vfio device QEMU opens). */
function vfVfioDev(inv: Inventory): CheckResult {
  const noVfio: string[] = [];
  for (const g of inv.gpus) for (const v of g.vfs) if (v.currentTypeId !== 0 && !v.vfioDev) noVfio.push(v.address);
  if (noVfio.length === 0) return ok('vf-vfio-dev', `${inv.gpus.reduce((n, g) => n + g.vfs.filter((v) => v.currentTypeId !== 0).length, 0)} vGPU VF(s), each with a vfio-dev node`);
  return bad(
    'vf-vfio-dev',
    `${noVfio.length} VF(s) have a vGPU type but no vfio-dev (so no /dev/vfio device for QEMU): ${noVfio.slice(0, 8).join(', ')}${noVfio.length > 8 ? ', ...' : ''}`,
    'load nvidia_vgpu_vfio (modprobe nvidia_vgpu_vfio) and re-apply the config (clear and set the type again); check dmesg for nvidia-vgpu-vfio errors',
  );
}

/** The node is laid out as configured. */
function profilesApplied(input: ValidateInput): CheckResult {
  const p = input.plan;
  if (!p) return skip('profiles-applied', input.planUnavailable ?? 'no config given (-f FILE -c NAME, or the agent state)');
  if (p.errors.length) return bad('profiles-applied', `config ${p.configName} cannot be applied on this node: ${p.errors.map((e) => `${e.where}: ${e.message}`).join('; ')}`, 'fix the config (see `vmgpu plan -f FILE -c NAME`) or label the node with a config that fits it');
  if (p.actions.length === 0 && p.blocked.length === 0) return ok('profiles-applied', `the node matches config ${p.configName}`);
  const n = p.actions.length + p.blocked.length;
  return bad(
    'profiles-applied',
    `the node differs from config ${p.configName} by ${n} change(s)${p.blocked.length ? ` (${p.blocked.length} waiting for devices in use)` : ''}, e.g. ${[...p.actions.map((a) => a.kind + ' ' + ('vf' in a ? a.vf : a.gpu)), ...p.blocked.map((b) => b.change)].slice(0, 3).join('; ')}`,
    p.blocked.length ? 'stop the VMs holding the devices (see vmgpu.io/status on the Node); the agent completes the change by itself' : 'run `vmgpu apply -f FILE -c NAME` (or let the agent reconcile: check its logs and the vmgpu.io/status annotation)',
  );
}

function pluginsRegistered(input: ValidateInput): CheckResult {
  if (!input.plugins) return skip('device-plugins-registered', 'the device plugins are not known here (run on the node, or look at the agent)');
  const vmGpus = input.inventory.gpus.filter((g) => g.framework === 'sriov-vgpu' || g.framework === 'mdev-vgpu' || g.framework === 'passthrough');
  const unregistered = input.plugins.filter((p) => !p.registered).map((p) => p.resourceName);
  if (input.plugins.length === 0) return ok('device-plugins-registered', `no resource to serve (${vmGpus.length ? 'no vGPU configured yet' : 'no GPU for VMs'})`);
  if (unregistered.length === 0) return ok('device-plugins-registered', `${input.plugins.length} resource(s) registered with the kubelet: ${input.plugins.map((p) => p.resourceName).join(', ') || 'none'}`);
  return bad(
    'device-plugins-registered',
    `not registered with the kubelet: ${unregistered.join(', ')}`,
    'check that the kubelet runs and that /var/lib/kubelet/device-plugins is mounted into the agent (--device-plugin-dir); the agent retries by itself',
  );
}

/** The Node's allocatable matches what the device plugins serve. */
function nodeAllocatable(input: ValidateInput): CheckResult {
  if (!input.plugins || !input.allocatable) return skip('node-allocatable', input.allocatable === undefined || input.allocatable === null ? 'no API access to read the Node (give --kubeconfig and --node-name)' : 'the device plugins are not known here');
  const diffs: string[] = [];
  for (const p of input.plugins) {
    const have = Number(input.allocatable[p.resourceName] ?? '0');
    if (have !== p.healthy) diffs.push(`${p.resourceName}: allocatable ${have}, healthy devices ${p.healthy}`);
  }
  if (diffs.length === 0) return ok('node-allocatable', `the Node's allocatable matches ${input.plugins.length} resource(s)`);
  return bad(
    'node-allocatable',
    `the Node's allocatable differs from what the device plugins serve: ${diffs.join('; ')}`,
    'wait a few seconds for the kubelet to sync; if it persists, check that the kubelet sees the plugin sockets (kubelet logs: "Registered plugin") and restart the agent pod',
  );
}

export function formatReport(r: ValidationReport): string {
  const w = Math.max(...r.checks.map((c) => c.check.length));
  const lines = r.checks.map((c) => `${c.status.toUpperCase().padEnd(7)} ${c.check.padEnd(w)}  ${c.message}${c.fix ? `\n        ${' '.repeat(w)}  fix: ${c.fix}` : ''}`);
  lines.push('', r.passed ? 'validation passed' : `validation FAILED: ${r.checks.filter((c) => c.status === 'failed').length} check(s) failed`);
  return lines.join('\n');
}

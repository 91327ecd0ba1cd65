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
  const checks: CheckResult[] = [];
  const vmGpus = inv.gpus.filter((g) => g.framework === 'sriov-vgpu' || g.framework === 'mdev-vgpu' || g.framework === 'passthrough');

  // 1. IOMMU
  if (inv.node.iommuEnabled) checks.push(ok('iommu', 'the IOMMU is enabled (/sys/kernel/iommu_groups is populated)'));
  else
    checks.push(
      bad(
        'iommu',
        'the IOMMU is off: no IOMMU groups, so no device can be given to a VM',
        'enable VT-d / AMD-Vi in the firmware and boot with intel_iommu=on (Intel) or amd_iommu=on (AMD) plus iommu=pt on the kernel command line, then reboot',
      ),
    );

  // 2. vfio modules
  const mods = new Set(inv.node.modules);
  const needed = ['vfio', 'vfio_iommu_type1'];
  if (inv.gpus.some((g) => g.framework === 'passthrough')) needed.push('vfio_pci');
  if (inv.gpus.some((g) => g.framework === 'sriov-vgpu' || g.framework === 'mdev-vgpu')) needed.push('nvidia_vgpu_vfio');
  const missing = needed.filter((m) => !mods.has(m) && !(m === 'vfio_iommu_type1' && mods.has('iommufd')));
  if (missing.length === 0) checks.push(ok('vfio-modules', `loaded: ${needed.join(', ')}`));
  else
    checks.push(
      bad(
        'vfio-modules',
        `kernel modules not loaded: ${missing.join(', ')}`,
        `load them now with \`modprobe ${missing.join(' ')}\` and at boot by listing them in /etc/modules-load.d/vmgpu.conf${missing.includes('nvidia_vgpu_vfio') ? '; nvidia_vgpu_vfio ships with the NVIDIA vGPU manager (host) driver, install it if modprobe cannot find it' : ''}`,
      ),
    );

  // 3. every vGPU VF has vfio-dev
  const noVfio: string[] = [];
  for (const g of inv.gpus) for (const v of g.vfs) if (v.currentTypeId !== 0 && !v.vfioDev) noVfio.push(v.address);
  if (noVfio.length === 0) checks.push(ok('vf-vfio-dev', `${inv.gpus.reduce((n, g) => n + g.vfs.filter((v) => v.currentTypeId !== 0).length, 0)} vGPU VF(s), each with a vfio-dev node`));
  else
    checks.push(
      bad(
        'vf-vfio-dev',
        `${noVfio.length} VF(s) have a vGPU type but no vfio-dev (so no /dev/vfio device for QEMU): ${noVfio.slice(0, 8).join(', ')}${noVfio.length > 8 ? ', ...' : ''}`,
        'load nvidia_vgpu_vfio (modprobe nvidia_vgpu_vfio) and re-apply the config (clear and set the type again); check dmesg for nvidia-vgpu-vfio errors',
      ),
    );

  // 4. profiles applied as configured
  if (input.plan) {
    const p = input.plan;
    if (p.errors.length) checks.push(bad('profiles-applied', `config ${p.configName} cannot be applied on this node: ${p.errors.map((e) => `${e.where}: ${e.message}`).join('; ')}`, 'fix the config (see `vmgpu plan -f FILE -c NAME`) or label the node with a config that fits it'));
    else if (p.actions.length === 0 && p.blocked.length === 0) checks.push(ok('profiles-applied', `the node matches config ${p.configName}`));
    else {
      const n = p.actions.length + p.blocked.length;
      checks.push(
        bad(
          'profiles-applied',
          `the node differs from config ${p.configName} by ${n} change(s)${p.blocked.length ? ` (${p.blocked.length} waiting for devices in use)` : ''}, e.g. ${[...p.actions.map((a) => a.kind + ' ' + ('vf' in a ? a.vf : a.gpu)), ...p.blocked.map((b) => b.change)].slice(0, 3).join('; ')}`,
          p.blocked.length ? 'stop the VMs holding the devices (see vmgpu.io/status on the Node); the agent completes the change by itself' : 'run `vmgpu apply -f FILE -c NAME` (or let the agent reconcile: check its logs and the vmgpu.io/status annotation)',
        ),
      );
    }
  } else checks.push(skip('profiles-applied', input.planUnavailable ?? 'no config given (-f FILE -c NAME, or the agent state)'));

  // 5. device plugins registered
  if (input.plugins) {
    const unregistered = input.plugins.filter((p) => !p.registered).map((p) => p.resourceName);
    if (input.plugins.length === 0) checks.push(ok('device-plugins-registered', `no resource to serve (${vmGpus.length ? 'no vGPU configured yet' : 'no GPU for VMs'})`));
    else if (unregistered.length === 0) checks.push(ok('device-plugins-registered', `${input.plugins.length} resource(s) registered with the kubelet: ${input.plugins.map((p) => p.resourceName).join(', ') || 'none'}`));
    else
      checks.push(
        bad(
          'device-plugins-registered',
          `not registered with the kubelet: ${unregistered.join(', ')}`,
          'check that the kubelet runs and that /var/lib/kubelet/device-plugins is mounted into the agent (--device-plugin-dir); the agent retries by itself',
        ),
      );
  } else checks.push(skip('device-plugins-registered', 'the device plugins are not known here (run on the node, or look at the agent)'));

  // 6. Node allocatable matches the inventory
  if (input.plugins && input.allocatable) {
    const diffs: string[] = [];
    for (const p of input.plugins) {
      const have = Number(input.allocatable[p.resourceName] ?? '0');
      if (have !== p.healthy) diffs.push(`${p.resourceName}: allocatable ${have}, healthy devices ${p.healthy}`);
    }
    if (diffs.length === 0) checks.push(ok('node-allocatable', `the Node's allocatable matches ${input.plugins.length} resource(s)`));
    else
      checks.push(
        bad(
          'node-allocatable',
          `the Node's allocatable differs from what the device plugins serve: ${diffs.join('; ')}`,
          'wait a few seconds for the kubelet to sync; if it persists, check that the kubelet sees the plugin sockets (kubelet logs: "Registered plugin") and restart the agent pod',
        ),
      );
  } else checks.push(skip('node-allocatable', input.allocatable === undefined || input.allocatable === null ? 'no API access to read the Node (give --kubeconfig and --node-name)' : 'the device plugins are not known here'));

  return { passed: checks.every((c) => c.status !== 'failed'), checkedAt: (input.now ?? new Date()).toISOString(), checks };
}

export function formatReport(r: ValidationReport): string {
  const w = Math.max(...r.checks.map((c) => c.check.length));
  const lines = r.checks.map((c) => `${c.status.toUpperCase().padEnd(7)} ${c.check.padEnd(w)}  ${c.message}${c.fix ? `\n        ${' '.repeat(w)}  fix: ${c.fix}` : ''}`);
  lines.push('', r.passed ? 'validation passed' : `validation FAILED: ${r.checks.filter((c) => c.status === 'failed').length} check(s) failed`);
  return lines.join('\n');
}

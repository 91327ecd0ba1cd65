/**
 * The sysfs port: no path is ever built from a name that failed its grammar
 * (proved with a backend that records every call), writes go out exactly as
 * documented, and DiskBackend errors carry the path and errno.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import type { EntryKind, Root, SysfsBackend } from '../../../src/sysfs/backend.js';
import { DiskBackend } from '../../../src/sysfs/disk-backend.js';
import { InvalidNameError, SysfsError } from '../../../src/sysfs/errors.js';
import type { DriverName, MdevTypeName, MdevUuid } from '../../../src/sysfs/names.js';
import type { PciAddress } from '../../../src/model/pci.js';
import { SysfsPort, type SkippedEntry } from '../../../src/sysfs/port.js';

interface Call {
  op: string;
  root: Root;
  rel: string;
  data?: string;
}

/** A backend that records every call and answers from a small map of files, links and directories. */
class RecordingBackend implements SysfsBackend {
  readonly description = 'recording fake';
  readonly calls: Call[] = [];
  constructor(
    readonly files: Record<string, string> = {},
    readonly links: Record<string, string> = {},
    readonly dirs: Record<string, string[]> = {},
  ) {}
  display(root: Root, rel: string): string {
    return `/${root}/${rel}`;
  }
  read(root: Root, rel: string): string {
    this.calls.push({ op: 'read', root, rel });
    const v = this.files[rel];
    if (v === undefined) throw new SysfsError('read', this.display(root, rel), 'ENOENT');
    return v;
  }
  write(root: Root, rel: string, data: string): void {
    this.calls.push({ op: 'write', root, rel, data });
  }
  readlink(root: Root, rel: string): string {
    this.calls.push({ op: 'readlink', root, rel });
    const v = this.links[rel];
    if (v === undefined) throw new SysfsError('readlink', this.display(root, rel), 'EINVAL');
    return v;
  }
  list(root: Root, rel: string): string[] {
    this.calls.push({ op: 'list', root, rel });
    const v = this.dirs[rel];
    if (!v) throw new SysfsError('list', this.display(root, rel), 'ENOENT');
    return v;
  }
  kind(root: Root, rel: string): EntryKind | null {
    this.calls.push({ op: 'kind', root, rel });
    return rel in this.links ? 'link' : rel in this.files ? 'file' : rel in this.dirs ? 'dir' : null;
  }
  exists(root: Root, rel: string): boolean {
    this.calls.push({ op: 'exists', root, rel });
    return rel in this.files || rel in this.dirs || rel in this.links;
  }
}

const VF = '0000:3b:00.4' as PciAddress;
const UUID = '6f3a1e2c-0000-4000-8000-000000000001' as MdevUuid;
const TYPE = 'nvidia-256' as MdevTypeName;

/** Every port method that takes a name, called with `bad` in each name position. */
function callsWith(port: SysfsPort, bad: string): [string, () => unknown][] {
  const a = bad as PciAddress;
  const u = bad as MdevUuid;
  const t = bad as MdevTypeName;
  const d = bad as DriverName;
  return [
    ['writeCurrentVgpuType(addr)', () => port.writeCurrentVgpuType(a, 1)],
    ['writeSriovNumVfs(addr)', () => port.writeSriovNumVfs(a, 4)],
    ['writeVfVgpuParams(addr)', () => port.writeVfVgpuParams(a, 'frame_rate_limiter=0')],
    ['writeMdevVgpuParams(uuid)', () => port.writeMdevVgpuParams(u, 'frame_rate_limiter=0')],
    ['createMdev(parent)', () => port.createMdev(a, TYPE, UUID)],
    ['createMdev(type)', () => port.createMdev(VF, t, UUID)],
    ['createMdev(uuid)', () => port.createMdev(VF, TYPE, u)],
    ['removeMdev(uuid)', () => port.removeMdev(u)],
    ['writeDriverOverride(addr)', () => port.writeDriverOverride(a, 'vfio-pci' as DriverName)],
    ['writeDriverOverride(driver)', () => port.writeDriverOverride(VF, d)],
    ['unbindDriver(addr)', () => port.unbindDriver(a)],
    ['bindDriver(driver)', () => port.bindDriver(d, VF)],
    ['bindDriver(addr)', () => port.bindDriver('vfio-pci' as DriverName, a)],
    ['probeDriver(addr)', () => port.probeDriver(a)],
    ['readPciAttr(addr)', () => port.readPciAttr(a, 'vendor')],
    ['readPciLink(addr)', () => port.readPciLink(a, 'driver')],
    ['readNvidiaAttr(addr)', () => port.readNvidiaAttr(a, 'current_vgpu_type')],
    ['readVfioDev(addr)', () => port.readVfioDev(a)],
    ['listVirtfns(addr)', () => port.listVirtfns(a)],
    ['hasNvidiaDir(addr)', () => port.hasNvidiaDir(a)],
    ['hasMdevSupportedTypes(addr)', () => port.hasMdevSupportedTypes(a)],
    ['listMdevTypes(addr)', () => port.listMdevTypes(a)],
    ['readMdevTypeAttr(type)', () => port.readMdevTypeAttr(VF, t, 'name')],
    ['listMdevTypeDevices(type)', () => port.listMdevTypeDevices(VF, t)],
    ['mdevExists(uuid)', () => port.mdevExists(u)],
    ['readMdev(uuid)', () => port.readMdev(u)],
    ['pciDeviceExists(addr)', () => port.pciDeviceExists(a)],
    ['readModuleVersion(name)', () => port.readModuleVersion(bad)],
    ['driverRegistered(name)', () => port.driverRegistered(bad)],
    ['listModules(name)', () => port.listModules([bad])],
    ['vfioCdevNodeExists(name)', () => port.vfioCdevNodeExists(bad)],
    ['readModulesAlias(release)', () => port.readModulesAlias(bad)],
  ];
}

const HOSTILE = ['../x', '..', '', '0000:3b:00.4/../../../etc', '0000:3b:00.4\0', '0000:3B:00.4', 'nvidia-256/../x', `${UUID}/x`, 'a b', '/etc/passwd', '.', 'vfio-pci\n'];

void test('no path is built from an invalid name: the backend is never called', () => {
  for (const bad of HOSTILE) {
    const backend = new RecordingBackend();
    const port = new SysfsPort(backend);
    for (const [name, call] of callsWith(port, bad)) {
      assert.throws(call, InvalidNameError, `${name} with ${JSON.stringify(bad)}`);
      assert.deepEqual(backend.calls, [], `${name} with ${JSON.stringify(bad)} reached the backend`);
    }
  }
});

void test('property: hostile strings in any name position never reach the backend', () => {
  const hostile = fc
    .tuple(fc.string({ maxLength: 10 }), fc.constantFrom('/', '..', '\0', ' ', '\n'), fc.string({ maxLength: 10 }))
    .map(([a, b, c]) => a + b + c);
  fc.assert(
    fc.property(hostile, (bad) => {
      const backend = new RecordingBackend();
      const port = new SysfsPort(backend);
      for (const [name, call] of callsWith(port, bad)) {
        assert.throws(call, InvalidNameError, name);
      }
      assert.equal(backend.calls.length, 0);
    }),
    { numRuns: 300 },
  );
});

void test('numbers written are checked too: negative, fractional and huge values never reach the backend', () => {
  const backend = new RecordingBackend();
  const port = new SysfsPort(backend);
  for (const n of [-1, 1.5, NaN, Infinity, 2 ** 40]) {
    assert.throws(() => port.writeCurrentVgpuType(VF, n), InvalidNameError, String(n));
    assert.throws(() => port.writeSriovNumVfs(VF, n), InvalidNameError, String(n));
    assert.throws(() => port.listIommuGroupMembers(n), InvalidNameError, String(n));
    assert.throws(() => port.vfioGroupNodeExists(n), InvalidNameError, String(n));
  }
  assert.throws(() => port.writeVfVgpuParams(VF, 'a=1\nb=2'), (e: unknown) => e instanceof SysfsError && e.code === 'EINVAL');
  assert.throws(() => port.writeVfVgpuParams(VF, 'x=../../y/z'), SysfsError);
  assert.deepEqual(backend.calls, []);
});

void test('writes go to the documented file with the value and no trailing newline', () => {
  const backend = new RecordingBackend();
  const port = new SysfsPort(backend);
  port.writeCurrentVgpuType(VF, 1061);
  port.writeCurrentVgpuType(VF, 0);
  port.writeSriovNumVfs('0000:3b:00.0' as PciAddress, 32);
  port.writeVfVgpuParams(VF, 'frame_rate_limiter=0,disable_vnc=1');
  port.createMdev(VF, TYPE, '6F3A1E2C-0000-4000-8000-000000000001' as MdevUuid);
  port.removeMdev(UUID);
  port.writeDriverOverride(VF, 'vfio-pci' as DriverName);
  port.writeDriverOverride(VF, null);
  port.unbindDriver(VF);
  port.bindDriver('vfio-pci' as DriverName, VF);
  port.probeDriver(VF);
  const d = `bus/pci/devices/${VF}`;
  assert.deepEqual(backend.calls, [
    { op: 'write', root: 'sys', rel: `${d}/nvidia/current_vgpu_type`, data: '1061' },
    { op: 'write', root: 'sys', rel: `${d}/nvidia/current_vgpu_type`, data: '0' },
    { op: 'write', root: 'sys', rel: 'bus/pci/devices/0000:3b:00.0/sriov_numvfs', data: '32' },
    { op: 'write', root: 'sys', rel: `${d}/nvidia/vgpu_params`, data: 'frame_rate_limiter=0,disable_vnc=1' },
    { op: 'write', root: 'sys', rel: `${d}/mdev_supported_types/nvidia-256/create`, data: UUID },
    { op: 'write', root: 'sys', rel: `bus/mdev/devices/${UUID}/remove`, data: '1' },
    { op: 'write', root: 'sys', rel: `${d}/driver_override`, data: 'vfio-pci' },
    { op: 'write', root: 'sys', rel: `${d}/driver_override`, data: '\n' },
    { op: 'write', root: 'sys', rel: `${d}/driver/unbind`, data: VF },
    { op: 'write', root: 'sys', rel: 'bus/pci/drivers/vfio-pci/bind', data: VF },
    { op: 'write', root: 'sys', rel: 'bus/pci/drivers_probe', data: VF },
  ]);
});

void test('reads: only listed attributes; ENOENT is "absent", other errors propagate', () => {
  const d = `bus/pci/devices/${VF}`;
  const backend = new RecordingBackend({ [`${d}/vendor`]: '0x10de\n', [`${d}/nvidia/creatable_vgpu_types`]: 'ID : Name\n' });
  const port = new SysfsPort(backend);
  assert.equal(port.readPciAttr(VF, 'vendor'), '0x10de');
  assert.equal(port.readPciAttr(VF, 'device'), undefined);
  assert.equal(port.readNvidiaAttr(VF, 'creatable_vgpu_types'), 'ID : Name\n', 'nvidia attributes keep their text');
  assert.throws(() => port.readPciAttr(VF, 'config' as 'vendor'), /not a known PCI attribute/);
  assert.throws(() => port.readNvidiaAttr(VF, '../x' as 'vgpu_params'), /not a known nvidia attribute/);
  const failing = new (class extends RecordingBackend {
    override read(root: Root, rel: string): string {
      throw new SysfsError('read', this.display(root, rel), 'EACCES');
    }
  })();
  assert.throws(() => new SysfsPort(failing).readPciAttr(VF, 'vendor'), (e: unknown) => e instanceof SysfsError && e.code === 'EACCES' && e.path.endsWith('/vendor'));
});

void test('directory entries that are not names are reported, never followed', () => {
  const backend = new RecordingBackend(
    {},
    { [`bus/pci/devices/${VF}/virtfn0`]: '../0000:3b:00.5', [`bus/pci/devices/${VF}/virtfn1`]: '../../../etc' },
    {
      'bus/pci/devices': ['0000:3b:00.0', 'garbage', '..', '0000:3B:00.1'],
      [`bus/pci/devices/${VF}`]: ['virtfn0', 'virtfn1', 'vendor'],
    },
  );
  const port = new SysfsPort(backend);
  const skipped: SkippedEntry[] = [];
  assert.deepEqual(port.listPciDevices(skipped), ['0000:3b:00.0']);
  assert.deepEqual(
    skipped.map((s) => s.entry),
    ['garbage', '..', '0000:3B:00.1'],
  );
  const vfSkipped: SkippedEntry[] = [];
  assert.deepEqual(port.listVirtfns(VF, vfSkipped), [{ index: 0, address: '0000:3b:00.5' }]);
  assert.equal(vfSkipped.length, 1);
  assert.match(vfSkipped[0]!.reason, /not a PCI address/);
  assert.ok(!backend.calls.some((c) => c.rel.includes('garbage') || c.rel.includes('etc')), 'skipped entries were not followed');
});

// ---------------------------------------------------------------- DiskBackend on a temp tree

function tempTree(): { dir: string; backend: DiskBackend; port: SysfsPort; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmgpu-port-'));
  const sys = path.join(dir, 'sys');
  const dev = path.join(sys, 'devices/pci0000:3b', VF);
  fs.mkdirSync(path.join(dev, 'nvidia'), { recursive: true });
  fs.mkdirSync(path.join(sys, 'bus/pci/devices'), { recursive: true });
  fs.symlinkSync(`../../../devices/pci0000:3b/${VF}`, path.join(sys, 'bus/pci/devices', VF));
  fs.writeFileSync(path.join(dev, 'vendor'), '0x10de\n');
  fs.writeFileSync(path.join(dev, 'nvidia/current_vgpu_type'), '1061\n');
  fs.symlinkSync('../../../kernel/iommu_groups/77', path.join(dev, 'iommu_group')); // dangling
  fs.mkdirSync(path.join(dev, 'numa_node')); // a directory where a file should be
  const backend = new DiskBackend({ sys, dev: path.join(dir, 'dev'), host: path.join(dir, 'host') });
  return { dir, backend, port: new SysfsPort(backend), cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

void test('DiskBackend: errors are SysfsError with op, full path and errno', () => {
  const t = tempTree();
  try {
    const { backend, port, dir } = t;
    const devRel = `bus/pci/devices/${VF}`;
    assert.equal(backend.read('sys', `${devRel}/vendor`), '0x10de\n');
    const cases: [() => unknown, string, string, string][] = [
      [() => backend.read('sys', `${devRel}/device`), 'read', 'ENOENT', `${devRel}/device`],
      [() => backend.read('sys', `${devRel}/numa_node`), 'read', 'EISDIR', `${devRel}/numa_node`],
      [() => backend.read('sys', `${devRel}/vendor/x`), 'read', 'ENOTDIR', `${devRel}/vendor/x`],
      [() => backend.write('sys', `${devRel}/sriov_numvfs`, '4'), 'write', 'ENOENT', `${devRel}/sriov_numvfs`],
      [() => backend.write('sys', `${devRel}/numa_node`, '1'), 'write', 'EISDIR', `${devRel}/numa_node`],
      [() => backend.readlink('sys', `${devRel}/vendor`), 'readlink', 'EINVAL', `${devRel}/vendor`],
      [() => backend.list('sys', `${devRel}/vendor`), 'list', 'ENOTDIR', `${devRel}/vendor`],
      [() => backend.list('sys', `${devRel}/iommu_group/devices`), 'list', 'ENOENT', `${devRel}/iommu_group/devices`],
    ];
    for (const [call, op, code, rel] of cases) {
      assert.throws(
        call,
        (e: unknown) => {
          assert.ok(e instanceof SysfsError, `${rel}: ${String(e)}`);
          assert.equal(e.op, op);
          assert.equal(e.code, code);
          assert.equal(e.path, path.join(dir, 'sys', rel));
          assert.ok(e.message.includes(e.path) && e.message.includes(code), e.message);
          return true;
        },
        `${op} ${rel}`,
      );
    }
    // Writes never create files: the ENOENT above left nothing behind.
    assert.equal(fs.existsSync(path.join(dir, 'sys', devRel, 'sriov_numvfs')), false);
    // The port maps ENOENT to "absent" and keeps other errors.
    assert.equal(port.readPciAttr(VF, 'device'), undefined);
    assert.throws(() => port.readPciAttr(VF, 'numa_node'), (e: unknown) => e instanceof SysfsError && e.code === 'EISDIR');
    // Links: a dangling one is a link that does not resolve.
    assert.equal(backend.kind('sys', `${devRel}/iommu_group`), 'link');
    assert.equal(backend.exists('sys', `${devRel}/iommu_group`), false);
    assert.equal(port.readPciLink(VF, 'iommu_group'), '77');
    assert.equal(port.isDanglingLink(VF, 'iommu_group'), true);
    assert.equal(port.isDanglingLink(VF, 'driver'), false);
    assert.equal(backend.kind('sys', `${devRel}/nope`), null);
    // The backend itself refuses relative paths that leave the root.
    assert.throws(() => backend.read('sys', '../etc/passwd'), /unsafe relative path/);
    assert.throws(() => backend.read('sys', '/etc/passwd'), /unsafe relative path/);
    assert.throws(() => backend.write('sys', 'bus//x', '1'), /unsafe relative path/);
  } finally {
    t.cleanup();
  }
});

void test('DiskBackend: a write replaces the whole value of a plain file (no stale tail)', () => {
  const t = tempTree();
  try {
    t.port.writeCurrentVgpuType(VF, 7);
    assert.equal(fs.readFileSync(path.join(t.dir, 'sys/devices/pci0000:3b', VF, 'nvidia/current_vgpu_type'), 'utf8'), '7');
    assert.equal(t.port.readNvidiaAttr(VF, 'current_vgpu_type'), '7');
  } finally {
    t.cleanup();
  }
});

void test('DiskBackend: writing a read-only attribute fails with EACCES and the path', () => {
  // root bypasses file modes, so the write runs in a child process as nobody.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmgpu-ro-'));
  try {
    fs.chmodSync(dir, 0o755);
    fs.writeFileSync(path.join(dir, 'vendor'), '0x10de\n', { mode: 0o444 });
    fs.chmodSync(path.join(dir, 'vendor'), 0o444);
    const code = `
      import { DiskBackend } from ${JSON.stringify(path.resolve('src/sysfs/disk-backend.ts'))};
      const b = new DiskBackend({ sys: ${JSON.stringify(dir)}, dev: '/nonexistent', host: '/nonexistent' });
      try { b.write('sys', 'vendor', '0x1234'); console.log(JSON.stringify({ ok: true })); }
      catch (e) { console.log(JSON.stringify({ name: e.name, op: e.op, code: e.code, path: e.path })); }`;
    const asRoot = process.getuid?.() === 0;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
      encoding: 'utf8',
      ...(asRoot ? { uid: 65534, gid: 65534 } : {}),
    });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout.trim()), { name: 'SysfsError', op: 'write', code: 'EACCES', path: path.join(dir, 'vendor') });
    assert.equal(fs.readFileSync(path.join(dir, 'vendor'), 'utf8'), '0x10de\n', 'the file is unchanged');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

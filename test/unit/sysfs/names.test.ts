/**
 * The name grammars are the only gate between user input (config files, CLI
 * arguments, directory entries) and paths under /sys and /dev: property tests
 * over the grammar and over hostile strings.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { InvalidNameError } from '../../../src/sysfs/errors.js';
import { parseDecimal, parseDriverName, parseKernelRelease, parseMdevTypeName, parseMdevUuid, parseVfioDevName } from '../../../src/sysfs/names.js';
import { PCI_ADDRESS_RE, checkPciAddress, isPciAddress, parsePciAddress } from '../../../src/model/pci.js';

const hex = (n: number, w: number) => n.toString(16).padStart(w, '0');
/** Randomly upper-case some characters. */
const mixCase = (s: string, mask: boolean[]) => [...s].map((c, i) => (mask[i % mask.length] ? c.toUpperCase() : c)).join('');

const addrParts = fc.record({
  domain: fc.integer({ min: 0, max: 0xffff }),
  bus: fc.integer({ min: 0, max: 0xff }),
  dev: fc.integer({ min: 0, max: 0x1f }),
  fn: fc.integer({ min: 0, max: 7 }),
});
const caseMask = fc.array(fc.boolean(), { minLength: 1, maxLength: 16 });

/** Strings containing something no name grammar may accept. */
const FORBIDDEN = ['/', '..', '\0', ' ', '\t', '\n', '\r'];
const hostile = fc
  .tuple(fc.string({ maxLength: 12 }), fc.constantFrom(...FORBIDDEN), fc.string({ maxLength: 12 }))
  .map(([a, bad, b]) => a + bad + b);

const HOSTILE_EXAMPLES = [
  '',
  '.',
  '..',
  '../x',
  '../../../etc/passwd',
  '/sys/bus/pci/devices/0000:3b:00.0',
  '0000:3b:00.0/',
  '0000:3b:00.0/../0000:3b:00.1',
  '0000:3b:00.0\0',
  '0000:3b:00.0\n',
  ' 0000:3b:00.0',
  '0000:3b:00.0 ',
  '0000:3b:00.0;rm -rf /',
  '$(reboot)',
  '%2e%2e%2f',
  '\u202e0000:3b:00.0',
  '０000:3b:00.0', // full-width digit
  'nvidia-256/../../x',
];

function rejects(fn: () => unknown, what: string): void {
  assert.throws(fn, (e: unknown) => e instanceof InvalidNameError, `${what} should be rejected with InvalidNameError`);
}

void test('PCI address: every valid dddd:bb:dd.f in any case normalises to lower-case canonical form', () => {
  fc.assert(
    fc.property(addrParts, caseMask, ({ domain, bus, dev, fn }, mask) => {
      const canonical = `${hex(domain, 4)}:${hex(bus, 2)}:${hex(dev, 2)}.${fn}`;
      const parsed = parsePciAddress(mixCase(canonical, mask));
      assert.equal(parsed, canonical);
      assert.match(parsed, PCI_ADDRESS_RE);
      assert.equal(checkPciAddress(parsed), canonical);
      assert.ok(isPciAddress(parsed));
      assert.equal(parsePciAddress(parsed), parsed, 'parsing is idempotent');
    }),
  );
});

void test('PCI address: short bb:dd.f means domain 0; nvidia-smi 0000dddd: domains are shortened', () => {
  fc.assert(
    fc.property(addrParts, caseMask, ({ domain, bus, dev, fn }, mask) => {
      const tail = `${hex(bus, 2)}:${hex(dev, 2)}.${fn}`;
      assert.equal(parsePciAddress(mixCase(tail, mask)), `0000:${tail}`);
      assert.equal(parsePciAddress(mixCase(`0000${hex(domain, 4)}:${tail}`, mask)), `${hex(domain, 4)}:${tail}`);
    }),
  );
  assert.equal(parsePciAddress('00000000:3B:00.0'), '0000:3b:00.0');
  // An 8-digit domain that does not start with 0000 is outside the 16-bit domain space.
  rejects(() => parsePciAddress('00010000:3b:00.0'), '8-digit domain above 0xffff');
});

void test('PCI address: device numbers above 0x1f, functions above 7 and wrong widths are rejected', () => {
  fc.assert(
    fc.property(addrParts, fc.integer({ min: 0x20, max: 0xff }), ({ domain, bus, fn }, dev) => {
      rejects(() => parsePciAddress(`${hex(domain, 4)}:${hex(bus, 2)}:${hex(dev, 2)}.${fn}`), 'device > 0x1f');
    }),
  );
  fc.assert(
    fc.property(addrParts, fc.integer({ min: 8, max: 15 }), ({ domain, bus, dev }, fn) => {
      rejects(() => parsePciAddress(`${hex(domain, 4)}:${hex(bus, 2)}:${hex(dev, 2)}.${fn.toString(16)}`), 'function > 7');
    }),
  );
  for (const bad of ['0000:3b:0.0', '0000:3b:000.0', '000:3b:00.0', '00000:3b:00.0', '0000:3:00.0', '0000:3b:00', '0000-3b-00.0', '0000:3b:00.0.0', 'g000:3b:00.0', '0x0000:3b:00.0']) {
    rejects(() => parsePciAddress(bad), JSON.stringify(bad));
  }
});

void test('PCI address: hostile strings and anything with /, .., NUL or white space are rejected', () => {
  for (const h of HOSTILE_EXAMPLES) {
    rejects(() => parsePciAddress(h), JSON.stringify(h));
    rejects(() => checkPciAddress(h), JSON.stringify(h));
    assert.equal(isPciAddress(h), false);
  }
  fc.assert(
    fc.property(hostile, (s) => {
      rejects(() => parsePciAddress(s), JSON.stringify(s));
      rejects(() => checkPciAddress(s), JSON.stringify(s));
    }),
    { numRuns: 500 },
  );
  // Non-strings that slip past the type system.
  rejects(() => parsePciAddress(undefined as unknown as string), 'undefined');
  rejects(() => checkPciAddress(42 as unknown as string), 'a number');
});

/** An independent reference for the accepted forms, to compare arbitrary strings against. */
function referenceAccepts(s: string): string | null {
  const m = /^(?:(?:0000)?([0-9a-f]{4}):)?([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/i.exec(s);
  if (!m) return null;
  if (parseInt(m[3]!, 16) > 0x1f) return null;
  return `${(m[1] ?? '0000').toLowerCase()}:${m[2]!.toLowerCase()}:${m[3]!.toLowerCase()}.${m[4]}`;
}

void test('PCI address: arbitrary strings are accepted exactly when the grammar says so', () => {
  const near = fc.stringMatching(/^[0-9a-fA-Fg:.x/ ]{0,18}$/);
  fc.assert(
    fc.property(fc.oneof(fc.string({ maxLength: 20 }), near), (s) => {
      const want = referenceAccepts(s);
      let got: string | null;
      try {
        got = parsePciAddress(s);
      } catch (e) {
        assert.ok(e instanceof InvalidNameError);
        got = null;
      }
      assert.equal(got, want, `input ${JSON.stringify(s)}`);
    }),
    { numRuns: 2000 },
  );
});

void test('checkPciAddress accepts only the canonical lower-case form', () => {
  assert.equal(checkPciAddress('0000:3b:00.4'), '0000:3b:00.4');
  rejects(() => checkPciAddress('0000:3B:00.4'), 'upper case');
  rejects(() => checkPciAddress('3b:00.4'), 'short form');
  rejects(() => checkPciAddress('00000000:3b:00.4'), '8-digit domain');
});

void test('InvalidNameError names the kind, shows the value quoted (NUL visible) and the expected form', () => {
  try {
    parsePciAddress('0000:3b:00.0\0/../x');
    assert.fail('should throw');
  } catch (e) {
    assert.ok(e instanceof InvalidNameError);
    assert.equal(e.kind, 'PCI address');
    assert.match(e.message, /invalid PCI address "0000:3b:00\.0\\u0000\/\.\.\/x": expected dddd:bb:dd\.f/);
    assert.ok(!e.message.includes('\0'), 'the raw NUL never reaches a message');
  }
});

void test('mdev UUID: canonical 8-4-4-4-12 in any case is accepted and lower-cased; anything else rejected', () => {
  fc.assert(
    fc.property(fc.uuid(), caseMask, (u, mask) => {
      assert.equal(parseMdevUuid(mixCase(u, mask)), u.toLowerCase());
    }),
  );
  for (const bad of ['6f3a1e2c-0000-4000-8000-00000000001', '6f3a1e2c00004000800000000000000001', '{6f3a1e2c-0000-4000-8000-000000000001}', '6f3a1e2c-0000-4000-8000-000000000001/remove', 'g f3a1e2c-0000-4000-8000-000000000001', ...HOSTILE_EXAMPLES]) {
    rejects(() => parseMdevUuid(bad), JSON.stringify(bad));
  }
  fc.assert(
    fc.property(fc.uuid(), fc.constantFrom(...FORBIDDEN), fc.nat(36), (u, bad, at) => {
      rejects(() => parseMdevUuid(u.slice(0, at) + bad + u.slice(at)), 'UUID with a forbidden character');
    }),
  );
});

void test('driver names: letters, digits, _ and - (not leading -), at most 64 characters', () => {
  for (const ok of ['vfio-pci', 'nvidia', 'nvgrace_gpu_vfio_pci', 'snd_hda_intel', '8250_lpss', 'a']) assert.equal(parseDriverName(ok), ok);
  const good = fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$/);
  fc.assert(fc.property(good, (s) => assert.equal(parseDriverName(s), s)));
  for (const bad of ['-vfio', 'vfio.pci', 'vfio pci', 'a'.repeat(65), ...HOSTILE_EXAMPLES]) rejects(() => parseDriverName(bad), JSON.stringify(bad));
  fc.assert(fc.property(hostile, (s) => rejects(() => parseDriverName(s), JSON.stringify(s))));
  fc.assert(
    fc.property(fc.string({ maxLength: 70 }), (s) => {
      const ok = /^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$/.test(s);
      if (ok) assert.equal(parseDriverName(s), s);
      else rejects(() => parseDriverName(s), JSON.stringify(s));
    }),
    { numRuns: 1000 },
  );
});

void test('mdev type directory names: <vendor>-<number> only', () => {
  for (const ok of ['nvidia-256', 'nvidia-1', 'i915_GVTg_V5_4-1']) assert.equal(parseMdevTypeName(ok), ok);
  fc.assert(
    fc.property(fc.stringMatching(/^[A-Za-z0-9_]{1,12}$/), fc.nat(100000), (v, n) => {
      assert.equal(parseMdevTypeName(`${v}-${n}`), `${v}-${n}`);
    }),
  );
  for (const bad of ['nvidia', 'nvidia-', '-256', 'nvidia-25a', 'nvidia-256 ', 'nvidia-256/create', 'nvidia--256', ...HOSTILE_EXAMPLES]) {
    rejects(() => parseMdevTypeName(bad), JSON.stringify(bad));
  }
  fc.assert(fc.property(hostile, (s) => rejects(() => parseMdevTypeName(s), JSON.stringify(s))));
});

void test('decimals, vfio-dev names and kernel releases', () => {
  assert.equal(parseDecimal('IOMMU group', 12), 12);
  assert.equal(parseDecimal('IOMMU group', '0'), 0);
  for (const bad of [-1, 1.5, NaN, Infinity, 1e10, '1e3', '0x10', '', ' 1', '1\n', '../1']) rejects(() => parseDecimal('vGPU type ID', bad as number), String(bad));
  assert.equal(parseVfioDevName('vfio12'), 'vfio12');
  for (const bad of ['vfio', 'vfio-1', 'VFIO1', 'vfio1/..', 'iommu']) rejects(() => parseVfioDevName(bad), bad);
  assert.equal(parseKernelRelease('6.8.0-45-generic'), '6.8.0-45-generic');
  assert.equal(parseKernelRelease('6.18.0+'), '6.18.0+');
  for (const bad of ['.', '.6.8', '-6.8', '..', '6.8..0', '6.8/0', '', 'a'.repeat(129), '6.8 0']) rejects(() => parseKernelRelease(bad), JSON.stringify(bad));
});

/**
 * What `nvidia-smi` prints about the GPUs' interconnect, parsed: the
 * `topo -m` matrix (which GPU pairs are joined by NVLink: `NV<n>` cells) and
 * the index-to-PCI-address map that names its rows (`--query-gpu=index,pci.bus_id`).
 * The matrix names GPUs by nvidia-smi's index, which only the second query ties
 * to a PCI address. Output that does not parse is "cannot tell", never an error.
 */
import { isPciAddress, type PciAddress } from '../model/pci.js';

/** Longest output read (a 16-GPU matrix with NICs is a few KiB). */
const MAX_CHARS = 256 * 1024;
// Recent drivers underline the header; the escape character is built, not written, to keep the pattern printable.
const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g');

/** `0, 00000000:18:00.0` lines -> index -> PCI address (4-digit domain, lower case). Undefined when a line does not parse. */
export function parseGpuBusIds(csv: string): Map<number, PciAddress> | undefined {
  const out = new Map<number, PciAddress>();
  for (const line of csv.slice(0, MAX_CHARS).split('\n')) {
    if (line.trim() === '') continue;
    const m = /^\s*([0-9]{1,3})\s*,\s*(?:[0-9a-fA-F]{4})?([0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7])\s*$/.exec(line);
    const address = m?.[2]?.toLowerCase();
    if (!m || address === undefined || !isPciAddress(address)) return undefined;
    out.set(Number(m[1]), address);
  }
  return out;
}

/** GPU index pairs joined by NVLink in a `topo -m` matrix (each pair once, lower index first); undefined when there is no matrix. */
export function parseNvlinkMatrix(text: string): [number, number][] | undefined {
  const lines = text.slice(0, MAX_CHARS).replace(ANSI, '').split('\n');
  const header = lines.findIndex((l) => /^\s+GPU0(\s|$)/.test(l));
  if (header < 0) return undefined;
  const columns: number[] = [];
  for (const token of lines[header]!.trim().split(/\s+/)) {
    const m = /^GPU([0-9]{1,3})$/.exec(token);
    if (!m) break;
    columns.push(Number(m[1]));
  }
  const pairs = new Map<string, [number, number]>();
  for (const line of lines.slice(header + 1)) {
    const row = /^GPU([0-9]{1,3})\s/.exec(line);
    if (!row) continue;
    const cells = line.trim().split(/\s+/).slice(1);
    columns.forEach((col, k) => {
      const self = Number(row[1]);
      if (col === self || !/^NV[0-9]+$/.test(cells[k] ?? '')) return;
      const pair: [number, number] = self < col ? [self, col] : [col, self];
      pairs.set(pair.join(','), pair);
    });
  }
  return [...pairs.values()].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
}

/** NVLink-joined GPU pairs by PCI address; undefined when either output cannot be read or a matrix row has no address. */
export function nvlinkPairsFrom(topo: string, busIds: string): [PciAddress, PciAddress][] | undefined {
  const pairs = parseNvlinkMatrix(topo);
  const addresses = parseGpuBusIds(busIds);
  if (!pairs || !addresses) return undefined;
  const out: [PciAddress, PciAddress][] = [];
  for (const [a, b] of pairs) {
    const pa = addresses.get(a);
    const pb = addresses.get(b);
    if (pa === undefined || pb === undefined) return undefined;
    out.push([pa, pb]);
  }
  return out;
}

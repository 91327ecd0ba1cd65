import { createHash } from 'node:crypto';

/** A UUID that is the same for the same node, parent and slot: a VM's vGPU keeps it across reboots and re-applies. */
export function stableMdevUuid(nodeId: string, parent: string, slot: number): string {
  const h = createHash('sha256').update(`vmgpu-mdev/${nodeId}/${parent}/${slot}`).digest('hex');
  // RFC 9562 version 8 (custom), variant 10xx.
  const variant = ((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

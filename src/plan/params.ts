/** vgpu_params as the driver takes them: `k=v,k2=v2` in the config's key order; null when none are asked for. */
export function formatParams(params: Record<string, string> | undefined): string | null {
  if (!params) return null;
  return Object.entries(params)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

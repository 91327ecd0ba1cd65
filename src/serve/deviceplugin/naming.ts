/**
 * Names the device plugins hand to the kubelet and to KubeVirt: resource names,
 * the environment variables virt-launcher reads, and plugin socket file names.
 */

/** How virt-launcher tells a PCI function from an mdev: the prefix of the env var alone. */
export type ResourceKind = 'pci' | 'mdev';

export const DEFAULT_RESOURCE_DOMAIN = 'nvidia.com';

const DNS_LABEL = '[a-z0-9]([-a-z0-9]*[a-z0-9])?';
const DOMAIN_RE = new RegExp(`^${DNS_LABEL}(\\.${DNS_LABEL})*$`);
const NAME_RE = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

/**
 * Why `name` is not a valid extended resource name (`<domain>/<name>`, the
 * domain a DNS subdomain outside kubernetes.io, the name a qualified-name part
 * of at most 63 characters), or null when it is valid.
 */
export function resourceNameProblem(name: string): string | null {
  const slash = name.indexOf('/');
  if (slash <= 0 || slash !== name.lastIndexOf('/')) return 'it must be <domain>/<name> with exactly one "/", e.g. nvidia.com/L40S-24Q';
  const domain = name.slice(0, slash);
  const local = name.slice(slash + 1);
  if (domain.length > 253 || !DOMAIN_RE.test(domain)) return `the domain ${JSON.stringify(domain)} is not a lower-case DNS subdomain`;
  if (domain === 'kubernetes.io' || domain.endsWith('.kubernetes.io')) return 'the kubernetes.io domain is reserved for Kubernetes itself';
  if (local.length === 0 || local.length > 63 || !NAME_RE.test(local)) {
    return `the part after "/" (${JSON.stringify(local)}) must be 1-63 characters of letters, digits, "-", "_" and ".", starting and ending with a letter or digit`;
  }
  return null;
}

function assertResourceName(name: string, where: string): string {
  const problem = resourceNameProblem(name);
  if (problem) throw new Error(`invalid resource name ${JSON.stringify(name)} in ${where}: ${problem}`);
  return name;
}

/** Turn free text (a profile, an mdev type name) into the part after `nvidia.com/`. */
function sanitizeResourceLocalName(text: string): string {
  const cleaned = text
    .trim()
    .replace(/\s+/g, '_')
    .replace(/[^A-Za-z0-9_.-]/g, '')
    .slice(0, 63)
    .replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
  return cleaned;
}

/** SR-IOV vGPU VFs: `nvidia.com/<profile>` (Cozystack's convention), e.g. `nvidia.com/L40S-24Q`. */
export function sriovResourceName(profile: string, domain = DEFAULT_RESOURCE_DOMAIN): string {
  return `${domain}/${sanitizeResourceLocalName(profile)}`;
}

/** mdev instances: the type name with spaces to `_`, as NVIDIA's plugin does: `GRID T4-1Q` -> `nvidia.com/GRID_T4-1Q`. */
export function mdevResourceName(typeName: string, domain = DEFAULT_RESOURCE_DOMAIN): string {
  return `${domain}/${sanitizeResourceLocalName(typeName)}`;
}

const PCI_ENV_PREFIX = 'PCI_RESOURCE';
const MDEV_ENV_PREFIX = 'MDEV_PCI_RESOURCE';

/**
 * The env var virt-launcher reads (kubevirt pkg/util ResourceNameToEnvVar):
 * prefix, `_`, the resource name upper-cased with `/` and `.` turned into `_`.
 * `nvidia.com/GA102GL_A10` -> `PCI_RESOURCE_NVIDIA_COM_GA102GL_A10`.
 */
export function resourceEnvVar(kind: ResourceKind, resourceName: string): string {
  const prefix = kind === 'mdev' ? MDEV_ENV_PREFIX : PCI_ENV_PREFIX;
  return `${prefix}_${resourceName.toUpperCase().replace(/[/.]/g, '_')}`;
}

/**
 * The plugin's socket file name in the plugin directory. Derived only from a
 * validated resource name (the domain holds no `_`, so the mapping is one to one).
 */
export function pluginSocketName(resourceName: string): string {
  assertResourceName(resourceName, 'pluginSocketName');
  return `vmgpu-${resourceName.replace('/', '_')}.sock`;
}

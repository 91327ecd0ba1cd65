// The test node's configuration files: containerd (config version 3), the kubelet's
// KubeletConfiguration and the loopback-only CNI network. Every setting that differs from a
// default says why; the obstacles they get past are listed in docs/testing.md.

export interface ContainerdPaths {
  root: string;
  state: string;
  socket: string;
  runc: string;
  cniConfDir: string;
  cniBinDir: string;
  cdiSpecDir: string;
  sandboxImage: string;
}

const q = (s: string): string => JSON.stringify(s); // a TOML basic string is a JSON string for these paths

export function containerdConfig(p: ContainerdPaths): string {
  return `version = 3
root = ${q(p.root)}
state = ${q(p.state)}
# Plugins that would write outside root/state (/opt/containerd, NRI's socket) or are not used.
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.nri.v1.nri", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = ${q(p.socket)}
[ttrpc]
  address = ${q(`${p.socket}.ttrpc`)}

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    # Built locally (scripts/build-node-tools.mjs) and imported at start: there is no registry.
    sandbox = ${q(p.sandboxImage)}

[plugins."io.containerd.cri.v1.runtime"]
  # The machine's bounding set lacks CAP_SYS_RESOURCE, so nobody can lower oom_score_adj
  # below containerd's own: clamp the kubelet's -998 for sandboxes instead of failing runc.
  restrict_oom_score_adj = true
  # DRA drivers hand devices to containers as CDI names.
  enable_cdi = true
  cdi_spec_dirs = [${q(p.cdiSpecDir)}]
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = ${q(p.runc)}
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    # Only hostNetwork pods run, but the CRI reports NetworkReady only with a loadable config.
    bin_dirs = [${q(p.cniBinDir)}]
    conf_dir = ${q(p.cniConfDir)}
`;
}

/** A CNI network list the CRI can load; hostNetwork sandboxes never call its plugin. */
export const LOOPBACK_CNI = JSON.stringify({ cniVersion: '1.0.0', name: 'vmgpu-hostnet-only', plugins: [{ type: 'loopback' }] });

export interface KubeletSettings {
  cgroupRoot: string;
  containerdSocket: string;
  clientCaFile: string;
  port: number;
  healthzPort: number;
  featureGates?: Record<string, boolean>;
}

export function kubeletConfig(s: KubeletSettings): string {
  return JSON.stringify(
    {
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      // This machine has cgroup v1 (deprecated, still supported when asked for).
      failCgroupV1: false,
      cgroupDriver: 'cgroupfs',
      cgroupRoot: s.cgroupRoot,
      containerRuntimeEndpoint: `unix://${s.containerdSocket}`,
      // Served on loopback only: nothing in the tests calls the kubelet over the network.
      address: '127.0.0.1',
      port: s.port,
      readOnlyPort: 0,
      healthzBindAddress: '127.0.0.1',
      healthzPort: s.healthzPort,
      authentication: { anonymous: { enabled: false }, webhook: { enabled: false }, x509: { clientCAFile: s.clientCaFile } },
      authorization: { mode: 'AlwaysAllow' },
      // A shared test machine is always "under pressure" by production thresholds.
      evictionHard: { 'memory.available': '1Mi', 'nodefs.available': '1%', 'imagefs.available': '1%', 'nodefs.inodesFree': '1%' },
      imageGCHighThresholdPercent: 100,
      imageGCLowThresholdPercent: 99,
      failSwapOn: false,
      resolvConf: '',
      // Faster status: allocatable shows up in the Node object sooner.
      nodeStatusUpdateFrequency: '1s',
      nodeStatusReportFrequency: '1s',
      syncFrequency: '10s',
      fileCheckFrequency: '10s',
      serializeImagePulls: false,
      rotateCertificates: false,
      serverTLSBootstrap: false,
      protectKernelDefaults: false,
      shutdownGracePeriod: '0s',
      ...(s.featureGates && Object.keys(s.featureGates).length ? { featureGates: s.featureGates } : {}),
    },
    null,
    2,
  );
}

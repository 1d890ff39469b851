//! The files a real node runs from: certificates, kubeconfigs, the components' flags, the
//! kubelet's and containerd's configuration and the CNI network, all inside the node's directory.

use super::pki::{CertKey, NodePki};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;

/// The node's name (also its kubelet's `system:node:` identity).
pub const NODE_NAME: &str = "amlsecrets-node";
/// The node's address on its veth inside the network namespace.
pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 2);
/// The `kubernetes` Service's ClusterIP (the first address of the Service range).
pub const SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 1);
/// The Service range.
const SERVICE_RANGE: &str = "10.96.0.0/24";
/// The pods' subnet on the node's bridge.
pub const POD_SUBNET: &str = "10.244.0.0/24";
/// How often the kubelet resyncs pods, which bounds how fast Secret changes reach mounted files.
pub const KUBELET_SYNC_FREQUENCY_SECS: u64 = 10;

/// Writes every file of the node into `dir`; `cgroup_root` is the cgroup (in every hierarchy)
/// all pods live under.
pub fn write_all(dir: &Path, pki: &NodePki, cgroup_root: &str) -> std::io::Result<()> {
    let d = |name: &str| dir.join(name).display().to_string();
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text);
    let pair = |name: &str, ck: &CertKey| -> std::io::Result<()> {
        write(&format!("{name}.crt"), &ck.cert)?;
        write(&format!("{name}.key"), &ck.key)
    };
    pair("ca", &pki.ca)?;
    pair("apiserver", &pki.apiserver)?;
    pair("kubelet-serving", &pki.kubelet_serving)?;
    pair("apiserver-kubelet-client", &pki.apiserver_kubelet_client)?;
    write("sa.key", &pki.sa_key)?;
    write("sa.pub", &pki.sa_pub)?;
    write("node-ip", &NODE_IP.to_string())?;
    write("service-ip", &SERVICE_IP.to_string())?;
    write("cgroup-root", cgroup_root)?;
    // No cluster DNS: pods resolve only /etc/hosts (and hostAliases).
    write(
        "resolv.conf",
        "nameserver 127.0.0.1\noptions ndots:1 attempts:1 timeout:1\n",
    )?;
    std::fs::create_dir_all(dir.join("volume-plugins"))?;
    std::fs::create_dir_all(dir.join("cni"))?;

    let inside = format!("https://{NODE_IP}:443");
    write(
        "kubelet.kubeconfig",
        &kubeconfig(&inside, &pki.ca.cert, &pki.kubelet),
    )?;
    write(
        "controller-manager.kubeconfig",
        &kubeconfig(&inside, &pki.ca.cert, &pki.controller_manager),
    )?;
    write(
        "scheduler.kubeconfig",
        &kubeconfig(&inside, &pki.ca.cert, &pki.scheduler),
    )?;

    let issuer = issuer();
    write(
        "apiserver.args",
        &lines(&[
            "--etcd-servers=http://127.0.0.1:2379".into(),
            "--bind-address=0.0.0.0".into(),
            "--secure-port=443".into(),
            format!("--advertise-address={NODE_IP}"),
            "--cert-dir=/var/lib/kube-apiserver".into(),
            format!("--tls-cert-file={}", d("apiserver.crt")),
            format!("--tls-private-key-file={}", d("apiserver.key")),
            format!("--client-ca-file={}", d("ca.crt")),
            format!(
                "--kubelet-client-certificate={}",
                d("apiserver-kubelet-client.crt")
            ),
            format!("--kubelet-client-key={}", d("apiserver-kubelet-client.key")),
            format!("--kubelet-certificate-authority={}", d("ca.crt")),
            "--kubelet-preferred-address-types=InternalIP".into(),
            format!("--service-account-issuer={issuer}"),
            format!("--api-audiences={issuer}"),
            format!("--service-account-key-file={}", d("sa.pub")),
            format!("--service-account-signing-key-file={}", d("sa.key")),
            format!("--service-cluster-ip-range={SERVICE_RANGE}"),
            "--authorization-mode=Node,RBAC".into(),
            "--enable-admission-plugins=NodeRestriction".into(),
            "--allow-privileged=true".into(),
            "--profiling=false".into(),
        ]),
    )?;
    let cm = d("controller-manager.kubeconfig");
    write(
        "controller-manager.args",
        &lines(&[
            format!("--kubeconfig={cm}"),
            format!("--authentication-kubeconfig={cm}"),
            format!("--authorization-kubeconfig={cm}"),
            "--bind-address=127.0.0.1".into(),
            "--leader-elect=false".into(),
            "--use-service-account-credentials=true".into(),
            format!("--service-account-private-key-file={}", d("sa.key")),
            format!("--root-ca-file={}", d("ca.crt")),
            format!("--cluster-signing-cert-file={}", d("ca.crt")),
            format!("--cluster-signing-key-file={}", d("ca.key")),
            "--controllers=*".into(),
            "--allocate-node-cidrs=false".into(),
            format!("--flex-volume-plugin-dir={}", d("volume-plugins")),
            "--profiling=false".into(),
        ]),
    )?;
    let sched = d("scheduler.kubeconfig");
    write(
        "scheduler.args",
        &lines(&[
            format!("--kubeconfig={sched}"),
            format!("--authentication-kubeconfig={sched}"),
            format!("--authorization-kubeconfig={sched}"),
            "--bind-address=127.0.0.1".into(),
            "--leader-elect=false".into(),
        ]),
    )?;
    write(
        "kubelet.args",
        &lines(&[
            format!("--config={}", d("kubelet.yaml")),
            format!("--kubeconfig={}", d("kubelet.kubeconfig")),
            format!("--node-ip={NODE_IP}"),
            format!("--hostname-override={NODE_NAME}"),
        ]),
    )?;
    write("kubelet.yaml", &kubelet_yaml(dir, cgroup_root))?;
    write("containerd.toml", &containerd_toml(dir))?;
    write(
        "cni/10-bridge.conflist",
        &serde_json::json!({
            "cniVersion": "1.0.0",
            "name": "amlsecrets-node",
            "plugins": [{
                "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false,
                "hairpinMode": true,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_SUBNET}]],
                         "routes": [{"dst": "0.0.0.0/0"}]}
            }]
        })
        .to_string(),
    )?;
    Ok(())
}

/// Returns the service-account token issuer (`iss`), the API server's URL inside the node.
pub fn issuer() -> String {
    format!("https://{NODE_IP}")
}

fn lines(args: &[String]) -> String {
    args.iter().fold(String::new(), |mut s, a| {
        let _ = writeln!(s, "{a}");
        s
    })
}

/// Returns a kubeconfig for `server` with the CA and a client certificate inline.
pub fn kubeconfig(server: &str, ca_pem: &str, client: &CertKey) -> String {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: real-node
  cluster:
    server: {server}
    certificate-authority-data: {}
users:
- name: real-node
  user:
    client-certificate-data: {}
    client-key-data: {}
contexts:
- name: real-node
  context: {{cluster: real-node, user: real-node}}
current-context: real-node
",
        b64(ca_pem),
        b64(&client.cert),
        b64(&client.key)
    )
}

fn kubelet_yaml(dir: &Path, cgroup_root: &str) -> String {
    let d = |name: &str| dir.join(name).display().to_string();
    format!(
        "apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: {NODE_IP}
readOnlyPort: 0
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: true}}
  x509: {{clientCAFile: {ca}}}
authorization: {{mode: Webhook}}
tlsCertFile: {cert}
tlsPrivateKeyFile: {key}
containerRuntimeEndpoint: unix://{sock}
cgroupDriver: cgroupfs
cgroupRoot: /{cgroup_root}
failCgroupV1: false
failSwapOn: false
resolvConf: {resolv}
volumePluginDir: {plugins}
syncFrequency: {KUBELET_SYNC_FREQUENCY_SECS}s
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {{memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}}
serializeImagePulls: false
clusterDomain: cluster.local
",
        ca = d("ca.crt"),
        cert = d("kubelet-serving.crt"),
        key = d("kubelet-serving.key"),
        sock = d("containerd.sock"),
        resolv = d("resolv.conf"),
        plugins = d("volume-plugins"),
    )
}

fn containerd_toml(dir: &Path) -> String {
    let d = |name: &str| dir.join(name).display().to_string();
    let cri = "plugins.\"io.containerd.grpc.v1.cri\"";
    format!(
        r#"version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[{cri}]
  sandbox_image = "registry.k8s.io/pause:3.10"
  restrict_oom_score_adj = true
  disable_apparmor = true
  tolerate_missing_hugetlb_controller = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
[{cri}.cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{cni}"
"#,
        sock = d("containerd.sock"),
        cni = d("cni"),
    )
}

//! Shared setup of the real-node end-to-end tests: the node (one per test binary), the fake
//! Azure reachable from pods at the node's address, kubectl and helm against the node, chart
//! releases, tenants with a service-principal workspace, consumer pods and `kubectl exec`.

#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use amlsecrets::api::conditions::find_ready;
use amlsecrets::api::{AzureMLWorkspace, WorkspaceSecret};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use testenv::azure::{AzureFakes, TENANT, TestCa, VAULT_AUDIENCE};
use testenv::node::{BUSYBOX_IMAGE, Exposure, NODE_IP, Node, OPERATOR_IMAGE};
use tokio::sync::OnceCell;

/// The service principal the fakes know.
pub const SP_CLIENT: &str = "11111111-2222-3333-4444-0000000000e2";
/// Its object id.
pub const SP_OID: &str = "aaaaaaaa-2222-3333-4444-0000000000e2";
/// Its client secret.
pub const SP_SECRET: &str = "real-node-sp-secret";
/// The vault's host name as pods know it: no cluster DNS here, so the chart's `hostAliases` maps
/// it to the node's address (and the static binary resolves it through `/etc/hosts`).
pub const VAULT_HOST: &str = "e2e-vault.vault.test";
/// The audience of workload-identity tokens, as the Azure webhook projects them.
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

/// The node, the fakes reachable from its pods, and files for kubectl and helm.
pub struct Env {
    /// The node.
    pub node: &'static Node,
    /// The fake Azure (its servers run on a runtime of their own, shared by every test).
    pub fakes: AzureFakes,
    /// Entra ID's authority host as pods reach it.
    pub authority: String,
    /// ARM as pods reach it.
    pub arm: String,
    /// The vault as pods reach it (`https://VAULT_HOST:PORT`).
    pub vault: String,
    /// The fakes' CA certificate (for the chart's `extraCaBundle`).
    pub ca_file: PathBuf,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    _exposures: Vec<Exposure>,
}

static ENV: OnceCell<Env> = OnceCell::const_new();

/// Returns the shared environment, starting the node and the fakes on first use.
pub async fn env() -> &'static Env {
    ENV.get_or_init(|| async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let node = Node::shared().await;
        report(
            "node start -> Ready",
            format!("{:.1?}", node.startup_time()),
        );
        let fakes = start_fakes();
        fakes.entra.add_secret(TENANT, SP_CLIENT, SP_OID, SP_SECRET);
        let mut exposures = Vec::new();
        let mut urls = Vec::new();
        for url in [
            &fakes.entra.authority_host,
            &fakes.arm.endpoint,
            &fakes.vault.uri,
        ] {
            let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
            let exposure = node
                .expose(port)
                .await
                .unwrap_or_else(|e| panic!("exposing a fake to the pods failed: {e}"));
            urls.push(format!("https://{}", exposure.address()));
            exposures.push(exposure);
        }
        // The vault by name (hostAliases), the others by address.
        urls[2] = urls[2].replace(&NODE_IP.to_string(), VAULT_HOST);
        // Ids and nextLinks as pods reach the vault (the client refuses links to other hosts).
        fakes.vault.set_public_uri(&urls[2]);
        let ca_file = node.dir().join("fake-azure-ca.crt");
        std::fs::write(&ca_file, fakes.ca.pem()).unwrap();
        let kubeconfig = node.dir().join("kubeconfig");
        node.write_kubeconfig(&kubeconfig).unwrap();
        Env {
            node,
            fakes,
            authority: urls[0].clone(),
            arm: urls[1].clone(),
            vault: urls[2].clone(),
            ca_file,
            kubeconfig,
            _exposures: exposures,
        }
    })
    .await
}

/// Starts the fakes on a runtime of their own that lives as long as the test binary (each test
/// has its own runtime, which would stop servers started in it when the test ends).
fn start_fakes() -> AzureFakes {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("fake-azure".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime for the fakes");
            runtime.block_on(async move {
                let ca = TestCa::with_extra_names(&[&NODE_IP.to_string(), VAULT_HOST]);
                let _ = tx.send(AzureFakes::start_with_ca(ca).await);
                std::future::pending::<()>().await;
            });
        })
        .expect("a thread for the fakes");
    rx.recv().expect("the fakes started")
}

impl Env {
    /// Returns an admin client (one per test: a client belongs to its runtime).
    pub fn client(&self) -> kube::Client {
        self.node.client()
    }

    /// Runs kubectl against the node; returns stdout or the error output.
    pub fn kubectl(&self, args: &[&str]) -> Result<Vec<u8>, String> {
        run_tool("kubectl", args, &self.kubeconfig)
    }

    /// Runs helm against the node; returns stdout or the error output.
    pub fn helm(&self, args: &[&str]) -> Result<Vec<u8>, String> {
        run_tool("helm", args, &self.kubeconfig)
    }

    /// `helm install`s the chart as `release` into `namespace` (created) with the e2e image,
    /// the fakes' CA as `extraCaBundle`, a `hostAliases` entry for the vault's name and `extra`
    /// `--set`-style arguments; waits until the
    /// Deployment is available (both replicas Ready). Returns how long the install took.
    pub fn install(&self, release: &str, namespace: &str, extra: &[&str]) -> Duration {
        let (repository, tag) = OPERATOR_IMAGE.split_once(':').unwrap();
        let chart = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("charts/amlsecrets");
        let repo = format!("image.repository={repository}");
        let tag = format!("image.tag={tag}");
        let ca = format!("extraCaBundle={}", self.ca_file.display());
        let alias_ip = format!("hostAliases[0].ip={NODE_IP}");
        let alias_name = format!("hostAliases[0].hostnames[0]={VAULT_HOST}");
        let mut args = vec![
            "install",
            release,
            chart.to_str().unwrap(),
            "--namespace",
            namespace,
            "--create-namespace",
            "--wait",
            "--timeout",
            "4m",
            "--set",
            &repo,
            "--set",
            &tag,
            "--set",
            "image.pullPolicy=Never",
            "--set-file",
            &ca,
            "--set",
            &alias_ip,
            "--set",
            &alias_name,
        ];
        args.extend(extra);
        let started = Instant::now();
        if let Err(e) = self.helm(&args) {
            let pods = self
                .kubectl(&["get", "pods,events", "-n", namespace, "-o", "wide"])
                .unwrap_or_default();
            panic!(
                "helm install {release} failed: {e}\n{}\n{}",
                String::from_utf8_lossy(&pods),
                self.node.log_tails()
            );
        }
        started.elapsed()
    }

    /// Creates namespace `ns` with the service principal's Secret and the AzureMLWorkspace `ml`
    /// pointing at the fakes as pods reach them.
    pub async fn tenant(&self, ns: &str) {
        let client = self.client();
        create_namespace(&client, ns).await;
        let pp = PatchParams::apply("e2e").force();
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some("sp".into()),
                ..Default::default()
            },
            data: Some(
                [(
                    "clientSecret".to_string(),
                    ByteString(SP_SECRET.as_bytes().to_vec()),
                )]
                .into(),
            ),
            ..Default::default()
        };
        Api::<Secret>::namespaced(client.clone(), ns)
            .patch("sp", &pp, &Patch::Apply(secret))
            .await
            .unwrap();
        let auth = json!({ "servicePrincipal": { "tenantId": TENANT, "clientId": SP_CLIENT,
            "clientSecretRef": { "name": "sp", "key": "clientSecret" } } });
        self.workspace(ns, "ml", auth).await;
    }

    /// Applies the AzureMLWorkspace `name` in `ns` with this `auth`, pointing at the fakes.
    pub async fn workspace(&self, ns: &str, name: &str, auth: Value) {
        let ws = json!({ "apiVersion": "amlsecrets.io/v1alpha1", "kind": "AzureMLWorkspace", "metadata": { "name": name },
            "spec": { "subscriptionId": "00000000-1111-2222-3333-444444444444", "resourceGroup": "rg-ml", "workspaceName": "mlw-e2e",
                "cloud": "Custom",
                "customCloud": { "authorityHost": self.authority, "resourceManagerEndpoint": self.arm,
                                 "keyVaultDnsSuffix": ".vault.test", "keyVaultAudience": VAULT_AUDIENCE },
                "keyVault": { "uri": self.vault },
                "auth": auth } });
        Api::<AzureMLWorkspace>::namespaced(self.client(), ns)
            .patch(name, &PatchParams::apply("e2e").force(), &Patch::Apply(ws))
            .await
            .unwrap();
    }

    /// Applies the WorkspaceSecret `name` of workspace `workspace` with `items` (key, ref),
    /// refreshed every `refresh`.
    pub async fn workspace_secret(
        &self,
        ns: &str,
        name: &str,
        workspace: &str,
        refresh: &str,
        items: &[(&str, &str)],
    ) {
        let data: Vec<Value> = items
            .iter()
            .map(|(k, r)| json!({ "key": k, "ref": r }))
            .collect();
        let wsec = json!({ "apiVersion": "amlsecrets.io/v1alpha1", "kind": "WorkspaceSecret", "metadata": { "name": name },
            "spec": { "workspaceRef": { "name": workspace }, "refreshInterval": refresh, "data": data } });
        Api::<WorkspaceSecret>::namespaced(self.client(), ns)
            .patch(
                name,
                &PatchParams::apply("e2e").force(),
                &Patch::Apply(wsec),
            )
            .await
            .unwrap();
    }

    /// Waits until WorkspaceSecret `ns/name` is Ready with reason `Synced`.
    pub async fn wait_synced(&self, ns: &str, name: &str, timeout: Duration) {
        let api: Api<WorkspaceSecret> = Api::namespaced(self.client(), ns);
        let ws_api: Api<AzureMLWorkspace> = Api::namespaced(self.client(), ns);
        let start = Instant::now();
        loop {
            let reason = api.get_opt(name).await.ok().flatten().and_then(|w| {
                w.status
                    .and_then(|s| find_ready(&s.conditions).map(|c| c.reason.clone()))
            });
            if reason.as_deref() == Some("Synced") {
                return;
            }
            if start.elapsed() > timeout {
                let ws = ws_api.list(&ListParams::default()).await.ok();
                let ws_status: Vec<String> = ws
                    .map(|l| {
                        l.items
                            .iter()
                            .map(|w| format!("{:?}", w.status.as_ref().map(|s| &s.conditions)))
                            .collect()
                    })
                    .unwrap_or_default();
                panic!(
                    "WorkspaceSecret {ns}/{name} not Synced after {timeout:?} (reason {reason:?}); workspaces: {ws_status:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Returns the data of Secret `ns/name`.
    pub async fn secret_data(&self, ns: &str, name: &str) -> Option<Vec<(String, Vec<u8>)>> {
        let s = Api::<Secret>::namespaced(self.client(), ns)
            .get_opt(name)
            .await
            .ok()??;
        Some(s.data?.into_iter().map(|(k, v)| (k, v.0)).collect())
    }

    /// Creates a busybox pod `name` that mounts Secret `secret` at /secret (`env_from`: as
    /// environment variables instead) and waits until it is Ready.
    pub async fn consumer_pod(&self, ns: &str, name: &str, secret: &str, env_from: bool) {
        let mut container = json!({ "name": "app", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never",
            "command": ["/bin/busybox", "sleep", "86400"],
            "securityContext": { "runAsNonRoot": true, "runAsUser": 1000, "allowPrivilegeEscalation": false,
                                 "readOnlyRootFilesystem": true, "capabilities": { "drop": ["ALL"] } } });
        let mut spec = json!({ "containers": [], "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": false, "enableServiceLinks": false });
        if env_from {
            container["envFrom"] = json!([{ "secretRef": { "name": secret } }]);
        } else {
            container["volumeMounts"] =
                json!([{ "name": "secret", "mountPath": "/secret", "readOnly": true }]);
            spec["volumes"] = json!([{ "name": "secret", "secret": { "secretName": secret } }]);
        }
        spec["containers"] = json!([container]);
        let pod: Pod = serde_json::from_value(
            json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": name }, "spec": spec }),
        )
        .unwrap();
        let api: Api<Pod> = Api::namespaced(self.client(), ns);
        api.create(&PostParams::default(), &pod).await.unwrap();
        self.wait_pod_ready(ns, name, Duration::from_secs(90)).await;
    }

    /// Waits until pod `ns/name` is Ready.
    pub async fn wait_pod_ready(&self, ns: &str, name: &str, timeout: Duration) {
        let api: Api<Pod> = Api::namespaced(self.client(), ns);
        let ready = eventually_opt(timeout, || async {
            let pod = api.get_opt(name).await.ok()??;
            pod.status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
                .then_some(())
        })
        .await;
        if ready.is_none() {
            let described = self
                .kubectl(&["describe", "pod", "-n", ns, name])
                .unwrap_or_default();
            panic!(
                "pod {ns}/{name} not Ready after {timeout:?}:\n{}\n{}",
                String::from_utf8_lossy(&described),
                self.node.log_tails()
            );
        }
    }

    /// Runs `command` in the first container of pod `ns/pod` (`kubectl exec`); returns stdout.
    pub fn exec(&self, ns: &str, pod: &str, command: &[&str]) -> Result<Vec<u8>, String> {
        let mut args = vec!["exec", "-n", ns, pod, "--"];
        args.extend(command);
        self.kubectl(&args)
    }

    /// GETs `path` of a pod's port through the API server's pod proxy.
    pub async fn pod_get(&self, ns: &str, pod: &str, port: u16, path: &str) -> Option<String> {
        let request = http::Request::get(format!(
            "/api/v1/namespaces/{ns}/pods/{pod}:{port}/proxy{path}"
        ))
        .body(Vec::new())
        .unwrap();
        self.client().request_text(request).await.ok()
    }

    /// Returns the pods of a release, by name.
    pub async fn release_pods(&self, ns: &str, release: &str) -> Vec<Pod> {
        Api::<Pod>::namespaced(self.client(), ns)
            .list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={release}")))
            .await
            .unwrap()
            .items
    }

    /// Returns the name of the pod holding the release's Lease (its identity is `<pod>_<id>`).
    pub async fn leader(&self, ns: &str) -> Option<String> {
        use k8s_openapi::api::coordination::v1::Lease;
        let lease = Api::<Lease>::namespaced(self.client(), ns)
            .get_opt("amlsecrets-leader")
            .await
            .ok()??;
        let holder = lease.spec?.holder_identity?;
        holder.split_once('_').map(|(pod, _)| pod.to_owned())
    }
}

/// Creates a namespace (no error if it exists).
pub async fn create_namespace(client: &kube::Client, name: &str) {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        ..Default::default()
    };
    match Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("creating namespace {name}: {e}"),
    }
}

/// Runs a tool of the tools directory with `KUBECONFIG`; returns stdout or the error output.
pub fn run_tool(name: &str, args: &[&str], kubeconfig: &Path) -> Result<Vec<u8>, String> {
    let path = testenv::control_plane::tools_dir().join("bin").join(name);
    let out = Command::new(&path)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env(
            "HELM_CACHE_HOME",
            std::env::temp_dir().join("amlsecrets-helm-cache"),
        )
        .env(
            "HELM_CONFIG_HOME",
            std::env::temp_dir().join("amlsecrets-helm-config"),
        )
        .output()
        .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(format!(
            "{name} {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Polls `check` every 200 ms until it yields a value or `timeout` passes.
pub async fn eventually_opt<T, F, Fut>(timeout: Duration, check: F) -> Option<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if start.elapsed() > timeout {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls `check` until it yields a value; panics naming `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, check: F) -> T
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    match eventually_opt(timeout, check).await {
        Some(v) => v,
        None => panic!("timed out after {timeout:?} waiting for {what}"),
    }
}

/// Prints a measured figure in a form easy to find in the test output, and appends it to the
/// file named by `AMLSECRETS_MEASUREMENTS` (`scripts/test.sh` prints that file at the end, since
/// the output of passing tests is captured).
pub fn report(what: &str, value: impl std::fmt::Display) {
    let line = format!("real-node measurement: {what}: {value}");
    eprintln!("{line}");
    if let Some(path) = std::env::var_os("AMLSECRETS_MEASUREMENTS") {
        use std::io::Write as _;
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(file, "{line}");
        }
    }
}

//! The audit log a benchmark turns on: off by default; when on, a process run with a
//! ServiceAccount kubeconfig is audited under that identity, each request once, and the API
//! server's pid is the kube-apiserver itself.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::Value;
use testenv::control_plane::{ControlPlane, Options};

#[tokio::test]
async fn the_audit_log_records_each_request_of_a_service_account_once() {
    assert!(
        ControlPlane::shared().await.audit_log_path().is_none(),
        "the audit log is off by default"
    );
    let cp = ControlPlane::start_with(Options { audit_log: true })
        .await
        .expect("a control plane with an audit log");
    let ns = cp.namespace().await;
    let path = cp.data_dir().join("reader.kubeconfig");
    cp.write_service_account_kubeconfig(&ns, "reader", 3600, &path)
        .await
        .unwrap();
    let kubeconfig = Kubeconfig::read_from(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(kube::Client::try_from(config).unwrap(), &ns);
    // No RBAC grants it anything: denied, and audited all the same.
    let denied = api.list(&ListParams::default()).await;
    assert!(
        matches!(denied, Err(kube::Error::Api(ref s)) if s.code == 403),
        "{denied:?}"
    );

    let user = format!("system:serviceaccount:{ns}:reader");
    let log = std::fs::read_to_string(cp.audit_log_path().unwrap()).unwrap();
    let events: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(events.iter().all(|e| e["stage"] != "RequestReceived"));
    let mine: Vec<&Value> = events
        .iter()
        .filter(|e| e["user"]["username"] == user.as_str())
        .collect();
    assert_eq!(mine.len(), 1, "{mine:#?}");
    assert_eq!(mine[0]["verb"], "list");
    assert_eq!(mine[0]["objectRef"]["resource"], "configmaps");
    assert_eq!(mine[0]["stage"], "ResponseComplete");
    assert_eq!(mine[0]["responseStatus"]["code"], 403);

    let pid = cp.apiserver_pid().unwrap();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "kube-apiserver");
}

//! Objects and small helpers shared by the control-plane tests.

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::ObjectMeta;
use serde_json::Value;
use testenv::control_plane::crds;

/// Builds a Secret with one key, `password`.
pub fn secret(name: &str, password: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(
            [(
                "password".to_owned(),
                ByteString(password.as_bytes().to_vec()),
            )]
            .into(),
        ),
        ..Default::default()
    }
}

/// Returns the API error status of `result`, panicking if it is not one.
pub fn status_of(result: Result<impl std::fmt::Debug, kube::Error>) -> Box<kube::core::Status> {
    match result {
        Err(kube::Error::Api(status)) => status,
        other => panic!("expected an API error status, got {other:?}"),
    }
}

/// Reads the first `x-kubernetes-validations` message at `schema_path` (a JSON pointer into
/// the schema) of the CRD in `crds/<file>`.
pub fn cel_message(file: &str, schema_path: &str) -> String {
    let text = std::fs::read_to_string(crds::crd_dir().join(file)).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    let pointer = format!(
        "/spec/versions/0/schema/openAPIV3Schema{schema_path}/x-kubernetes-validations/0/message"
    );
    docs[0]
        .pointer(&pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no CEL message at {pointer}"))
        .to_owned()
}

/// Builds a Role named `name` that may list Secrets.
pub fn secret_lister_role(name: &str) -> Role {
    Role {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["secrets".into()]),
            verbs: vec!["list".into()],
            ..Default::default()
        }]),
    }
}

/// Builds a RoleBinding named like the Role `role` granting it to ServiceAccount `ns/account`.
pub fn bind_role_to_service_account(role: &str, ns: &str, account: &str) -> RoleBinding {
    RoleBinding {
        metadata: ObjectMeta {
            name: Some(role.into()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: role.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: account.into(),
            namespace: Some(ns.into()),
            ..Default::default()
        }]),
    }
}

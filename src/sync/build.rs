//! Builds the desired target Secret from plain values: the pure middle of a reconcile.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::api::workspace_secret::{CreationPolicy, WorkspaceSecret};

/// The label on every Secret the operator writes; its Secret watch selects on it server-side.
pub const MANAGED_LABEL: &str = "amlsecrets.io/managed";
/// The annotation naming the WorkspaceSecret that writes a Secret (proof of ownership for `Orphan`).
pub const SOURCE_ANNOTATION: &str = "amlsecrets.io/workspace-secret";

/// Who may write the target Secret, judged from what exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// No Secret of that name exists.
    Absent,
    /// It exists and this WorkspaceSecret wrote it.
    Ours,
    /// It exists and was written by someone else.
    Foreign,
}

/// Judges an existing Secret's ownership relative to a WorkspaceSecret.
pub fn ownership(existing: Option<&ObjectMeta>, ws: &WorkspaceSecret) -> Ownership {
    let Some(meta) = existing else {
        return Ownership::Absent;
    };
    let uid = ws.metadata.uid.as_deref();
    let owned_by_ref = meta
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.kind == "WorkspaceSecret" && Some(r.uid.as_str()) == uid);
    let annotated = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(SOURCE_ANNOTATION))
        .is_some_and(|n| Some(n.as_str()) == ws.metadata.name.as_deref());
    let labelled = meta
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_LABEL))
        .is_some_and(|v| v == "true");
    if owned_by_ref || (annotated && labelled) {
        Ownership::Ours
    } else {
        Ownership::Foreign
    }
}

/// Returns the name of the target Secret: `spec.target.name` or the WorkspaceSecret's own name.
pub fn target_name(ws: &WorkspaceSecret) -> String {
    ws.spec
        .target
        .name
        .clone()
        .or_else(|| ws.metadata.name.clone())
        .unwrap_or_default()
}

fn owner_reference(ws: &WorkspaceSecret) -> OwnerReference {
    OwnerReference {
        api_version: format!("{}/{}", crate::api::GROUP, crate::api::VERSION),
        kind: "WorkspaceSecret".into(),
        name: ws.metadata.name.clone().unwrap_or_default(),
        uid: ws.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Builds the Secret to server-side apply: exactly the fields this WorkspaceSecret manages.
///
/// Under `Merge` only the data keys and the managed label are claimed (the Secret's type, other
/// keys and metadata stay with their owners); under `Owner` an ownerReference is set.
pub fn desired_secret(ws: &WorkspaceSecret, data: BTreeMap<String, Vec<u8>>) -> Secret {
    let target = &ws.spec.target;
    let policy = target.creation_policy;
    let mut labels = BTreeMap::from([(MANAGED_LABEL.to_string(), "true".to_string())]);
    let mut annotations = BTreeMap::new();
    if policy != CreationPolicy::Merge {
        labels.extend(target.labels.clone());
        annotations.extend(target.annotations.clone());
        annotations.insert(
            SOURCE_ANNOTATION.to_string(),
            ws.metadata.name.clone().unwrap_or_default(),
        );
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(target_name(ws)),
            namespace: ws.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: (policy == CreationPolicy::Owner).then(|| vec![owner_reference(ws)]),
            ..ObjectMeta::default()
        },
        type_: match policy {
            CreationPolicy::Merge => None,
            _ => Some(target.r#type.clone().unwrap_or_else(|| "Opaque".into())),
        },
        data: Some(data.into_iter().map(|(k, v)| (k, ByteString(v))).collect()),
        ..Secret::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::workspace_secret::{Target, WorkspaceRef, WorkspaceSecretSpec};

    fn ws(policy: CreationPolicy) -> WorkspaceSecret {
        let mut ws = WorkspaceSecret::new(
            "db",
            WorkspaceSecretSpec {
                workspace_ref: WorkspaceRef { name: "ml".into() },
                refresh_interval: None,
                target: Target {
                    creation_policy: policy,
                    labels: BTreeMap::from([("team".into(), "a".into())]),
                    ..Target::default()
                },
                data: vec![],
                data_from: vec![],
                allow_datastore_credentials: false,
            },
        );
        ws.metadata.namespace = Some("ns".into());
        ws.metadata.uid = Some("uid-1".into());
        ws
    }

    fn data() -> BTreeMap<String, Vec<u8>> {
        BTreeMap::from([("password".to_string(), b"s3cret".to_vec())])
    }

    #[test]
    fn owner_policy_sets_owner_reference_type_and_labels() {
        let s = desired_secret(&ws(CreationPolicy::Owner), data());
        assert_eq!(s.metadata.name.as_deref(), Some("db"));
        let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("WorkspaceSecret", "uid-1")
        );
        assert_eq!(s.type_.as_deref(), Some("Opaque"));
        let labels = s.metadata.labels.unwrap();
        assert_eq!(labels.get(MANAGED_LABEL).map(String::as_str), Some("true"));
        assert_eq!(labels.get("team").map(String::as_str), Some("a"));
        assert_eq!(s.data.unwrap()["password"].0, b"s3cret");
    }

    #[test]
    fn merge_policy_claims_only_data_and_the_label() {
        let s = desired_secret(&ws(CreationPolicy::Merge), data());
        assert!(s.metadata.owner_references.is_none());
        assert!(s.type_.is_none());
        assert!(s.metadata.annotations.is_none());
        assert_eq!(s.metadata.labels.unwrap().len(), 1);
    }

    #[test]
    fn orphan_policy_sets_no_owner_reference() {
        let s = desired_secret(&ws(CreationPolicy::Orphan), data());
        assert!(s.metadata.owner_references.is_none());
        assert_eq!(s.metadata.annotations.unwrap()[SOURCE_ANNOTATION], "db");
    }

    #[test]
    fn ownership_is_judged_by_owner_reference_or_our_marks() {
        let w = ws(CreationPolicy::Owner);
        assert_eq!(ownership(None, &w), Ownership::Absent);
        let foreign = ObjectMeta {
            name: Some("db".into()),
            ..ObjectMeta::default()
        };
        assert_eq!(ownership(Some(&foreign), &w), Ownership::Foreign);
        let ours = desired_secret(&w, data()).metadata;
        assert_eq!(ownership(Some(&ours), &w), Ownership::Ours);
        let orphan = desired_secret(&ws(CreationPolicy::Orphan), data()).metadata;
        assert_eq!(ownership(Some(&orphan), &w), Ownership::Ours);
        let mut other_uid = ours.clone();
        other_uid.owner_references.as_mut().unwrap()[0].uid = "uid-2".into();
        other_uid.annotations = None;
        assert_eq!(ownership(Some(&other_uid), &w), Ownership::Foreign);
    }
}

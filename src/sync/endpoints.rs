//! The endpoint and datastore side of planning and reporting (pure): whole-resource `dataFrom`
//! items expanded over the values each resource offers, values gone since the last sync, whole
//! resources that failed or offer no secret, notes, and the `sourceKind` of each key.

use std::collections::BTreeMap;

use super::keys::Mapper;
use super::plan::{Compiled, Plan, Planned};
use crate::api::conditions::reasons;
use crate::api::workspace_secret::{Decode, SyncedKey};
use crate::api::{Reference, ResourceKind, ResourcePart, ResourceRef};
use crate::fetch::endpoints::Read;
use crate::sync::assemble::{ItemError, ItemResult};

/// A whole-resource `dataFrom` item compiled for expansion.
#[derive(Debug)]
pub struct CompiledResource {
    /// Its index in `dataFrom`.
    pub index: usize,
    /// The reference as written.
    pub reference: String,
    /// The endpoint or datastore.
    pub resource: ResourceRef,
    pub(crate) mapper: Mapper,
    pub(crate) decode: Decode,
}

/// Returns every endpoint and datastore the spec reads, with whether it needs the secrets (keys,
/// token, credentials) and not only the URI.
pub fn wanted(compiled: &Compiled) -> BTreeMap<ResourceRef, bool> {
    let mut out: BTreeMap<ResourceRef, bool> = BTreeMap::new();
    for p in &compiled.explicit {
        if let Reference::Resource { resource, part } = &p.reference {
            *out.entry(resource.clone()).or_default() |= part.is_secret();
        }
    }
    for c in &compiled.resources {
        out.insert(c.resource.clone(), true);
    }
    out
}

/// Tells whether the spec reads any datastore (which needs `allowDatastoreCredentials`).
pub fn reads_datastores(compiled: &Compiled) -> bool {
    wanted(compiled)
        .keys()
        .any(|r| r.kind == ResourceKind::Datastore)
}

/// Expands whole-resource references over the field names of each resource read (`fields`; one
/// missing there failed or offers no secret, and is reported by [`item_errors`]). Explicit items
/// win, then earlier `dataFrom` items.
pub fn expand_resources(
    compiled: &Compiled,
    fields: &BTreeMap<ResourceRef, Vec<String>>,
    previous: &[SyncedKey],
    out: &mut Plan,
) {
    let taken = |items: &[Planned], key: &str| items.iter().any(|p| p.key == key);
    for c in &compiled.resources {
        let Some(names) = fields.get(&c.resource) else {
            continue;
        };
        for field in names {
            match c.mapper.map(field) {
                Ok(key) if taken(&out.items, &key) => {
                    // Reported under its own name: under the taken key, the error would make
                    // that key keep its old value instead of the one planned for it.
                    if !compiled.explicit.iter().any(|p| p.key == key) {
                        out.invalid.push((
                            format!("dataFrom[{}].{field}", c.index),
                            format!(
                                "{field} of {} maps to key {key}, already taken",
                                c.resource.describe()
                            ),
                        ));
                    }
                }
                Ok(key) => out.items.push(Planned {
                    key,
                    reference: Reference::Resource {
                        resource: c.resource.clone(),
                        part: ResourcePart::from_field(c.resource.kind, field),
                    },
                    decode: c.decode,
                }),
                Err(e) => out.invalid.push((field.clone(), e.to_string())),
            }
        }
        for prev in previous {
            let Ok(reference @ Reference::Resource { .. }) = Reference::parse(&prev.reference)
            else {
                continue;
            };
            let Reference::Resource { resource, part } = &reference else {
                continue;
            };
            if *resource == c.resource
                && !names.iter().any(|n| n == part.field())
                && !taken(&out.items, &prev.key)
                && !taken(&out.vanished_resource_fields, &prev.key)
            {
                out.vanished_resource_fields.push(Planned {
                    key: prev.key.clone(),
                    reference,
                    decode: Decode::None,
                });
            }
        }
    }
}

/// Returns every per-item error of this side: whole resources that could not be read (each key
/// synced from one before gets the error, so it keeps its last good value or goes under
/// `deletionPolicy: Delete` when the resource is gone), whole endpoints that offer no secret
/// (`InvalidSpec` naming the auth mode and what to use instead), and values gone since.
pub fn item_errors(
    compiled: &Compiled,
    read: &Read,
    planned: &Plan,
    previous: &[SyncedKey],
) -> Vec<ItemResult> {
    let mut out = Vec::new();
    for c in &compiled.resources {
        let error = match read.get(&c.resource) {
            Some(Err(e)) => ItemError::from_azure(e),
            Some(Ok(cur)) if c.resource.kind != ResourceKind::Datastore => match cur.no_secrets() {
                Some(why) => ItemError::new(reasons::INVALID_SPEC, why, false),
                None => continue,
            },
            _ => continue,
        };
        let explicit = |key: &str| compiled.explicit.iter().any(|p| p.key == key);
        let before: Vec<&SyncedKey> = previous
            .iter()
            .filter(|k| {
                !explicit(&k.key) && resource_of(&k.reference).as_ref() == Some(&c.resource)
            })
            .collect();
        let item = |key: &str, reference: &str| ItemResult {
            key: key.to_string(),
            reference: reference.to_string(),
            outcome: Err(error.clone()),
        };
        if before.is_empty() {
            out.push(item(&c.reference, &c.reference));
        }
        out.extend(before.iter().map(|k| item(&k.key, &k.reference)));
    }
    out.extend(
        planned
            .vanished_resource_fields
            .iter()
            .map(|gone| ItemResult {
                key: gone.key.clone(),
                reference: gone.reference.to_string(),
                outcome: Err(ItemError::new(
                    reasons::SECRET_NOT_FOUND,
                    format!("{} no longer exists", gone.reference),
                    true,
                )),
            }),
    );
    out
}

/// Returns the endpoint or datastore a status reference names, if it names one.
pub fn resource_of(reference: &str) -> Option<ResourceRef> {
    match Reference::parse(reference).or_else(|_| Reference::parse_data_from(reference)) {
        Ok(r) => r.resource().cloned(),
        Err(_) => None,
    }
}

/// Returns notes for the Ready message: whole datastores that carry no credentials.
pub fn notes(compiled: &Compiled, read: &Read) -> Vec<String> {
    compiled
        .resources
        .iter()
        .filter(|c| c.resource.kind == ResourceKind::Datastore)
        .filter_map(|c| read.get(&c.resource)?.as_ref().ok()?.no_secrets())
        .collect()
}

/// Fills in `sourceKind` (e.g. `onlineEndpoint/Key`) on each fresh key read from a resource.
pub fn annotate(read: &Read, keys: &mut [SyncedKey]) {
    for k in keys.iter_mut().filter(|k| !k.stale) {
        if let Some(Some(Ok(cur))) = resource_of(&k.reference).map(|r| read.get(&r)) {
            k.source_kind = Some(cur.kind());
        }
    }
}

/// Tells whether a status reference names an endpoint token (short-lived by design: no expiry
/// warnings).
pub fn is_token(reference: &str) -> bool {
    matches!(
        Reference::parse(reference),
        Ok(Reference::Resource {
            part: ResourcePart::Token,
            ..
        })
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::workspace_secret::{
        DataFrom, DataItem, KeyMapping, KeyStyle, WorkspaceRef, WorkspaceSecretSpec,
    };

    fn spec(allow: bool) -> WorkspaceSecretSpec {
        WorkspaceSecretSpec {
            workspace_ref: WorkspaceRef { name: "ml".into() },
            refresh_interval: None,
            target: Default::default(),
            data: vec![DataItem {
                key: "SCORING_URI".into(),
                reference: "azureml://onlineEndpoints/scorer/scoringUri".into(),
                decode: Decode::None,
            }],
            data_from: vec![
                DataFrom {
                    reference: Some("azureml://onlineEndpoints/scorer".into()),
                    keys: Some(KeyMapping {
                        rewrite: vec![],
                        style: KeyStyle::UpperSnake,
                    }),
                    ..DataFrom::default()
                },
                DataFrom {
                    reference: Some("azureml://datastores/blobs".into()),
                    ..DataFrom::default()
                },
            ],
            allow_datastore_credentials: allow,
        }
    }

    fn scorer() -> ResourceRef {
        ResourceRef {
            kind: ResourceKind::OnlineEndpoint,
            name: "scorer".into(),
        }
    }

    #[test]
    fn datastores_need_the_opt_in() {
        let Err(e) = Compiled::new(&spec(false)) else {
            panic!("a datastore reference without the opt-in must be refused");
        };
        assert!(e.contains("allowDatastoreCredentials"), "{e}");
        let c = Compiled::new(&spec(true)).unwrap();
        assert!(reads_datastores(&c));
        let w = wanted(&c);
        assert_eq!(
            w.get(&scorer()),
            Some(&true),
            "a whole endpoint needs its secrets"
        );
    }

    #[test]
    fn whole_endpoints_expand_per_field_explicit_keys_win_and_gone_fields_are_reported() {
        let c = Compiled::new(&spec(true)).unwrap();
        let fields = BTreeMap::from([(scorer(), vec!["primaryKey".into(), "scoringUri".into()])]);
        let previous = vec![SyncedKey {
            key: "SECONDARY_KEY".into(),
            reference: "azureml://onlineEndpoints/scorer/keys/secondary".into(),
            ..SyncedKey::default()
        }];
        let mut plan = Plan {
            items: c.explicit.clone(),
            ..Plan::default()
        };
        expand_resources(&c, &fields, &previous, &mut plan);
        let keys: Vec<(&str, String)> = plan
            .items
            .iter()
            .map(|p| (p.key.as_str(), p.reference.to_string()))
            .collect();
        assert_eq!(
            keys,
            [
                (
                    "SCORING_URI",
                    "azureml://onlineEndpoints/scorer/scoringUri".to_string()
                ),
                (
                    "PRIMARY_KEY",
                    "azureml://onlineEndpoints/scorer/keys/primary".to_string()
                ),
            ]
        );
        assert_eq!(plan.vanished_resource_fields.len(), 1);
        let errors = item_errors(&c, &BTreeMap::new(), &plan, &previous);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].outcome.as_ref().unwrap_err().not_found);
    }

    #[test]
    fn a_field_mapping_to_a_taken_key_is_reported_under_its_own_name() {
        let mut spec = spec(true);
        spec.data.clear();
        spec.data_from[1].reference = Some("azureml://serverlessEndpoints/llm".into());
        spec.data_from[1].keys = spec.data_from[0].keys.clone();
        let c = Compiled::new(&spec).unwrap();
        let llm = ResourceRef {
            kind: ResourceKind::ServerlessEndpoint,
            name: "llm".into(),
        };
        let fields = BTreeMap::from([
            (scorer(), vec!["primaryKey".to_string()]),
            (llm, vec!["primaryKey".to_string(), "uri".to_string()]),
        ]);
        let mut plan = Plan::default();
        expand_resources(&c, &fields, &[], &mut plan);
        let keys: Vec<&str> = plan.items.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["PRIMARY_KEY", "URI"]);
        assert_eq!(plan.invalid.len(), 1);
        assert_eq!(plan.invalid[0].0, "dataFrom[1].primaryKey");
        assert!(
            plan.invalid[0].1.contains("PRIMARY_KEY"),
            "{:?}",
            plan.invalid
        );
    }

    #[test]
    fn token_references_are_recognised() {
        assert!(is_token("azureml://onlineEndpoints/scorer/token"));
        assert!(!is_token("azureml://onlineEndpoints/scorer/keys/primary"));
        assert_eq!(
            resource_of("${{azureml://onlineEndpoints/scorer}}"),
            Some(scorer())
        );
        assert_eq!(resource_of("keyvault:x"), None);
    }
}

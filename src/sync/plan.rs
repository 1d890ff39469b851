//! Plans a WorkspaceSecret: which Secret key comes from which reference, given the vault listing
//! and the credential fields of the connections it reads.

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;

use super::keys::{KeyError, Mapper};
use crate::api::workspace_secret::{Decode, SyncedKey, WorkspaceSecretSpec};
use crate::api::{ConnectionPart, Reference};
use crate::azure::{SecretListing, SecretProperties};

/// One key of the target Secret and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// The key in the target Secret.
    pub key: String,
    /// Where the value comes from.
    pub reference: Reference,
    /// How to decode it.
    pub decode: Decode,
}

/// A bulk item compiled for matching.
#[derive(Clone)]
pub struct CompiledFind {
    name: Option<Regex>,
    tags: std::collections::BTreeMap<String, String>,
    mapper: Mapper,
    decode: Decode,
}

/// The spec, checked and compiled: what admission could not judge is an `InvalidSpec` message.
pub struct Compiled {
    /// Explicit items.
    pub explicit: Vec<Planned>,
    /// Vault finds.
    pub finds: Vec<CompiledFind>,
    /// Whole-connection references.
    pub connections: Vec<CompiledConnection>,
    /// Whole endpoint and datastore references.
    pub resources: Vec<super::endpoints::CompiledResource>,
    /// Whether whole connections become one `.dockerconfigjson` key (target type
    /// `kubernetes.io/dockerconfigjson`).
    pub docker_config: bool,
}

/// The Secret type whose data is one `.dockerconfigjson` key.
pub const DOCKER_CONFIG_TYPE: &str = "kubernetes.io/dockerconfigjson";
/// The key of a `kubernetes.io/dockerconfigjson` Secret.
pub const DOCKER_CONFIG_KEY: &str = ".dockerconfigjson";

/// A whole-connection `dataFrom` item compiled for expansion.
#[derive(Debug)]
pub struct CompiledConnection {
    /// Its index in `dataFrom`.
    pub index: usize,
    /// The reference as written.
    pub reference: String,
    /// The connection's name.
    pub connection: String,
    mapper: Mapper,
    decode: Decode,
}

impl Compiled {
    /// Checks and compiles a spec.
    pub fn new(spec: &WorkspaceSecretSpec) -> Result<Self, String> {
        let explicit = spec
            .data
            .iter()
            .map(|d| {
                Reference::parse(&d.reference)
                    .map(|reference| Planned {
                        key: d.key.clone(),
                        reference,
                        decode: d.decode,
                    })
                    .map_err(|e| format!("data[{}]: {e}", d.key))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut finds = Vec::new();
        let mut connections = Vec::new();
        let mut resources = Vec::new();
        for (i, from) in spec.data_from.iter().enumerate() {
            let mapper =
                Mapper::new(from.keys.as_ref()).map_err(|e| format!("dataFrom[{i}].keys: {e}"))?;
            if let Some(find) = &from.find {
                let name = match &find.name_regex {
                    Some(r) => Some(
                        Regex::new(r).map_err(|e| format!("dataFrom[{i}].find.nameRegex: {e}"))?,
                    ),
                    None => None,
                };
                finds.push(CompiledFind {
                    name,
                    tags: find.tags.clone(),
                    mapper,
                    decode: from.decode,
                });
            } else if let Some(r) = &from.reference {
                let parsed =
                    Reference::parse_data_from(r).map_err(|e| format!("dataFrom[{i}].ref: {e}"))?;
                match parsed {
                    Reference::WholeConnection { connection } => {
                        connections.push(CompiledConnection {
                            index: i,
                            reference: r.clone(),
                            connection,
                            mapper,
                            decode: from.decode,
                        })
                    }
                    Reference::WholeResource { resource } => {
                        resources.push(super::endpoints::CompiledResource {
                            index: i,
                            reference: r.clone(),
                            resource,
                            mapper,
                            decode: from.decode,
                        })
                    }
                    _ => {}
                }
            }
        }
        let docker_config =
            spec.target.r#type.as_deref() == Some(DOCKER_CONFIG_TYPE) && !connections.is_empty();
        if docker_config && connections.len() > 1 {
            return Err(format!(
                "target.type {DOCKER_CONFIG_TYPE} takes one whole-connection dataFrom ref (the registry connection); found {}",
                connections.len()
            ));
        }
        let compiled = Compiled {
            explicit,
            finds,
            connections,
            resources,
            docker_config,
        };
        if super::endpoints::reads_datastores(&compiled) && !spec.allow_datastore_credentials {
            return Err("azureml://datastores/ references read account-wide storage credentials: set allowDatastoreCredentials: true to opt in".into());
        }
        Ok(compiled)
    }

    /// Returns the name of every connection the spec reads, by explicit items or whole.
    pub fn connection_names(&self) -> BTreeSet<String> {
        let explicit = self.explicit.iter().filter_map(|p| match &p.reference {
            Reference::Connection { connection, .. } => Some(connection.clone()),
            _ => None,
        });
        explicit
            .chain(self.connections.iter().map(|c| c.connection.clone()))
            .collect()
    }

    /// Tells whether the workspace vault's listing is needed.
    pub fn needs_workspace_listing(&self) -> bool {
        !self.finds.is_empty()
            || self
                .explicit
                .iter()
                .any(|p| matches!(p.reference, Reference::WorkspaceVault { version: None, .. }))
    }

    /// Tells whether any item reads the workspace vault.
    pub fn uses_workspace_vault(&self) -> bool {
        !self.finds.is_empty()
            || self
                .explicit
                .iter()
                .any(|p| matches!(p.reference, Reference::WorkspaceVault { .. }))
    }
}

impl CompiledFind {
    /// Tells whether a listed secret matches this find (disabled ones included).
    pub fn matches(&self, s: &SecretProperties) -> bool {
        self.name.as_ref().is_none_or(|re| re.is_match(&s.name))
            && self.tags.iter().all(|(k, v)| s.tags.get(k) == Some(v))
    }

    fn matches_name(&self, name: &str) -> bool {
        self.name.as_ref().is_some_and(|re| re.is_match(name))
    }
}

/// The result of planning: keys, and problems that concern single items.
#[derive(Debug, Default)]
pub struct Plan {
    /// Every key to fetch.
    pub items: Vec<Planned>,
    /// Keys that could not be planned, with why (a mapping collision or an invalid mapped key).
    pub invalid: Vec<(String, String)>,
    /// Names of matching secrets that are disabled and were never synced, skipped.
    pub disabled: Vec<String>,
    /// Keys synced before whose source has disappeared from the vault.
    pub vanished: Vec<Planned>,
    /// Keys synced before from a whole connection whose credential field is gone.
    pub vanished_fields: Vec<Planned>,
    /// Keys synced before from a whole endpoint or datastore whose value is gone.
    pub vanished_resource_fields: Vec<Planned>,
}

/// Expands whole-connection references over the credential field names of each connection read
/// (`fields`; a connection missing there failed and is reported by the caller). Explicit items
/// win, then earlier `dataFrom` items; with `docker_config` a connection becomes the one
/// `.dockerconfigjson` key.
pub fn expand_connections(
    compiled: &Compiled,
    fields: &BTreeMap<String, Vec<String>>,
    previous: &[SyncedKey],
    out: &mut Plan,
) {
    let taken = |items: &[Planned], key: &str| items.iter().any(|p| p.key == key);
    for c in &compiled.connections {
        let Some(names) = fields.get(&c.connection) else {
            continue;
        };
        if compiled.docker_config {
            if !taken(&out.items, DOCKER_CONFIG_KEY) {
                out.items.push(Planned {
                    key: DOCKER_CONFIG_KEY.into(),
                    reference: Reference::WholeConnection {
                        connection: c.connection.clone(),
                    },
                    decode: Decode::None,
                });
            }
            continue;
        }
        for field in names {
            match c.mapper.map(field) {
                Ok(key) if taken(&out.items, &key) => {
                    if !compiled.explicit.iter().any(|p| p.key == key) {
                        out.invalid.push((
                            key,
                            format!(
                                "credential {field} of connection {} maps to a key already taken",
                                c.connection
                            ),
                        ));
                    }
                }
                Ok(key) => out.items.push(Planned {
                    key,
                    reference: Reference::Connection {
                        connection: c.connection.clone(),
                        part: ConnectionPart::Credential(field.clone()),
                    },
                    decode: c.decode,
                }),
                Err(e) => out.invalid.push((field.clone(), e.to_string())),
            }
        }
        for prev in previous {
            let Ok(reference @ Reference::Connection { .. }) = Reference::parse(&prev.reference)
            else {
                continue;
            };
            let Reference::Connection {
                connection,
                part: ConnectionPart::Credential(field),
            } = &reference
            else {
                continue;
            };
            if *connection == c.connection
                && !names.contains(field)
                && !taken(&out.items, &prev.key)
                && !taken(&out.vanished_fields, &prev.key)
            {
                out.vanished_fields.push(Planned {
                    key: prev.key.clone(),
                    reference,
                    decode: Decode::None,
                });
            }
        }
    }
}

/// Expands the finds over the listing and merges them with the explicit items: explicit items
/// win over finds, and an earlier find wins over a later one.
pub fn plan(compiled: &Compiled, listing: Option<&SecretListing>, previous: &[SyncedKey]) -> Plan {
    let mut out = Plan {
        items: compiled.explicit.clone(),
        ..Plan::default()
    };
    let taken = |items: &[Planned], key: &str| items.iter().any(|p| p.key == key);
    if let Some(listing) = listing {
        for find in &compiled.finds {
            // A find by tags looks only at the secrets carrying its first tag.
            let candidates: Vec<&SecretProperties> = match find.tags.iter().next() {
                Some((k, v)) => listing.tagged(k, v).collect(),
                None => listing.iter().collect(),
            };
            for s in candidates.into_iter().filter(|s| find.matches(s)) {
                let mapped = find.mapper.map(&s.name);
                // A disabled secret never synced is skipped (and noted); one synced before keeps
                // its key, so the fetch reports it (SecretDisabled) and its last good value stays.
                let synced_before = mapped
                    .as_ref()
                    .is_ok_and(|key| previous.iter().any(|p| &p.key == key));
                if !s.enabled && !synced_before {
                    out.disabled.push(s.name.clone());
                    continue;
                }
                match mapped {
                    Ok(key) if taken(&out.items, &key) => {
                        if !compiled.explicit.iter().any(|p| p.key == key) {
                            out.invalid.push((
                                key,
                                format!("vault secret {} maps to a key already taken", s.name),
                            ));
                        }
                    }
                    Ok(key) => out.items.push(Planned {
                        key,
                        reference: Reference::WorkspaceVault {
                            name: s.name.clone(),
                            version: None,
                        },
                        decode: find.decode,
                    }),
                    Err(e @ KeyError::InvalidKey { .. }) | Err(e @ KeyError::BadRegex { .. }) => {
                        out.invalid.push((s.name.clone(), e.to_string()))
                    }
                }
            }
        }
        for prev in previous {
            if taken(&out.items, &prev.key) {
                continue;
            }
            let Ok(reference @ Reference::WorkspaceVault { .. }) =
                Reference::parse(&prev.reference)
            else {
                continue;
            };
            let Reference::WorkspaceVault { name, .. } = &reference else {
                continue;
            };
            let listed = listing.get(name).is_some();
            if !listed && compiled.finds.iter().any(|f| f.matches_name(name)) {
                out.vanished.push(Planned {
                    key: prev.key.clone(),
                    reference,
                    decode: Decode::None,
                });
            }
        }
    }
    out
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;

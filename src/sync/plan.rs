//! Plans a WorkspaceSecret: which Secret key comes from which reference, given the vault listing.

use regex::Regex;

use super::keys::{KeyError, Mapper};
use crate::api::Reference;
use crate::api::workspace_secret::{DataFrom, Decode, SyncedKey, WorkspaceSecretSpec};
use crate::azure::SecretProperties;

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
    /// Whole-connection references (served by the connections feature).
    pub connections: Vec<(String, DataFrom)>,
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
                Reference::parse_connection(r).map_err(|e| format!("dataFrom[{i}].ref: {e}"))?;
                connections.push((r.clone(), from.clone()));
            }
        }
        Ok(Compiled {
            explicit,
            finds,
            connections,
        })
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
    /// Names of matching secrets that are disabled, skipped.
    pub disabled: Vec<String>,
    /// Keys synced before whose source has disappeared from the vault.
    pub vanished: Vec<Planned>,
}

/// Expands the finds over the listing and merges them with the explicit items: explicit items
/// win over finds, and an earlier find wins over a later one.
pub fn plan(
    compiled: &Compiled,
    listing: Option<&[SecretProperties]>,
    previous: &[SyncedKey],
) -> Plan {
    let mut out = Plan {
        items: compiled.explicit.clone(),
        ..Plan::default()
    };
    let taken = |items: &[Planned], key: &str| items.iter().any(|p| p.key == key);
    if let Some(listing) = listing {
        for find in &compiled.finds {
            for s in listing.iter().filter(|s| find.matches(s)) {
                if !s.enabled {
                    out.disabled.push(s.name.clone());
                    continue;
                }
                match find.mapper.map(&s.name) {
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
            let listed = listing.iter().any(|s| s.name.eq_ignore_ascii_case(name));
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
mod tests {
    use super::*;
    use crate::api::workspace_secret::{DataItem, Find, KeyMapping, KeyStyle, WorkspaceRef};

    fn listed(name: &str, enabled: bool) -> SecretProperties {
        SecretProperties {
            name: name.into(),
            enabled,
            updated: Some(1),
            ..SecretProperties::default()
        }
    }

    fn spec() -> WorkspaceSecretSpec {
        WorkspaceSecretSpec {
            workspace_ref: WorkspaceRef { name: "ml".into() },
            refresh_interval: None,
            target: Default::default(),
            data: vec![DataItem {
                key: "DB_PASSWORD".into(),
                reference: "keyvault:pinned-pw".into(),
                decode: Decode::None,
            }],
            data_from: vec![DataFrom {
                find: Some(Find {
                    name_regex: Some("^app1-".into()),
                    tags: Default::default(),
                }),
                keys: Some(KeyMapping {
                    rewrite: vec![crate::api::workspace_secret::Rewrite {
                        regex: "^app1-".into(),
                        replace: "".into(),
                    }],
                    style: KeyStyle::UpperSnake,
                }),
                ..DataFrom::default()
            }],
        }
    }

    #[test]
    fn finds_expand_over_the_listing_and_explicit_items_win() {
        let c = Compiled::new(&spec()).unwrap();
        let listing = vec![
            listed("app1-db-password", true),
            listed("app1-api-key", true),
            listed("app1-old", false),
            listed("other", true),
        ];
        let p = plan(&c, Some(&listing), &[]);
        let keys: Vec<&str> = p.items.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["DB_PASSWORD", "API_KEY"]);
        assert_eq!(p.disabled, ["app1-old"]);
        assert!(p.invalid.is_empty());
    }

    #[test]
    fn a_synced_key_whose_secret_left_the_vault_is_reported_as_vanished() {
        let c = Compiled::new(&spec()).unwrap();
        let previous = vec![SyncedKey {
            key: "TOKEN".into(),
            reference: "keyvault:app1-token".into(),
            ..Default::default()
        }];
        let p = plan(&c, Some(&[listed("app1-api-key", true)]), &previous);
        assert_eq!(p.vanished.len(), 1);
        assert_eq!(p.vanished[0].key, "TOKEN");
    }

    #[test]
    fn invalid_regex_is_an_invalid_spec() {
        let mut s = spec();
        s.data_from[0].find.as_mut().unwrap().name_regex = Some("(".into());
        let err = Compiled::new(&s).err().unwrap();
        assert!(err.contains("dataFrom[0].find.nameRegex"), "{err}");
    }
}

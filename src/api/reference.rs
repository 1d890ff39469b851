//! The reference grammar of `data[].ref` and `dataFrom[].ref`, as Azure ML users write it for
//! online-endpoint secret injection: `keyvault:<name>[/<version>]`,
//! `keyvault:https://<vault>/secrets/<name>[/<version>]`,
//! `azureml://connections/<c>/credentials/<field>` (or `/metadata/<key>`, `/target`), the endpoint
//! and datastore forms of [`super::resource_ref`], and, in `dataFrom`, `azureml://connections/<c>`
//! or a whole endpoint or datastore. The `${{ … }}` wrapper is optional.
//!
//! The same grammar is written twice: as regular expressions for the CRD's CEL rules (so the API
//! server rejects bad references at admission) and as the parser the controller uses; a test keeps
//! them in agreement.

use std::fmt;

use super::resource_ref::{self, Parsed};
pub use super::resource_ref::{ResourceKind, ResourcePart, ResourceRef};

/// A Key Vault secret name: 1–127 of `0-9 a-z A-Z -`.
pub const KV_NAME: &str = "[0-9a-zA-Z-]{1,127}";
const KV_VERSION: &str = "[0-9a-fA-F]{32}";
const VAULT_HOST: &str = "[a-zA-Z0-9]([a-zA-Z0-9.-]{0,251}[a-zA-Z0-9])?([:][0-9]{1,5})?";
const CONNECTION: &str = "[a-zA-Z0-9_]([a-zA-Z0-9_.-]{0,254})";
const FIELD: &str = "[^/{}[:space:]]{1,253}";

fn wrapped(inner: &str) -> String {
    format!("^({inner}|[$][{{][{{][ ]*({inner})[ ]*[}}][}}])$")
}

/// The regular expression (RE2 and Rust `regex` compatible) a `data[].ref` must match.
pub fn data_ref_regex() -> String {
    let kv = format!(
        "keyvault:({KV_NAME}(/{KV_VERSION})?|https://{VAULT_HOST}/secrets/{KV_NAME}(/{KV_VERSION})?/?)"
    );
    let conn =
        format!("azureml://connections/{CONNECTION}/(credentials/{FIELD}|metadata/{FIELD}|target)");
    let resources = resource_ref::part_patterns();
    wrapped(&format!("{kv}|{conn}|{resources}"))
}

/// The regular expression a `dataFrom[].ref` (a whole connection) must match.
pub fn connection_ref_regex() -> String {
    wrapped(&format!("azureml://connections/{CONNECTION}"))
}

/// The regular expression a `dataFrom[].ref` must match: a whole connection, endpoint or datastore.
pub fn data_from_ref_regex() -> String {
    wrapped(&format!(
        "azureml://connections/{CONNECTION}|{}",
        resource_ref::whole_patterns()
    ))
}

/// Quotes a string as a CEL single-quoted literal.
pub(crate) fn cel_quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Which part of a workspace connection a reference reads.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConnectionPart {
    /// One field of `properties.credentials` (for CustomKeys: one of `credentials.keys`).
    Credential(String),
    /// One key of `properties.metadata`.
    Metadata(String),
    /// `properties.target`.
    Target,
}

/// A parsed reference to one workspace secret or connection value.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reference {
    /// A secret of the workspace's own Key Vault.
    WorkspaceVault {
        /// The secret's name.
        name: String,
        /// A pinned version; `None` follows the latest.
        version: Option<String>,
    },
    /// A secret of an explicitly named vault (`https://<vault>`, no trailing slash).
    Vault {
        /// The vault's base URI, e.g. `https://kv.vault.azure.net`.
        vault_uri: String,
        /// The secret's name.
        name: String,
        /// A pinned version; `None` follows the latest.
        version: Option<String>,
    },
    /// A value of a workspace connection, read through ARM `listsecrets`.
    Connection {
        /// The connection's name.
        connection: String,
        /// Which value.
        part: ConnectionPart,
    },
    /// Every credential of a connection (only in `dataFrom`).
    WholeConnection {
        /// The connection's name.
        connection: String,
    },
    /// A value of an online endpoint, serverless endpoint or datastore, read through ARM.
    Resource {
        /// The endpoint or datastore.
        resource: ResourceRef,
        /// Which value.
        part: ResourcePart,
    },
    /// Every value of an endpoint or datastore (only in `dataFrom`).
    WholeResource {
        /// The endpoint or datastore.
        resource: ResourceRef,
    },
}

/// Why a reference could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid reference {input:?}: {why}")]
pub struct ReferenceError {
    /// The reference as written.
    pub input: String,
    /// What is wrong with it.
    pub why: &'static str,
}

fn is_kv_name(s: &str) -> bool {
    (1..=127).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn is_kv_version(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_connection_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphanumeric() || b == b'_')
        && s.len() <= 255
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

fn is_field(s: &str) -> bool {
    (1..=253).contains(&s.chars().count())
        && !s
            .chars()
            .any(|c| c == '/' || c == '{' || c == '}' || c.is_whitespace())
}

fn is_vault_host(s: &str) -> bool {
    let (host, port) = match s.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && host.as_bytes()[0].is_ascii_alphanumeric()
        && host.as_bytes()[host.len() - 1].is_ascii_alphanumeric();
    let port_ok =
        port.is_none_or(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

/// Removes the optional `${{ … }}` wrapper.
fn unwrap(input: &str) -> &str {
    input
        .strip_prefix("${{")
        .and_then(|s| s.strip_suffix("}}"))
        .map(|s| s.trim_matches(' '))
        .unwrap_or(input)
}

fn split_name_version(rest: &str) -> Option<(String, Option<String>)> {
    let mut parts = rest.splitn(2, '/');
    let name = parts.next()?;
    let version = parts.next().filter(|v| !v.is_empty());
    if !is_kv_name(name) || version.is_some_and(|v| !is_kv_version(v)) {
        return None;
    }
    Some((name.to_string(), version.map(str::to_string)))
}

impl Reference {
    /// Parses a `data[].ref` value.
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        let err = |why| ReferenceError {
            input: input.to_string(),
            why,
        };
        let s = unwrap(input);
        if let Some(rest) = s.strip_prefix("keyvault:") {
            if let Some(url) = rest.strip_prefix("https://") {
                let (host, path) = url.split_once("/secrets/").ok_or_else(|| {
                    err("a vault URL must look like https://<vault>/secrets/<name>[/<version>]")
                })?;
                if !is_vault_host(host) {
                    return Err(err("the vault host is not a valid DNS name"));
                }
                let path = path.strip_suffix('/').unwrap_or(path);
                let (name, version) = split_name_version(path).ok_or_else(|| {
                    err("a secret name is 1-127 of 0-9 a-z A-Z -, and a version is 32 hex digits")
                })?;
                return Ok(Reference::Vault {
                    vault_uri: format!("https://{host}"),
                    name,
                    version,
                });
            }
            let (name, version) = split_name_version(rest).ok_or_else(|| {
                err("a secret name is 1-127 of 0-9 a-z A-Z -, and a version is 32 hex digits")
            })?;
            return Ok(Reference::WorkspaceVault { name, version });
        }
        if let Some(rest) = s.strip_prefix("azureml://") {
            match resource_ref::parse(rest) {
                Parsed::Part(resource, part) => return Ok(Reference::Resource { resource, part }),
                Parsed::Whole(_) => {
                    return Err(err(
                        "a whole endpoint or datastore belongs in dataFrom[].ref; data[].ref names one value (e.g. /keys/primary)",
                    ));
                }
                Parsed::Bad(why) => return Err(err(why)),
                Parsed::NotResource => {}
            }
        }
        if let Some(rest) = s.strip_prefix("azureml://connections/") {
            let (connection, tail) = rest.split_once('/').ok_or_else(|| {
                err("a connection reference needs /credentials/<field>, /metadata/<key> or /target")
            })?;
            if !is_connection_name(connection) {
                return Err(err("the connection name is not valid"));
            }
            let part = match tail.split_once('/') {
                None if tail == "target" => ConnectionPart::Target,
                Some(("credentials", f)) if is_field(f) => {
                    ConnectionPart::Credential(f.to_string())
                }
                Some(("metadata", f)) if is_field(f) => ConnectionPart::Metadata(f.to_string()),
                _ => {
                    return Err(err(
                        "a connection reference needs /credentials/<field>, /metadata/<key> or /target",
                    ));
                }
            };
            return Ok(Reference::Connection {
                connection: connection.to_string(),
                part,
            });
        }
        Err(err(
            "a reference starts with keyvault:, azureml://connections/, azureml://onlineEndpoints/, azureml://serverlessEndpoints/ or azureml://datastores/",
        ))
    }

    /// Parses a `dataFrom[].ref` value: a whole connection, endpoint or datastore.
    pub fn parse_data_from(input: &str) -> Result<Self, ReferenceError> {
        let bad = |why| ReferenceError {
            input: input.to_string(),
            why,
        };
        match unwrap(input)
            .strip_prefix("azureml://")
            .map(resource_ref::parse)
        {
            Some(Parsed::Whole(resource)) => Ok(Reference::WholeResource { resource }),
            Some(Parsed::Bad(why)) => Err(bad(why)),
            Some(Parsed::Part(..)) => Err(bad(
                "dataFrom[].ref names a whole endpoint or datastore: azureml://onlineEndpoints/<name>, azureml://serverlessEndpoints/<name> or azureml://datastores/<name>",
            )),
            _ => Self::parse_connection(input),
        }
    }

    /// Returns the endpoint or datastore this reference reads, if it reads one.
    pub fn resource(&self) -> Option<&ResourceRef> {
        match self {
            Reference::Resource { resource, .. } | Reference::WholeResource { resource } => {
                Some(resource)
            }
            _ => None,
        }
    }

    /// Parses a `dataFrom[].ref` value: a whole connection.
    pub fn parse_connection(input: &str) -> Result<Self, ReferenceError> {
        let s = unwrap(input);
        match s.strip_prefix("azureml://connections/") {
            Some(c) if is_connection_name(c) => Ok(Reference::WholeConnection {
                connection: c.to_string(),
            }),
            _ => Err(ReferenceError {
                input: input.to_string(),
                why: "dataFrom[].ref names a whole connection: azureml://connections/<name>",
            }),
        }
    }

    /// Tells whether this reference is served by a Key Vault (rather than ARM connections).
    pub fn is_vault(&self) -> bool {
        matches!(
            self,
            Reference::WorkspaceVault { .. } | Reference::Vault { .. }
        )
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = |v: &Option<String>| v.as_ref().map(|v| format!("/{v}")).unwrap_or_default();
        match self {
            Reference::WorkspaceVault { name, version } => {
                write!(f, "keyvault:{name}{}", v(version))
            }
            Reference::Vault {
                vault_uri,
                name,
                version,
            } => {
                write!(f, "keyvault:{vault_uri}/secrets/{name}{}", v(version))
            }
            Reference::Connection { connection, part } => {
                write!(f, "azureml://connections/{connection}/")?;
                match part {
                    ConnectionPart::Credential(k) => write!(f, "credentials/{k}"),
                    ConnectionPart::Metadata(k) => write!(f, "metadata/{k}"),
                    ConnectionPart::Target => write!(f, "target"),
                }
            }
            Reference::WholeConnection { connection } => {
                write!(f, "azureml://connections/{connection}")
            }
            Reference::Resource { resource, part } => {
                f.write_str(&resource_ref::display(resource, part))
            }
            Reference::WholeResource { resource } => write!(f, "{resource}"),
        }
    }
}

#[cfg(test)]
#[path = "reference_tests.rs"]
mod tests;

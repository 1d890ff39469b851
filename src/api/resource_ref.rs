//! References to other Azure ML workspace resources that hold secrets, read through ARM:
//! `azureml://onlineEndpoints/<name>/keys/primary|secondary`, `…/token`, `…/scoringUri`;
//! `azureml://serverlessEndpoints/<name>/keys/primary|secondary`, `…/uri`;
//! `azureml://datastores/<name>/credentials/<field>`; and, in `dataFrom`, the whole resource
//! (`azureml://onlineEndpoints/<name>` …). Each value has a field name (`primaryKey`, `token`,
//! `scoringUri`, a datastore credential's own name) that a whole-resource `dataFrom` expands to.

use std::fmt;

/// An online or serverless endpoint name as ARM accepts it.
const ENDPOINT_NAME: &str = "[a-zA-Z][a-zA-Z0-9-]{0,254}";
/// A datastore name as ARM accepts it.
const DATASTORE_NAME: &str = "[a-zA-Z0-9][a-zA-Z0-9_-]{0,254}";
/// A credential field name.
const FIELD: &str = "[^/{}[:space:]]{1,253}";

/// Which kind of workspace resource a reference reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceKind {
    /// A managed online endpoint (`…/onlineEndpoints/<name>`).
    OnlineEndpoint,
    /// A serverless (model-as-a-service) endpoint (`…/serverlessEndpoints/<name>`).
    ServerlessEndpoint,
    /// A datastore (`…/datastores/<name>`): its storage credentials, account-wide.
    Datastore,
}

impl ResourceKind {
    /// Every kind.
    pub const ALL: [ResourceKind; 3] = [
        ResourceKind::OnlineEndpoint,
        ResourceKind::ServerlessEndpoint,
        ResourceKind::Datastore,
    ];

    /// Returns the path segment, as in ARM ids and references (`onlineEndpoints`).
    pub fn segment(self) -> &'static str {
        match self {
            ResourceKind::OnlineEndpoint => "onlineEndpoints",
            ResourceKind::ServerlessEndpoint => "serverlessEndpoints",
            ResourceKind::Datastore => "datastores",
        }
    }

    /// Returns the kind in words, for messages (`online endpoint`).
    pub fn noun(self) -> &'static str {
        match self {
            ResourceKind::OnlineEndpoint => "online endpoint",
            ResourceKind::ServerlessEndpoint => "serverless endpoint",
            ResourceKind::Datastore => "datastore",
        }
    }

    fn from_segment(s: &str) -> Option<Self> {
        ResourceKind::ALL.into_iter().find(|k| k.segment() == s)
    }

    fn name_pattern(self) -> &'static str {
        match self {
            ResourceKind::Datastore => DATASTORE_NAME,
            _ => ENDPOINT_NAME,
        }
    }

    fn is_name(self, s: &str) -> bool {
        let mut bytes = s.bytes();
        let first_ok = match (self, bytes.next()) {
            (ResourceKind::Datastore, Some(b)) => b.is_ascii_alphanumeric(),
            (_, Some(b)) => b.is_ascii_alphabetic(),
            (_, None) => false,
        };
        let rest_ok = match self {
            ResourceKind::Datastore => {
                bytes.all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b))
            }
            _ => bytes.all(|b| b.is_ascii_alphanumeric() || b == b'-'),
        };
        first_ok && rest_ok && s.len() <= 255
    }

    /// Returns the regular expression of this kind's single-value references (after `azureml://`).
    fn part_pattern(self) -> String {
        let name = self.name_pattern();
        let seg = self.segment();
        match self {
            ResourceKind::OnlineEndpoint => {
                format!("{seg}/{name}/(keys/(primary|secondary)|token|scoringUri)")
            }
            ResourceKind::ServerlessEndpoint => {
                format!("{seg}/{name}/(keys/(primary|secondary)|uri)")
            }
            ResourceKind::Datastore => format!("{seg}/{name}/credentials/{FIELD}"),
        }
    }
}

/// One workspace resource: its kind and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceRef {
    /// The kind.
    pub kind: ResourceKind,
    /// The resource's name.
    pub name: String,
}

impl fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "azureml://{}/{}", self.kind.segment(), self.name)
    }
}

impl ResourceRef {
    /// Describes the resource for messages: `online endpoint scorer`.
    pub fn describe(&self) -> String {
        format!("{} {}", self.kind.noun(), self.name)
    }
}

/// Which value of a workspace resource a reference reads.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourcePart {
    /// An endpoint's primary key (`keys/primary`, field `primaryKey`).
    PrimaryKey,
    /// An endpoint's secondary key (`keys/secondary`, field `secondaryKey`).
    SecondaryKey,
    /// An `AMLToken` online endpoint's short-lived token (`token`).
    Token,
    /// An online endpoint's scoring URI (`scoringUri`).
    ScoringUri,
    /// A serverless endpoint's inference URI (`uri`).
    Uri,
    /// One credential of a datastore (`credentials/<field>`, e.g. `key`, `sasToken`).
    Credential(String),
}

impl ResourcePart {
    /// Returns the field name: the key a whole-resource `dataFrom` expands this value to.
    pub fn field(&self) -> &str {
        match self {
            ResourcePart::PrimaryKey => "primaryKey",
            ResourcePart::SecondaryKey => "secondaryKey",
            ResourcePart::Token => "token",
            ResourcePart::ScoringUri => "scoringUri",
            ResourcePart::Uri => "uri",
            ResourcePart::Credential(f) => f,
        }
    }

    /// Returns the part a field name stands for, in a resource of `kind`.
    pub fn from_field(kind: ResourceKind, field: &str) -> Self {
        match (kind, field) {
            (ResourceKind::Datastore, f) => ResourcePart::Credential(f.to_string()),
            (_, "primaryKey") => ResourcePart::PrimaryKey,
            (_, "secondaryKey") => ResourcePart::SecondaryKey,
            (ResourceKind::OnlineEndpoint, "token") => ResourcePart::Token,
            (ResourceKind::OnlineEndpoint, "scoringUri") => ResourcePart::ScoringUri,
            (ResourceKind::ServerlessEndpoint, "uri") => ResourcePart::Uri,
            (_, f) => ResourcePart::Credential(f.to_string()),
        }
    }

    /// Tells whether the value is a secret (a key, token or credential) rather than a URI.
    pub fn is_secret(&self) -> bool {
        !matches!(self, ResourcePart::ScoringUri | ResourcePart::Uri)
    }

    fn path(&self) -> String {
        match self {
            ResourcePart::PrimaryKey => "keys/primary".into(),
            ResourcePart::SecondaryKey => "keys/secondary".into(),
            ResourcePart::Token => "token".into(),
            ResourcePart::ScoringUri => "scoringUri".into(),
            ResourcePart::Uri => "uri".into(),
            ResourcePart::Credential(f) => format!("credentials/{f}"),
        }
    }

    fn parse(kind: ResourceKind, tail: &str) -> Option<Self> {
        let part = match (kind, tail) {
            (ResourceKind::Datastore, t) => {
                let f = t.strip_prefix("credentials/")?;
                let ok = (1..=253).contains(&f.chars().count())
                    && !f
                        .chars()
                        .any(|c| c == '/' || c == '{' || c == '}' || c.is_whitespace());
                return ok.then(|| ResourcePart::Credential(f.to_string()));
            }
            (_, "keys/primary") => ResourcePart::PrimaryKey,
            (_, "keys/secondary") => ResourcePart::SecondaryKey,
            (ResourceKind::OnlineEndpoint, "token") => ResourcePart::Token,
            (ResourceKind::OnlineEndpoint, "scoringUri") => ResourcePart::ScoringUri,
            (ResourceKind::ServerlessEndpoint, "uri") => ResourcePart::Uri,
            _ => return None,
        };
        Some(part)
    }
}

/// Formats a single-value reference: `azureml://onlineEndpoints/e/keys/primary`.
pub(crate) fn display(resource: &ResourceRef, part: &ResourcePart) -> String {
    format!("{resource}/{}", part.path())
}

/// The regular expression alternatives of single-value resource references (no anchors).
pub(crate) fn part_patterns() -> String {
    ResourceKind::ALL
        .iter()
        .map(|k| format!("azureml://{}", k.part_pattern()))
        .collect::<Vec<_>>()
        .join("|")
}

/// The regular expression alternatives of whole-resource references (no anchors).
pub(crate) fn whole_patterns() -> String {
    ResourceKind::ALL
        .iter()
        .map(|k| format!("azureml://{}/{}", k.segment(), k.name_pattern()))
        .collect::<Vec<_>>()
        .join("|")
}

/// What parsing a resource reference (without `azureml://`) found.
pub(crate) enum Parsed {
    /// Not a resource reference at all.
    NotResource,
    /// One value.
    Part(ResourceRef, ResourcePart),
    /// The whole resource.
    Whole(ResourceRef),
    /// A resource reference that is malformed, and why.
    Bad(&'static str),
}

/// Parses what follows `azureml://` as a resource reference.
pub(crate) fn parse(rest: &str) -> Parsed {
    let Some((segment, tail)) = rest.split_once('/') else {
        return Parsed::NotResource;
    };
    let Some(kind) = ResourceKind::from_segment(segment) else {
        return Parsed::NotResource;
    };
    let (name, part) = match tail.split_once('/') {
        Some((n, p)) => (n, Some(p)),
        None => (tail, None),
    };
    if !kind.is_name(name) {
        return Parsed::Bad(match kind {
            ResourceKind::Datastore => {
                "a datastore name is 1-255 of letters, digits, '_' and '-', starting with a letter or digit"
            }
            _ => "an endpoint name is 1-255 of letters, digits and '-', starting with a letter",
        });
    }
    let resource = ResourceRef {
        kind,
        name: name.to_string(),
    };
    match part {
        None => Parsed::Whole(resource),
        Some(p) => match ResourcePart::parse(kind, p) {
            Some(part) => Parsed::Part(resource, part),
            None => Parsed::Bad(match kind {
                ResourceKind::OnlineEndpoint => {
                    "an online endpoint reference needs /keys/primary, /keys/secondary, /token or /scoringUri"
                }
                ResourceKind::ServerlessEndpoint => {
                    "a serverless endpoint reference needs /keys/primary, /keys/secondary or /uri"
                }
                ResourceKind::Datastore => "a datastore reference needs /credentials/<field>",
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_parts_round_trip_for_every_kind() {
        let cases = [
            (ResourceKind::OnlineEndpoint, ResourcePart::PrimaryKey),
            (ResourceKind::OnlineEndpoint, ResourcePart::SecondaryKey),
            (ResourceKind::OnlineEndpoint, ResourcePart::Token),
            (ResourceKind::OnlineEndpoint, ResourcePart::ScoringUri),
            (ResourceKind::ServerlessEndpoint, ResourcePart::PrimaryKey),
            (ResourceKind::ServerlessEndpoint, ResourcePart::Uri),
            (
                ResourceKind::Datastore,
                ResourcePart::Credential("sasToken".into()),
            ),
            (
                ResourceKind::Datastore,
                ResourcePart::Credential("primaryKey".into()),
            ),
        ];
        for (kind, part) in cases {
            assert_eq!(
                ResourcePart::from_field(kind, part.field()),
                part,
                "{kind:?}"
            );
            assert_eq!(ResourcePart::parse(kind, &part.path()), Some(part.clone()));
        }
    }

    #[test]
    fn names_follow_arm_rules() {
        assert!(ResourceKind::OnlineEndpoint.is_name("my-endpoint-1"));
        assert!(!ResourceKind::OnlineEndpoint.is_name("1endpoint"));
        assert!(!ResourceKind::OnlineEndpoint.is_name("my_endpoint"));
        assert!(ResourceKind::Datastore.is_name("workspaceblobstore"));
        assert!(ResourceKind::Datastore.is_name("1_data-store"));
        assert!(!ResourceKind::Datastore.is_name("data.store"));
        assert!(!ResourceKind::Datastore.is_name(""));
    }
}

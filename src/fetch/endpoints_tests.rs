//! Unit tests of the endpoint side of fetching: a reference's value with provenance, or an error
//! that says what to use instead.
use super::*;
use crate::azure::SecretString;

fn online(auth: &str, fields: &[(&str, &str)]) -> Read {
    let resource = ResourceRef {
        kind: ResourceKind::OnlineEndpoint,
        name: "scorer".into(),
    };
    let fields = fields
        .iter()
        .map(|(k, v)| {
            let field = Field {
                value: SecretString::new(*v),
                seen_since: "2025-01-01T00:00:00Z".into(),
                expires: (*k == "token").then(|| "2030-01-01T00:00:00Z".to_string()),
            };
            (k.to_string(), field)
        })
        .collect();
    let current = Current {
        resource: resource.clone(),
        auth: auth.into(),
        fields,
        refresh_in: None,
    };
    BTreeMap::from([(resource, Ok(Arc::new(current)))])
}

fn part(p: ResourcePart) -> Reference {
    Reference::Resource {
        resource: ResourceRef {
            kind: ResourceKind::OnlineEndpoint,
            name: "scorer".into(),
        },
        part: p,
    }
}

#[test]
fn keys_token_and_uri_resolve_with_provenance() {
    let read = online(
        "Key",
        &[
            ("primaryKey", "p1"),
            ("secondaryKey", "s1"),
            ("scoringUri", "https://s"),
        ],
    );
    let f = fetch(&read, &part(ResourcePart::SecondaryKey), Decode::None).unwrap();
    assert_eq!(f.bytes, b"s1");
    assert_eq!(f.updated.as_deref(), Some("2025-01-01T00:00:00Z"));
    let read = online("AMLToken", &[("token", "tok"), ("scoringUri", "https://s")]);
    let f = fetch(&read, &part(ResourcePart::Token), Decode::None).unwrap();
    assert_eq!(f.bytes, b"tok");
    assert_eq!(f.expires.as_deref(), Some("2030-01-01T00:00:00Z"));
}

#[test]
fn the_wrong_auth_mode_is_invalid_spec_naming_the_mode_and_what_to_use() {
    let key = online(
        "Key",
        &[("primaryKey", "planted-p"), ("scoringUri", "https://s")],
    );
    let e = fetch(&key, &part(ResourcePart::Token), Decode::None).unwrap_err();
    assert_eq!(e.reason, reasons::INVALID_SPEC);
    assert!(
        e.message.contains("authMode Key") && e.message.contains("/keys/primary"),
        "{}",
        e.message
    );
    let aml = online("AMLToken", &[("token", "planted-t")]);
    let e = fetch(&aml, &part(ResourcePart::PrimaryKey), Decode::None).unwrap_err();
    assert!(
        e.message.contains("AMLToken") && e.message.contains("/token"),
        "{}",
        e.message
    );
    let aad = online("AADToken", &[("scoringUri", "https://s")]);
    let e = fetch(&aad, &part(ResourcePart::PrimaryKey), Decode::None).unwrap_err();
    assert_eq!(e.reason, reasons::INVALID_SPEC);
    assert!(
        e.message.contains("AADToken") && e.message.contains("workload identity"),
        "{}",
        e.message
    );
    assert!(fetch(&aad, &part(ResourcePart::ScoringUri), Decode::None).is_ok());
    for e in [&key, &aml] {
        assert!(
            !format!("{e:?}").contains("planted"),
            "Debug redacts values"
        );
    }
    assert!(
        fields(&aad).is_empty(),
        "an Entra-only endpoint expands to nothing"
    );
}

#[test]
fn a_missing_value_names_what_there_is_but_no_value() {
    let read = online("Key", &[("primaryKey", "planted-p")]);
    let e = fetch(&read, &part(ResourcePart::ScoringUri), Decode::None).unwrap_err();
    assert_eq!(e.reason, reasons::SECRET_NOT_FOUND);
    assert!(
        e.message.contains("primaryKey") && !e.message.contains("planted-p"),
        "{}",
        e.message
    );
}

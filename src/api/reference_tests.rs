//! Unit tests of the reference grammar: every form parses, malformed references are rejected,
//! the admission regular expressions agree with the parser, and `Display` round-trips.

use super::*;

const V: &str = "4387e9f3d6e14c459867679a90fd0f79";

fn good() -> Vec<(String, Reference)> {
    vec![
        (
            "keyvault:db-password".into(),
            Reference::WorkspaceVault {
                name: "db-password".into(),
                version: None,
            },
        ),
        (
            format!("keyvault:db-password/{V}"),
            Reference::WorkspaceVault {
                name: "db-password".into(),
                version: Some(V.into()),
            },
        ),
        (
            "${{keyvault:db-password}}".into(),
            Reference::WorkspaceVault {
                name: "db-password".into(),
                version: None,
            },
        ),
        (
            format!("${{{{ keyvault:https://kv1.vault.azure.net/secrets/api-key/{V} }}}}"),
            Reference::Vault {
                vault_uri: "https://kv1.vault.azure.net".into(),
                name: "api-key".into(),
                version: Some(V.into()),
            },
        ),
        (
            "keyvault:https://127.0.0.1:8443/secrets/x".into(),
            Reference::Vault {
                vault_uri: "https://127.0.0.1:8443".into(),
                name: "x".into(),
                version: None,
            },
        ),
        (
            "azureml://connections/my-aoai/credentials/key".into(),
            Reference::Connection {
                connection: "my-aoai".into(),
                part: ConnectionPart::Credential("key".into()),
            },
        ),
        (
            "azureml://connections/s3/metadata/region".into(),
            Reference::Connection {
                connection: "s3".into(),
                part: ConnectionPart::Metadata("region".into()),
            },
        ),
        (
            "${{azureml://connections/search/target}}".into(),
            Reference::Connection {
                connection: "search".into(),
                part: ConnectionPart::Target,
            },
        ),
        (
            "azureml://onlineEndpoints/scorer/keys/primary".into(),
            resource(
                ResourceKind::OnlineEndpoint,
                "scorer",
                ResourcePart::PrimaryKey,
            ),
        ),
        (
            "${{ azureml://onlineEndpoints/scorer/keys/secondary }}".into(),
            resource(
                ResourceKind::OnlineEndpoint,
                "scorer",
                ResourcePart::SecondaryKey,
            ),
        ),
        (
            "azureml://onlineEndpoints/scorer/token".into(),
            resource(ResourceKind::OnlineEndpoint, "scorer", ResourcePart::Token),
        ),
        (
            "azureml://onlineEndpoints/scorer/scoringUri".into(),
            resource(
                ResourceKind::OnlineEndpoint,
                "scorer",
                ResourcePart::ScoringUri,
            ),
        ),
        (
            "azureml://serverlessEndpoints/llama-3/keys/primary".into(),
            resource(
                ResourceKind::ServerlessEndpoint,
                "llama-3",
                ResourcePart::PrimaryKey,
            ),
        ),
        (
            "azureml://serverlessEndpoints/llama-3/uri".into(),
            resource(
                ResourceKind::ServerlessEndpoint,
                "llama-3",
                ResourcePart::Uri,
            ),
        ),
        (
            "azureml://datastores/workspaceblobstore/credentials/key".into(),
            resource(
                ResourceKind::Datastore,
                "workspaceblobstore",
                ResourcePart::Credential("key".into()),
            ),
        ),
    ]
}

fn resource(kind: ResourceKind, name: &str, part: ResourcePart) -> Reference {
    Reference::Resource {
        resource: ResourceRef {
            kind,
            name: name.into(),
        },
        part,
    }
}

const BAD: &[&str] = &[
    "",
    "db-password",
    "keyvault:",
    "keyvault:db_password",
    "keyvault:db-password/123",
    "keyvault:http://kv.vault.azure.net/secrets/x",
    "keyvault:https://kv.vault.azure.net/keys/x",
    "azureml://connections/c",
    "azureml://connections/c/credentials/",
    "azureml://connections/c/secrets/key",
    "azureml://connections/c/target/x",
    "${{keyvault:x",
    "keyvault:x}}",
    "azureml://onlineEndpoints/scorer",
    "azureml://onlineEndpoints/scorer/keys",
    "azureml://onlineEndpoints/scorer/uri",
    "azureml://onlineEndpoints/1scorer/token",
    "azureml://serverlessEndpoints/llm/token",
    "azureml://serverlessEndpoints/llm/scoringUri",
    "azureml://datastores/ds/key",
    "azureml://datastores/ds/credentials/",
    "azureml://datastores/d.s/credentials/key",
    "azureml://OnlineEndpoints/scorer/token",
];

#[test]
fn parses_every_form() {
    for (input, expected) in good() {
        assert_eq!(Reference::parse(&input).unwrap(), expected, "{input}");
    }
}

#[test]
fn rejects_malformed_references() {
    for bad in BAD {
        assert!(Reference::parse(bad).is_err(), "{bad} should be rejected");
    }
    let long = format!("keyvault:{}", "a".repeat(128));
    assert!(Reference::parse(&long).is_err());
}

#[test]
fn admission_regex_agrees_with_parser() {
    let re = regex::Regex::new(&data_ref_regex()).unwrap();
    for (input, _) in good() {
        assert!(re.is_match(&input), "regex rejects good {input}");
    }
    for bad in BAD {
        assert!(!re.is_match(bad), "regex accepts bad {bad}");
    }
    let conn = regex::Regex::new(&connection_ref_regex()).unwrap();
    for ok in [
        "azureml://connections/my-aoai",
        "${{azureml://connections/x}}",
    ] {
        assert!(conn.is_match(ok));
        assert!(Reference::parse_connection(ok).is_ok());
    }
    for bad in [
        "azureml://connections/x/target",
        "keyvault:x",
        "azureml://connections/",
    ] {
        assert!(!conn.is_match(bad), "{bad}");
        assert!(Reference::parse_connection(bad).is_err(), "{bad}");
    }
}

#[test]
fn data_from_takes_whole_connections_endpoints_and_datastores_only() {
    let re = regex::Regex::new(&data_from_ref_regex()).unwrap();
    for ok in [
        "azureml://connections/my-aoai",
        "azureml://onlineEndpoints/scorer",
        "${{azureml://serverlessEndpoints/llama-3}}",
        "azureml://datastores/workspaceblobstore",
    ] {
        assert!(re.is_match(ok), "{ok}");
        let parsed = Reference::parse_data_from(ok).unwrap();
        assert_eq!(
            Reference::parse_data_from(&parsed.to_string()).unwrap(),
            parsed
        );
    }
    for bad in [
        "azureml://onlineEndpoints/scorer/token",
        "azureml://datastores/d.s",
        "azureml://onlineEndpoints/",
        "azureml://batchEndpoints/x",
        "keyvault:x",
    ] {
        assert!(!re.is_match(bad), "{bad}");
        assert!(Reference::parse_data_from(bad).is_err(), "{bad}");
    }
}

#[test]
fn display_round_trips() {
    for (input, r) in good() {
        assert_eq!(Reference::parse(&r.to_string()).unwrap(), r, "{input}");
    }
}

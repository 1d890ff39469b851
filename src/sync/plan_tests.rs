//! Unit tests of planning: finds over the listing, whole connections, vanished keys.
use super::*;
use crate::api::workspace_secret::{DataFrom, DataItem, Find, KeyMapping, KeyStyle, WorkspaceRef};

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
        allow_datastore_credentials: false,
    }
}

#[test]
fn finds_expand_over_the_listing_and_explicit_items_win() {
    let c = Compiled::new(&spec()).unwrap();
    let listing = SecretListing::new(vec![
        listed("app1-db-password", true),
        listed("app1-api-key", true),
        listed("app1-old", false),
        listed("other", true),
    ]);
    let p = plan(&c, Some(&listing), &[]);
    let keys: Vec<&str> = p.items.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["DB_PASSWORD", "API_KEY"]);
    assert_eq!(p.disabled, ["app1-old"]);
    assert!(p.invalid.is_empty());
}

#[test]
fn a_disabled_secret_synced_before_keeps_its_key_so_it_is_reported_not_dropped() {
    let c = Compiled::new(&spec()).unwrap();
    let previous = vec![SyncedKey {
        key: "OLD".into(),
        reference: "keyvault:app1-old".into(),
        ..Default::default()
    }];
    let listing = SecretListing::new(vec![
        listed("app1-api-key", true),
        listed("app1-old", false),
    ]);
    let p = plan(&c, Some(&listing), &previous);
    let keys: Vec<&str> = p.items.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["DB_PASSWORD", "API_KEY", "OLD"]);
    assert!(p.disabled.is_empty(), "{:?}", p.disabled);
    assert!(p.vanished.is_empty());
}

#[test]
fn a_synced_key_whose_secret_left_the_vault_is_reported_as_vanished() {
    let c = Compiled::new(&spec()).unwrap();
    let previous = vec![SyncedKey {
        key: "TOKEN".into(),
        reference: "keyvault:app1-token".into(),
        ..Default::default()
    }];
    let p = plan(
        &c,
        Some(&SecretListing::new(vec![listed("app1-api-key", true)])),
        &previous,
    );
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

fn whole(connection: &str, style: KeyStyle) -> DataFrom {
    DataFrom {
        reference: Some(format!("azureml://connections/{connection}")),
        keys: Some(KeyMapping {
            rewrite: vec![],
            style,
        }),
        ..DataFrom::default()
    }
}

fn connection_spec() -> WorkspaceSecretSpec {
    let mut s = spec();
    s.data = vec![DataItem {
        key: "API_KEY".into(),
        reference: "azureml://connections/other/credentials/key".into(),
        decode: Decode::None,
    }];
    s.data_from = vec![
        whole("keys", KeyStyle::UpperSnake),
        whole("s3", KeyStyle::UpperSnake),
    ];
    s
}

#[test]
fn whole_connections_expand_per_field_with_the_key_mapping() {
    let c = Compiled::new(&connection_spec()).unwrap();
    assert_eq!(
        c.connection_names().into_iter().collect::<Vec<_>>(),
        ["keys", "other", "s3"]
    );
    let fields = BTreeMap::from([
        (
            "keys".to_string(),
            vec!["apiKey".into(), "endpoint-key".into()],
        ),
        (
            "s3".to_string(),
            vec!["accessKeyId".into(), "secretAccessKey".into()],
        ),
    ]);
    let mut p = plan(&c, None, &[]);
    expand_connections(&c, &fields, &[], &mut p);
    let keys: Vec<(&str, String)> = p
        .items
        .iter()
        .map(|i| (i.key.as_str(), i.reference.to_string()))
        .collect();
    assert_eq!(
        keys,
        [
            (
                "API_KEY",
                "azureml://connections/other/credentials/key".to_string()
            ),
            (
                "ENDPOINT_KEY",
                "azureml://connections/keys/credentials/endpoint-key".into()
            ),
            (
                "ACCESS_KEY_ID",
                "azureml://connections/s3/credentials/accessKeyId".into()
            ),
            (
                "SECRET_ACCESS_KEY",
                "azureml://connections/s3/credentials/secretAccessKey".into()
            ),
        ]
    );
    assert!(
        p.invalid.is_empty(),
        "explicit items win silently: {:?}",
        p.invalid
    );
}

#[test]
fn a_field_gone_from_a_connection_is_reported_as_vanished() {
    let c = Compiled::new(&connection_spec()).unwrap();
    let previous = vec![SyncedKey {
        key: "OLD_KEY".into(),
        reference: "azureml://connections/keys/credentials/old-key".into(),
        ..Default::default()
    }];
    let fields = BTreeMap::from([("keys".to_string(), vec!["new-key".to_string()])]);
    let mut p = plan(&c, None, &previous);
    expand_connections(&c, &fields, &previous, &mut p);
    assert_eq!(p.vanished_fields.len(), 1);
    assert_eq!(p.vanished_fields[0].key, "OLD_KEY");
}

#[test]
fn docker_config_target_turns_the_registry_connection_into_one_key() {
    let mut s = spec();
    s.data.clear();
    s.target.r#type = Some(DOCKER_CONFIG_TYPE.into());
    s.data_from = vec![whole("acr", KeyStyle::Preserve)];
    let c = Compiled::new(&s).unwrap();
    assert!(c.docker_config);
    let fields = BTreeMap::from([(
        "acr".to_string(),
        vec!["password".to_string(), "username".to_string()],
    )]);
    let mut p = plan(&c, None, &[]);
    expand_connections(&c, &fields, &[], &mut p);
    assert_eq!(p.items.len(), 1);
    assert_eq!(p.items[0].key, DOCKER_CONFIG_KEY);
    s.data_from.push(whole("acr2", KeyStyle::Preserve));
    let err = Compiled::new(&s).err().unwrap();
    assert!(err.contains("one whole-connection"), "{err}");
}

//! Unit tests of the endpoint and datastore calls' parsing: Microsoft's examples parse, each
//! datastore secrets type has its fields, auth modes compare like the CLI writes them, and neither
//! parse errors nor `Debug` show a value.

use serde_json::json;

use super::*;

fn resp(body: Value) -> HttpResponse {
    HttpResponse {
        status: reqwest::StatusCode::OK,
        headers: Default::default(),
        body: body.to_string().into_bytes(),
    }
}

#[test]
fn microsoft_examples_parse() {
    // OnlineEndpoint_getToken.json: the times are integers (Unix seconds).
    let t: WireToken = parse(
        &resp(json!({"accessToken": "string", "expiryTimeUtc": 1, "refreshAfterTimeUtc": 1, "tokenType": "string"})),
        "t",
    )
    .unwrap();
    assert_eq!(t.expiry_time_utc, Some(1));
    // OnlineEndpoint_listKeys.json
    let k = keys_of_wire(
        parse(
            &resp(json!({"primaryKey": "string", "secondaryKey": "string"})),
            "k",
        )
        .unwrap(),
    );
    assert_eq!(k.primary.unwrap().expose(), "string");
    // OnlineEndpoint/get.json and ServerlessEndpoint/get.json
    let online = endpoint_of_wire(parse(&resp(json!({"id": "string", "name": "string", "properties": {"scoringUri": "https://www.contoso.com/example", "authMode": "AMLToken", "provisioningState": "Creating"}, "systemData": {"lastModifiedAt": "2020-01-01T12:34:56.999Z"}})), "e").unwrap());
    assert!(online.uses_aml_token() && !online.uses_keys());
    assert_eq!(
        online.uri.as_deref(),
        Some("https://www.contoso.com/example")
    );
    let serverless = endpoint_of_wire(parse(&resp(json!({"name": "string", "properties": {"authMode": "Key", "inferenceEndpoint": {"headers": {"string": "string"}, "uri": "https://www.contoso.com/example"}}})), "e").unwrap());
    assert!(serverless.uses_keys());
    assert_eq!(
        serverless.uri.as_deref(),
        Some("https://www.contoso.com/example")
    );
    // Datastore_listSecrets.json
    let d = datastore_secrets(&json!({"secretsType": "AccountKey", "key": "string"}));
    assert_eq!(d.secrets_type, "AccountKey");
    assert_eq!(d.credentials.names().collect::<Vec<_>>(), ["key"]);
}

#[test]
fn each_datastore_secrets_type_has_its_fields_and_none_has_none() {
    let cases = [
        (
            json!({"secretsType": "Sas", "sasToken": "s"}),
            vec!["sasToken"],
        ),
        (
            json!({"secretsType": "ServicePrincipal", "clientSecret": "c"}),
            vec!["clientSecret"],
        ),
        (
            json!({"secretsType": "Certificate", "certificate": "c"}),
            vec!["certificate"],
        ),
        (json!({"secretsType": "None"}), vec![]),
        (
            json!({"secretsType": "KerberosPassword", "kerberosPassword": "p"}),
            vec!["kerberosPassword"],
        ),
    ];
    for (wire, want) in cases {
        let d = datastore_secrets(&wire);
        assert_eq!(d.credentials.names().collect::<Vec<_>>(), want, "{wire}");
    }
}

#[test]
fn auth_modes_compare_like_the_cli_writes_them() {
    assert!(mode_is("aml_token", "AMLToken"));
    assert!(mode_is("key", "Key"));
    assert!(!mode_is("AADToken", "AMLToken"));
}

#[test]
fn parse_errors_and_debug_never_show_values() {
    let Err(err) = parse::<WireToken>(&resp(json!({"accessToken": ["planted-xyz"]})), "t") else {
        panic!("a bad shape must not parse");
    };
    assert!(!err.to_string().contains("planted-xyz"), "{err}");
    let d = datastore_secrets(&json!({"secretsType": "Sas", "sasToken": "planted-sas"}));
    assert!(!format!("{d:?}").contains("planted-sas"));
}

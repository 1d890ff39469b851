//! Client certificates: PEM, PKCS#1 and PFX material sign an assertion Entra ID accepts; a
//! mismatched key is refused before any call, an unknown certificate with its AADSTS code.

use amlsecrets::azure::{AzureError, CertificateMaterial, CredentialSpec, SecretBytes};
use testenv::azure::TENANT;
use testenv::azure::keys::{
    CLIENT_KEY_PEM, CLIENT_KEY_PKCS1_PEM, ClientCertificate, WRONG_KEY_PEM,
};

use super::support::{Env, reads_a_secret};

const CERT_CLIENT: &str = "22222222-0000-0000-0000-000000000002";
const CERT_OID: &str = "bbbbbbbb-0000-0000-0000-000000000002";

fn cert_env_register(env: &Env) -> ClientCertificate {
    let cert = ClientCertificate::new(CLIENT_KEY_PEM, "amlsecrets-test");
    env.fakes
        .entra
        .add_certificate(TENANT, CERT_CLIENT, CERT_OID, &cert.x5t(), &cert.public_key);
    cert
}

fn cert_spec(material: CertificateMaterial) -> CredentialSpec {
    CredentialSpec::ClientCertificate {
        tenant_id: TENANT.into(),
        client_id: CERT_CLIENT.into(),
        certificate: material,
    }
}

#[tokio::test]
async fn client_certificate_in_two_pem_strings_signs_an_accepted_assertion() {
    let env = Env::start().await;
    let cert = cert_env_register(&env);
    let cred = env.cred(cert_spec(CertificateMaterial::Pem {
        certificate: cert.cert_pem.clone(),
        private_key: Some(cert.key_pem.clone().into()),
    }));
    assert_eq!(reads_a_secret(&env, &cred).await.unwrap(), "s3cret-value");
    assert_eq!(cred.identity().object_id.as_deref(), Some(CERT_OID));
}

#[tokio::test]
async fn client_certificate_in_one_pem_or_pkcs1_key_is_accepted() {
    let env = Env::start().await;
    let cert = cert_env_register(&env);
    let combined = env.cred(cert_spec(CertificateMaterial::Pem {
        certificate: cert.combined_pem(),
        private_key: None,
    }));
    assert!(reads_a_secret(&env, &combined).await.is_ok());
    let pkcs1 = env.cred(cert_spec(CertificateMaterial::Pem {
        certificate: cert.cert_pem.clone(),
        private_key: Some(CLIENT_KEY_PKCS1_PEM.into()),
    }));
    assert!(reads_a_secret(&env, &pkcs1).await.is_ok());
}

#[tokio::test]
async fn client_certificate_as_pfx_with_and_without_password_is_accepted() {
    let env = Env::start().await;
    let cert = cert_env_register(&env);
    let with_pw = env.cred(cert_spec(CertificateMaterial::Pfx {
        der: SecretBytes::new(cert.pfx("pfx-pass")),
        password: Some("pfx-pass".into()),
    }));
    assert!(reads_a_secret(&env, &with_pw).await.is_ok());
    let no_pw = env.cred(cert_spec(CertificateMaterial::Pfx {
        der: SecretBytes::new(cert.pfx("")),
        password: None,
    }));
    assert!(reads_a_secret(&env, &no_pw).await.is_ok());
    let wrong = env.registry.credential(
        &env.cloud,
        cert_spec(CertificateMaterial::Pfx {
            der: SecretBytes::new(cert.pfx("pfx-pass")),
            password: Some("nope".into()),
        }),
    );
    assert_eq!(wrong.unwrap_err().reason(), "CredentialsUnavailable");
}

#[tokio::test]
async fn certificate_key_that_does_not_match_is_refused_before_any_call() {
    let env = Env::start().await;
    let cert = cert_env_register(&env);
    let err = env
        .registry
        .credential(
            &env.cloud,
            cert_spec(CertificateMaterial::Pem {
                certificate: cert.cert_pem.clone(),
                private_key: Some(WRONG_KEY_PEM.into()),
            }),
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("no certificate matches the private key"),
        "{err}"
    );
    assert_eq!(env.fakes.entra.calls.count("token"), 0);
}

#[tokio::test]
async fn certificate_unknown_to_the_app_fails_with_aadsts700027() {
    let env = Env::start().await;
    let _registered = cert_env_register(&env);
    let other = ClientCertificate::new(WRONG_KEY_PEM, "not-uploaded");
    let cred = env.cred(cert_spec(CertificateMaterial::Pem {
        certificate: other.cert_pem.clone(),
        private_key: Some(other.key_pem.clone().into()),
    }));
    match reads_a_secret(&env, &cred).await.unwrap_err() {
        AzureError::AuthenticationFailed { code, .. } => assert_eq!(code, Some(700027)),
        e => panic!("{e:?}"),
    }
}

//! Fake Azure servers for tests: Entra ID, IMDS, ARM and Key Vault, over https with a test CA on
//! 127.0.0.1 random ports, each counting calls and accepting injected faults.

pub mod arm;
pub mod common;
pub mod connections;
pub mod endpoints;
pub mod entra;
pub mod imds;
pub mod keys;
pub mod keyvault;
pub mod tls;

pub use arm::FakeArm;
pub use common::{Fault, Faults, TokenBook};
pub use connections::{FakeConnections, connection_json};
pub use endpoints::FakeEndpoints;
pub use entra::{FakeEntra, FederatedCredential};
pub use imds::{FakeImds, NodeIdentity};
pub use keyvault::{FakeKeyVault, PermissionModel, StoredVersion};
pub use tls::TestCa;

/// The tenant every fake lives in.
pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// The Key Vault token audience the fake vault expects.
pub const VAULT_AUDIENCE: &str = "https://vault.azure.net";

/// All fakes, sharing one CA and one book of tokens.
pub struct AzureFakes {
    /// The CA whose certificate clients must trust.
    pub ca: TestCa,
    /// Tokens issued by Entra and IMDS, accepted by ARM and Key Vault.
    pub tokens: TokenBook,
    /// The token endpoint.
    pub entra: FakeEntra,
    /// The instance metadata service.
    pub imds: FakeImds,
    /// Resource Manager.
    pub arm: FakeArm,
    /// A vault.
    pub vault: FakeKeyVault,
}

impl AzureFakes {
    /// Starts every fake.
    pub async fn start() -> Self {
        Self::start_with_ca(TestCa::new()).await
    }

    /// Starts every fake with certificates from `ca` (e.g. one naming more addresses).
    pub async fn start_with_ca(ca: TestCa) -> Self {
        let tokens = TokenBook::default();
        let entra = FakeEntra::start(&ca, tokens.clone()).await;
        entra.add_tenant(TENANT);
        let imds = FakeImds::start(TENANT, tokens.clone()).await;
        let arm = FakeArm::start(&ca, tokens.clone()).await;
        let vault = FakeKeyVault::start(&ca, tokens.clone(), TENANT, VAULT_AUDIENCE).await;
        AzureFakes {
            ca,
            tokens,
            entra,
            imds,
            arm,
            vault,
        }
    }

    /// Starts another vault trusting the same tokens.
    pub async fn another_vault(&self) -> FakeKeyVault {
        FakeKeyVault::start(&self.ca, self.tokens.clone(), TENANT, VAULT_AUDIENCE).await
    }
}

//! Keyed digests of secret material (HMAC-SHA256 under a random per-process key): they tell
//! whether material changed, or whether two pieces of it are the same, without keeping it, and
//! mean nothing outside this process.

use ring::hmac;
use ring::rand::SystemRandom;

/// A random per-process key for [`Digest`]s.
#[derive(Clone)]
pub(crate) struct DigestKey(hmac::Key);

/// A keyed digest: equal only for the same parts under the same key. Shown as base64url.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct Digest(Vec<u8>);

impl DigestKey {
    /// Draws a new random key.
    pub(crate) fn random() -> Self {
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new())
            .expect("the system random generator works");
        DigestKey(key)
    }

    /// Digests `parts` in order, each prefixed with its length, so that moving bytes from one
    /// part to the next (`["ab", "c"]`, `["a", "bc"]`) changes the digest.
    pub(crate) fn digest<'a>(&self, parts: impl IntoIterator<Item = &'a [u8]>) -> Digest {
        let mut ctx = hmac::Context::with_key(&self.0);
        for part in parts {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        Digest(ctx.sign().as_ref().to_vec())
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::azure::credential::jwt::b64url(&self.0))
    }
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Digest({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_parts_give_the_same_digest_and_any_change_another() {
        let key = DigestKey::random();
        let d = |parts: &[&str]| key.digest(parts.iter().map(|p| p.as_bytes()));
        assert_eq!(d(&["a", "b"]), d(&["a", "b"]));
        assert_ne!(d(&["a", "b"]), d(&["a", "c"]));
        assert_ne!(
            d(&["ab", "c"]),
            d(&["a", "bc"]),
            "parts are length-prefixed"
        );
        assert_ne!(d(&["a", ""]), d(&["a"]), "an empty part still counts");
    }

    #[test]
    fn digests_are_keyed_per_process() {
        let parts: [&[u8]; 1] = [b"hunter2"];
        let a = DigestKey::random().digest(parts);
        let b = DigestKey::random().digest(parts);
        assert_ne!(a, b, "two keys must give different digests");
        assert!(!format!("{a} {a:?}").contains("hunter2"));
    }
}

//! Decoding of fetched values into Secret bytes (`None`, `Base64`, `Auto`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::api::workspace_secret::Decode;

/// The value was declared base64 but is not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the value is not valid base64 (decode: Base64); use decode: Auto or None")]
pub struct DecodeError;

/// Turns a fetched value into the bytes stored in the Secret.
pub fn decode(value: &str, how: Decode) -> Result<Vec<u8>, DecodeError> {
    match how {
        Decode::None => Ok(value.as_bytes().to_vec()),
        Decode::Base64 => STANDARD.decode(value.trim()).map_err(|_| DecodeError),
        Decode::Auto => Ok(STANDARD
            .decode(value.trim())
            .unwrap_or_else(|_| value.as_bytes().to_vec())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_by_policy() {
        assert_eq!(decode("aGVsbG8=", Decode::None).unwrap(), b"aGVsbG8=");
        assert_eq!(decode("aGVsbG8=", Decode::Base64).unwrap(), b"hello");
        assert_eq!(decode("aGVsbG8=\n", Decode::Auto).unwrap(), b"hello");
        assert_eq!(decode("not base64!", Decode::Auto).unwrap(), b"not base64!");
        assert_eq!(decode("not base64!", Decode::Base64), Err(DecodeError));
    }
}

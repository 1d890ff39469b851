//! Key mapping: how a vault secret name or connection field becomes a Secret key.

use regex::Regex;

use crate::api::workspace_secret::{KeyMapping, KeyStyle};

/// Why a key mapping could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A rewrite's regex does not compile.
    #[error("rewrite regex {regex:?} is invalid: {reason}")]
    BadRegex {
        /// The regex as written.
        regex: String,
        /// The compiler's complaint.
        reason: String,
    },
    /// The mapped key is not a valid Secret key.
    #[error(
        "source {source_name:?} maps to {key:?}, which is not a valid Secret key (letters, digits, '-', '_', '.')"
    )]
    InvalidKey {
        /// The name before mapping.
        source_name: String,
        /// The name after mapping.
        key: String,
    },
}

/// A compiled key mapping.
#[derive(Debug, Clone, Default)]
pub struct Mapper {
    rewrites: Vec<(Regex, String)>,
    style: KeyStyle,
}

impl Mapper {
    /// Compiles a key mapping; `None` maps names unchanged.
    pub fn new(mapping: Option<&KeyMapping>) -> Result<Self, KeyError> {
        let Some(mapping) = mapping else {
            return Ok(Self::default());
        };
        let rewrites = mapping
            .rewrite
            .iter()
            .map(|r| {
                Regex::new(&r.regex)
                    .map(|re| (re, r.replace.clone()))
                    .map_err(|e| KeyError::BadRegex {
                        regex: r.regex.clone(),
                        reason: e.to_string(),
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Mapper {
            rewrites,
            style: mapping.style,
        })
    }

    /// Maps one source name to a Secret key: the rewrites in order, then the style.
    pub fn map(&self, source: &str) -> Result<String, KeyError> {
        let mut key = source.to_string();
        for (re, replace) in &self.rewrites {
            key = re.replace_all(&key, replace.as_str()).into_owned();
        }
        if self.style == KeyStyle::UpperSnake {
            key = upper_snake(&key);
        }
        if is_secret_key(&key) {
            Ok(key)
        } else {
            Err(KeyError::InvalidKey {
                source_name: source.to_string(),
                key,
            })
        }
    }
}

/// Tells whether a string is a valid key of a Secret's `data`.
pub fn is_secret_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key != "."
        && key != ".."
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Converts `db-password`, `apiKey` or `ABCKey` to `DB_PASSWORD`, `API_KEY`, `ABC_KEY`.
pub fn upper_snake(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c == '-' || c == '.' || c == ' ' || c == '_' {
            if !out.ends_with('_') && !out.is_empty() {
                out.push('_');
            }
            continue;
        }
        if c.is_uppercase() && i > 0 && !out.ends_with('_') {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if prev.is_lowercase() || prev.is_ascii_digit() || (prev.is_uppercase() && next_lower) {
                out.push('_');
            }
        }
        out.extend(c.to_uppercase());
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::workspace_secret::Rewrite;

    #[test]
    fn upper_snake_handles_kebab_camel_and_acronyms() {
        assert_eq!(upper_snake("db-password"), "DB_PASSWORD");
        assert_eq!(upper_snake("apiKey"), "API_KEY");
        assert_eq!(upper_snake("accessKeyId"), "ACCESS_KEY_ID");
        assert_eq!(upper_snake("ABCKey"), "ABC_KEY");
        assert_eq!(upper_snake("secretAccessKey"), "SECRET_ACCESS_KEY");
        assert_eq!(upper_snake("key2"), "KEY2");
        assert_eq!(upper_snake("already_SNAKE"), "ALREADY_SNAKE");
        assert_eq!(upper_snake("a--b"), "A_B");
    }

    #[test]
    fn rewrites_apply_in_order_before_the_style() {
        let mapping = KeyMapping {
            rewrite: vec![
                Rewrite {
                    regex: "^app1-".into(),
                    replace: "".into(),
                },
                Rewrite {
                    regex: "^(.*)-pw$".into(),
                    replace: "${1}-password".into(),
                },
            ],
            style: KeyStyle::UpperSnake,
        };
        let m = Mapper::new(Some(&mapping)).unwrap();
        assert_eq!(m.map("app1-db-pw").unwrap(), "DB_PASSWORD");
        assert_eq!(m.map("other").unwrap(), "OTHER");
    }

    #[test]
    fn bad_regex_and_invalid_keys_are_reported() {
        let bad = KeyMapping {
            rewrite: vec![Rewrite {
                regex: "(".into(),
                replace: "".into(),
            }],
            ..Default::default()
        };
        assert!(matches!(
            Mapper::new(Some(&bad)),
            Err(KeyError::BadRegex { .. })
        ));
        let to_space = KeyMapping {
            rewrite: vec![Rewrite {
                regex: "-".into(),
                replace: " ".into(),
            }],
            ..Default::default()
        };
        let m = Mapper::new(Some(&to_space)).unwrap();
        assert!(matches!(m.map("a-b"), Err(KeyError::InvalidKey { .. })));
        assert_eq!(
            Mapper::new(None).unwrap().map("db-password").unwrap(),
            "db-password"
        );
    }
}

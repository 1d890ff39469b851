//! The size limit of a Secret: the API server refuses data whose values add up to more than
//! 1 MiB. Checked before writing so that the user reads sizes, not an API error.

use std::collections::BTreeMap;

/// The most bytes the values of one Secret's `data` may add up to (the API server's limit).
pub const MAX_SECRET_BYTES: usize = 1024 * 1024;

/// Says why `ours` plus the `others`' key sizes would not fit in a Secret, naming the total, the
/// limit and the largest keys; `None` when it fits.
pub fn too_large(
    ours: &BTreeMap<String, Vec<u8>>,
    others: &BTreeMap<&str, usize>,
) -> Option<String> {
    let mut sizes: Vec<(&str, usize)> = ours
        .iter()
        .map(|(k, v)| (k.as_str(), v.len()))
        .chain(others.iter().map(|(k, n)| (*k, *n)))
        .collect();
    let total: usize = sizes.iter().map(|(_, n)| n).sum();
    if total <= MAX_SECRET_BYTES {
        return None;
    }
    sizes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let largest: Vec<String> = sizes
        .iter()
        .take(3)
        .map(|(k, n)| format!("{k} ({n} bytes)"))
        .collect();
    let theirs: usize = others.values().sum();
    let mut why = format!(
        "the data would be {total} bytes, over the {MAX_SECRET_BYTES} bytes a Secret may hold; largest keys: {}",
        largest.join(", ")
    );
    if theirs > 0 {
        why.push_str(&format!(" ({theirs} bytes are other writers' keys)"));
    }
    Some(why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_over_one_mebibyte_is_refused_naming_total_limit_and_largest_keys() {
        let ours = BTreeMap::from([
            ("big".to_string(), vec![0u8; 700_000]),
            ("small".to_string(), vec![0u8; 10]),
        ]);
        assert!(too_large(&ours, &BTreeMap::new()).is_none());
        let others = BTreeMap::from([("theirs", 400_000usize)]);
        let why = too_large(&ours, &others).unwrap();
        assert!(why.contains("1100010 bytes"), "{why}");
        assert!(why.contains("1048576"), "{why}");
        assert!(why.starts_with("the data would be"), "{why}");
        assert!(
            why.contains(
                "largest keys: big (700000 bytes), theirs (400000 bytes), small (10 bytes)"
            ),
            "{why}"
        );
        assert!(
            why.contains("400000 bytes are other writers' keys"),
            "{why}"
        );
        let exact = BTreeMap::from([("k".to_string(), vec![0u8; MAX_SECRET_BYTES])]);
        assert!(too_large(&exact, &BTreeMap::new()).is_none());
    }
}

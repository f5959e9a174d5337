//! Container names and aliases become DNS names: only what a hostname may
//! hold, so a record file can never carry a name the resolver would
//! misread, and matching is case-insensitive (names are kept lower case).

/// A name as the resolver stores it: lower case, no trailing dot, labels
/// of letters, digits, `-` and `_` (container names use `_`), each 1 to 63
/// bytes, 253 bytes in all.
pub fn normalize(name: &str) -> Result<String, String> {
    let n = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if n.is_empty() || n.len() > 253 {
        return Err(format!("name {name:?} must be 1 to 253 bytes"));
    }
    for label in n.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!(
                "name {name:?} has an empty label or one longer than 63 bytes"
            ));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "name {name:?} may hold only letters, digits, '-', '_' and '.'"
            ));
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lowered_and_checked() {
        assert_eq!(normalize("Web.").unwrap(), "web");
        assert_eq!(
            normalize("my_ctr-1.dns.podman").unwrap(),
            "my_ctr-1.dns.podman"
        );
        for bad in ["", ".", "a..b", "a b", "../x", "a/b", &"x".repeat(64)] {
            assert!(normalize(bad).is_err(), "{bad:?} accepted");
        }
    }
}

//! Rules for the names in a configuration. Names become DNS labels, interface names and
//! cloud resource names, so they are held to the strictest of those.

/// A DNS label of at most 32 characters: lowercase letters, digits and inner hyphens,
/// starting with a letter. Tenant, network, site and gateway names follow it.
pub(crate) fn check_label(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".into());
    }
    if name.len() > 32 {
        return Err(format!(
            "is {} characters long; the limit is 32",
            name.len()
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err("must start with a lowercase letter".into());
    }
    if name.ends_with('-') {
        return Err("must not end with a hyphen".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "contains `{c}`; use lowercase letters, digits and hyphens"
        ));
    }
    Ok(())
}

/// A DNS name: dot-separated labels of letters, digits and hyphens, 253 characters at most.
pub(crate) fn check_dns_name(name: &str) -> Result<(), String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return Err("must be 1 to 253 characters long".into());
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("has an empty label: two dots in a row, or a dot at the start".into());
        }
        let ok = (1..=63).contains(&label.len())
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!(
                "has the label `{label}`; each label is 1 to 63 letters, digits or inner hyphens"
            ));
        }
    }
    Ok(())
}

/// A Linux interface name: 1 to 15 bytes, no `/`, no white space, not `.` or `..`.
pub(crate) fn check_interface(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 15 {
        return Err("must be 1 to 15 characters long (Linux IFNAMSIZ)".into());
    }
    if name == "." || name == ".." {
        return Err("cannot be `.` or `..`".into());
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || !c.is_ascii_graphic())
    {
        return Err("may not contain `/`, `:`, white space or non-ASCII characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert!(check_label("shop").is_ok());
        assert!(check_label("aws-east-1").is_ok());
        assert!(check_label("Shop").is_err());
        assert!(check_label("1shop").is_err());
        assert!(check_label("shop-").is_err());
        assert!(check_label("sh_op").is_err());
        assert!(check_label(&"a".repeat(33)).is_err());
    }

    #[test]
    fn dns_names() {
        assert!(check_dns_name("weft.internal").is_ok());
        assert!(check_dns_name("weft.internal.").is_ok());
        assert!(check_dns_name("-bad.internal").is_err());
        assert!(check_dns_name("a..b").unwrap_err().contains("empty label"));
        assert!(check_dns_name(".a").unwrap_err().contains("empty label"));
    }

    #[test]
    fn interfaces() {
        assert!(check_interface("eth0").is_ok());
        assert!(check_interface("weft-1234567890").is_ok());
        assert!(check_interface("weft-12345678901").is_err());
        assert!(check_interface("a/b").is_err());
    }
}

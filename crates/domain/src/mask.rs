//! Masking of personal data for logs and alerts (invariant 4: no raw PII there).

/// `priya.sharma@acmecorp.in` → `p***@acmecorp.in`.
pub fn email(e: &str) -> String {
    match e.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_string(),
    }
}

/// `+919876543210` → `+91******3210`: country prefix and last four digits only.
pub fn phone(p: &str) -> String {
    let chars: Vec<char> = p.chars().collect();
    if chars.len() <= 6 {
        return "***".to_string();
    }
    let keep_head = if chars[0] == '+' { 3 } else { 2 };
    let tail = 4;
    let mut out: String = chars[..keep_head].iter().collect();
    out.extend(std::iter::repeat_n('*', chars.len() - keep_head - tail));
    out.extend(&chars[chars.len() - tail..]);
    out
}

/// `Priya Sharma` → `P*** S***`.
pub fn name(n: &str) -> String {
    n.split_whitespace()
        .map(|w| {
            let first: String = w.chars().take(1).collect();
            format!("{first}***")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_only_a_hint() {
        assert_eq!(email("priya.sharma@acmecorp.in"), "p***@acmecorp.in");
        assert_eq!(phone("+919876543210"), "+91******3210");
        assert_eq!(phone("919876543210"), "91******3210");
        assert_eq!(phone("123"), "***");
        assert_eq!(name("Priya  Sharma"), "P*** S***");
        assert_eq!(email("nonsense"), "***");
    }
}

/// Masks personal data inside free text (a CRM's error message, say): each
/// `known` value (the lead's own email, phone, name) and anything shaped like
/// an email address.
pub fn scrub(text: &str, known: &[&str]) -> String {
    let mut out = text.to_string();
    for k in known.iter().filter(|k| k.len() >= 3) {
        let masked = if k.contains('@') {
            email(k)
        } else if k.chars().filter(|c| c.is_ascii_digit()).count() >= 6 {
            phone(k)
        } else {
            name(k)
        };
        out = replace_case_insensitive(&out, k, &masked);
    }
    out.split_inclusive(char::is_whitespace)
        .map(|tok| {
            let core = tok.trim_end();
            let trimmed = core.trim_matches(|c: char| "\"'()<>[],;:".contains(c));
            if trimmed.contains('@') && trimmed.contains('.') && !trimmed.contains("***") {
                tok.replacen(trimmed, &email(trimmed), 1)
            } else {
                tok.to_string()
            }
        })
        .collect()
}

fn replace_case_insensitive(hay: &str, needle: &str, with: &str) -> String {
    let lower_hay = hay.to_lowercase();
    let lower_needle = needle.to_lowercase();
    if lower_hay.len() != hay.len() || lower_needle.is_empty() {
        return hay.replace(needle, with);
    }
    let mut out = String::with_capacity(hay.len());
    let mut i = 0;
    while let Some(pos) = lower_hay[i..].find(&lower_needle) {
        out.push_str(&hay[i..i + pos]);
        out.push_str(with);
        i += pos + lower_needle.len();
    }
    out.push_str(&hay[i..]);
    out
}

#[cfg(test)]
mod scrub_tests {
    use super::*;

    #[test]
    fn scrub_masks_known_values_and_email_shapes() {
        let s = scrub(
            "Email address Priya@Acme.in is invalid; see also \"bob@x.org\", phone +919876543210",
            &["priya@acme.in", "+919876543210"],
        );
        assert!(!s.to_lowercase().contains("priya@acme.in"), "{s}");
        assert!(!s.contains("bob@x.org"), "{s}");
        assert!(!s.contains("9876543210"), "{s}");
        assert!(
            s.contains("p***@acme.in") && s.contains("b***@x.org"),
            "{s}"
        );
    }
}

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

    #[test]
    fn free_text_loses_every_email_and_international_number() {
        let crm_said =
            "Contact jane@x.io (+1 (415) 555-2671) already exists. Existing ID: 51234567890; \
                        also +44 20 7946 0958.";
        let s = scrub(crm_said, &[]);
        assert!(!s.contains("jane@x.io") && s.contains("j***@x.io"), "{s}");
        assert!(!s.contains("555-2671") && !s.contains("7946"), "{s}");
        assert!(
            s.contains("+14*****2671") && s.contains("+44******0958"),
            "{s}"
        );
        assert!(
            s.contains("Existing ID: 51234567890"),
            "record ids stay: {s}"
        );
        assert_eq!(
            scrub("call +1 2 3 now", &[]),
            "call +1 2 3 now",
            "too short to be a number"
        );
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
        .collect::<String>()
        .pipe(international_numbers)
}

trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl Pipe for String {}

/// Masks anything written like an international phone number (`+` then at
/// least 7 digits, spaces, dashes, dots or brackets between them): a CRM's or
/// webhook target's own error text may echo a number in any format. Plain
/// digit runs (record ids) are left alone.
fn international_numbers(text: String) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '+' && chars.get(i + 1).is_some_and(char::is_ascii_digit) {
            let mut j = i + 1;
            let mut digits = String::from("+");
            let mut end = j;
            while j < chars.len() && (chars[j].is_ascii_digit() || " -().".contains(chars[j])) {
                if chars[j].is_ascii_digit() {
                    digits.push(chars[j]);
                    end = j + 1;
                }
                j += 1;
            }
            if digits.len() > 7 {
                out.push_str(&phone(&digits));
                i = end;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
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

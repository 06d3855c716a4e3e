//! `leadbridge sign`: a signed request for testing by hand — the canonical
//! `Leadbridge-Signature` header, or (`--source NAME`) a native source's
//! request signed the way its vendor signs it.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use lb_vendors::source::{Sample, SourceKind, SourceOptions};

#[derive(Args, Debug)]
pub struct SignArgs {
    /// The canonical webhook secret (without --source).
    #[arg(long, env = "LEADBRIDGE_WEBHOOK_SECRET")]
    secret: Option<String>,
    /// A native source of the stack file (`make dev`): its kind, URL and secret.
    #[arg(long)]
    source: Option<String>,
    /// With --source: the vendor kind, for a source not in the stack file (a deployment).
    #[arg(long, requires = "source")]
    kind: Option<String>,
    /// With --kind: the source's public URL.
    #[arg(long, requires = "kind")]
    url: Option<String>,
    /// Post the signed request and print the answer (else print a curl command).
    #[arg(long)]
    send: bool,
    /// The sample lead (with --source and no FILE): email, phone (E.164), name, message.
    #[arg(long, default_value = "ada@example.com")]
    email: String,
    #[arg(long, default_value = "+14155552671")]
    phone: String,
    #[arg(long, default_value = "Ada Lovelace")]
    name: String,
    #[arg(long, default_value = "Hi, what does the Pro plan cost?")]
    text: String,
    #[arg(long, default_value = "target/leadbridge-local.json")]
    stack_file: PathBuf,
    /// The body to sign (with --source: the vendor's payload; default: a sample).
    file: Option<PathBuf>,
}

pub async fn run(a: SignArgs) -> anyhow::Result<()> {
    let Some(source) = a.source.clone() else {
        let file = a
            .file
            .as_ref()
            .context("give the FILE to sign (or --source NAME)")?;
        let secret = a
            .secret
            .as_ref()
            .context("give --secret (or LEADBRIDGE_WEBHOOK_SECRET)")?;
        let body = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        println!(
            "{}",
            lb_vendors::signature::sign(secret, chrono::Utc::now().timestamp(), &body)
        );
        return Ok(());
    };
    let (kind, url, secret, options) = match &a.kind {
        Some(k) => {
            let kind = lb_vendors::sources::kind(k).with_context(|| {
                format!(
                    "unknown kind {k:?}; one of {}",
                    lb_vendors::sources::names().join(", ")
                )
            })?;
            let url = a.url.clone().context("give --url with --kind")?;
            let secret = a.secret.clone().context("give --secret with --kind")?;
            (kind, url, secret, SourceOptions::default())
        }
        None => {
            let info = crate::read_stack_file(&a.stack_file)?;
            let s = info.sources.get(&source).with_context(|| {
                format!(
                    "no source {source:?} in {}; sources: {}",
                    a.stack_file.display(),
                    info.sources.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            })?;
            let kind = lb_vendors::sources::kind(&s.kind)
                .with_context(|| format!("unknown kind {:?}", s.kind))?;
            let options = SourceOptions {
                fields: if kind.option_keys().contains(&"fields") {
                    lb_local::sources::local_custom_fields()
                } else {
                    Vec::new()
                },
                ..SourceOptions::default()
            };
            (kind, s.url.clone(), s.secret.clone(), options)
        }
    };
    let now = chrono::Utc::now();
    let (content_type, body) = match &a.file {
        Some(f) => (
            content_type_of(kind),
            std::fs::read(f).with_context(|| format!("reading {}", f.display()))?,
        ),
        None => {
            let id = format!("manual-{}", now.timestamp_millis());
            kind.sample(
                &Sample {
                    vendor_id: &id,
                    name: &a.name,
                    email: &a.email,
                    phone: &a.phone,
                    text: &a.text,
                    at: now,
                },
                &options,
            )
        }
    };
    let mut headers = kind.sign(&url, &body, &secret, now);
    headers.push(("content-type".into(), content_type));
    if a.send {
        let mut req = reqwest::Client::new().post(&url).body(body);
        for (k, v) in &headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let resp = req.send().await.with_context(|| format!("POST {url}"))?;
        println!("{}", resp.status());
        println!("{}", resp.text().await.unwrap_or_default());
        return Ok(());
    }
    println!("{}", curl(&url, &headers, &body));
    Ok(())
}

/// What a vendor's payload file is sent as.
fn content_type_of(kind: &dyn SourceKind) -> String {
    match kind.name() {
        "twilio" => "application/x-www-form-urlencoded".into(),
        _ => "application/json".into(),
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn curl(url: &str, headers: &[(String, String)], body: &[u8]) -> String {
    let mut out = format!("curl -sS -X POST {}", shell_quote(url));
    for (k, v) in headers {
        out.push_str(&format!(" \\\n  -H {}", shell_quote(&format!("{k}: {v}"))));
    }
    out.push_str(&format!(
        " \\\n  --data-binary {}",
        shell_quote(&String::from_utf8_lossy(body))
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_curl_command_quotes_what_the_shell_would_split() {
        let c = curl(
            "https://x.example/v1/sources/wa",
            &[("x-hub-signature-256".into(), "sha256=ab".into())],
            b"{\"name\":\"O'Brien\"}",
        );
        assert!(c.contains("-H 'x-hub-signature-256: sha256=ab'"));
        assert!(
            c.contains(r#"--data-binary '{"name":"O'\''Brien"}'"#),
            "{c}"
        );
    }
}

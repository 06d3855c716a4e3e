//! `leadbridge config check FILE`: validates a configuration file the way
//! ingest and the worker do at cold start (`LEADBRIDGE_CONFIG`), so a bad file
//! is caught before it is deployed.

use std::path::{Path, PathBuf};

use lb_config::Config;

#[derive(clap::Subcommand)]
pub enum ConfigCmd {
    /// Validate a configuration file: prints its connections and routes, or
    /// every error as FILE:LINE:COLUMN: key: message (exit status 1).
    Check {
        file: PathBuf,
        /// Allow connections on this machine over plain http (a config for the
        /// local stack); a deployment's config may not have them.
        #[arg(long)]
        local: bool,
    },
}

pub fn run(cmd: ConfigCmd) -> anyhow::Result<()> {
    match cmd {
        ConfigCmd::Check { file, local } => match check(&file, local) {
            Ok(report) => {
                print!("{report}");
                Ok(())
            }
            Err(report) => {
                eprint!("{report}");
                std::process::exit(1)
            }
        },
    }
}

/// `Ok`: the summary line, then one line per warning. `Err`: one
/// `FILE:LINE:COLUMN: key: message` line per error. Every line ends in `\n`.
pub fn check(file: &Path, local: bool) -> Result<String, String> {
    let name = file.display();
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("{name}: cannot read the configuration file: {e}\n"))?;
    let parsed = if local {
        Config::parse_local(&text)
    } else {
        Config::parse(&text)
    };
    let config = parsed.map_err(|errors| {
        errors
            .iter()
            .map(|e| format!("{name}:{}:{}: {}: {}\n", e.line, e.column, e.key, e.message))
            .collect::<String>()
    })?;
    let mut out = format!("{name}: OK — {}\n", summary(&config));
    for w in &config.warnings {
        out.push_str(&format!("{name}: warning: {w}\n"));
    }
    Ok(out)
}

/// `2 connection(s) (hubspot: hubspot, zapier: webhook), 2 route(s) (sales-bot → hubspot, zapier; * → hubspot)`
pub fn summary(config: &Config) -> String {
    let connections = config
        .connections
        .values()
        .map(|c| format!("{}: {}", c.name, c.kind_name()))
        .collect::<Vec<_>>()
        .join(", ");
    let routes = config
        .routes
        .iter()
        .map(|r| {
            // Where a route sends anything through the bulk lane, say so.
            let mut bulk: Vec<&str> = r
                .event_lanes
                .iter()
                .filter(|(_, l)| *l == lb_domain::Lane::Bulk)
                .map(|(t, _)| t.as_str())
                .collect();
            if r.lane == lb_domain::Lane::Bulk {
                bulk.insert(0, "every event");
            }
            let lanes = if bulk.is_empty() {
                String::new()
            } else {
                format!(" (bulk: {})", bulk.join(", "))
            };
            format!("{} → {}{lanes}", r.bot_label(), r.connections.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ");
    let mut out = format!(
        "{} connection(s) ({connections}), {} route(s) ({routes})",
        config.connections.len(),
        config.routes.len()
    );
    if !config.sources.is_empty() {
        let sources = config
            .sources
            .values()
            .map(|s| format!("{}: {} for {}", s.name, s.kind, s.bot_id))
            .collect::<Vec<_>>()
            .join(", ");
        out.push_str(&format!(", {} source(s) ({sources})", config.sources.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, text: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("leadbridge-config-cmd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn the_example_checks_ok_with_a_summary() {
        let example =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/leadbridge.example.toml");
        let text = std::fs::read_to_string(&example).unwrap();
        let path = temp_file("example.toml", &text);
        let out = check(&path, false).unwrap();
        assert_eq!(
            out,
            format!(
                "{}: OK — 5 connection(s) (hubspot: hubspot, pipedrive: pipedrive, salesforce: salesforce, zapier: webhook, zoho: zoho), \
                 4 route(s) (sales-bot → hubspot, zapier; demo-bot → hubspot, pipedrive, zoho, salesforce; \
                 nurture-bot → hubspot (bulk: lead.updated, conversation.ended); * → hubspot), \
                 4 source(s) (intercom: intercom for sales-bot, twilio: twilio for whatsapp-bot, typebot: custom_json for sales-bot, whatsapp: whatsapp for whatsapp-bot)\n",
                path.display()
            )
        );
    }

    #[test]
    fn warnings_follow_the_summary() {
        let path = temp_file(
            "warn.toml",
            "version = 1\n[connections.a]\nkind = \"webhook\"\nurl = \"https://example.com\"\n[connections.b]\nkind = \"webhook\"\nurl = \"https://example.com\"\n[[routes]]\nbot_id = \"*\"\nconnections = [\"a\"]\n",
        );
        let out = check(&path, false).unwrap();
        let p = path.display();
        assert_eq!(
            out,
            format!("{p}: OK — 2 connection(s) (a: webhook, b: webhook), 1 route(s) (* → a)\n{p}: warning: line 5, column 14: connections.b: no route uses this connection: it receives nothing\n")
        );
    }

    #[test]
    fn errors_are_file_line_column_key_message() {
        let path = temp_file(
            "bad.toml",
            "version = 1\n[connections.hubspot]\nkind = \"hubspot\"\nsecret = \"lb/hs\"\n[connections.zapier]\nkind = \"webhook\"\nurl = \"zapier\"\n[[routes]]\nbot_id = \"*\"\nconnections = [\"hubsopt\"]\n",
        );
        let err = check(&path, false).unwrap_err();
        let p = path.display();
        assert_eq!(
            err,
            format!(
                "{p}:7:7: connections.zapier.url: \"zapier\" is not an absolute URL: relative URL without a base\n{p}:10:16: routes[0].connections[0]: unknown connection \"hubsopt\"; defined: hubspot, zapier\n"
            )
        );
        let missing = check(&temp_file("x", "").with_file_name("nope.toml"), false).unwrap_err();
        assert!(
            missing.contains("nope.toml: cannot read the configuration file"),
            "{missing}"
        );
    }
}

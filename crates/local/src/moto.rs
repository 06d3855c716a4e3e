//! Starting moto server from the project's Python virtualenv.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{bail, Context};

#[derive(Debug)]
/// A running moto server; stopped when dropped (or when this process exits,
/// since it watches its standard input).
pub struct Moto {
    /// Every service (DynamoDB requests are forwarded to its own process).
    pub endpoint: String,
    /// DynamoDB's process itself: the same data, without the forwarding hop.
    pub dynamodb_endpoint: String,
    pub port: u16,
    child: Mutex<Child>,
}

/// The Python that has moto: `LEADBRIDGE_PYTHON`, else the project's `.venv`.
pub fn python() -> PathBuf {
    match std::env::var_os("LEADBRIDGE_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => crate::workspace_root().join(".venv/bin/python"),
    }
}

impl Moto {
    /// Starts moto on `port` (0: a free one) and waits until it listens:
    /// DynamoDB in a process of its own, unless `LEADBRIDGE_MOTO_SINGLE=1`
    /// (one process for every service, as before the split; for comparing the
    /// two in `make bench`).
    pub fn start(port: u16) -> anyhow::Result<Moto> {
        let single = std::env::var_os("LEADBRIDGE_MOTO_SINGLE").is_some_and(|v| v == "1");
        Self::start_with(port, single)
    }

    /// [`Moto::start`], `single`: every service in one process.
    pub fn start_with(port: u16, single: bool) -> anyhow::Result<Moto> {
        let py = python();
        if !py.exists() {
            bail!("{} not found: run `make venv` (or set LEADBRIDGE_PYTHON to a Python with moto[server])", py.display());
        }
        let script = crate::workspace_root().join("scripts/moto_server.py");
        let log = crate::workspace_root().join("target/moto.log");
        let stderr = std::fs::File::create(&log)
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null());
        let mut cmd = Command::new(&py);
        cmd.arg(&script).arg(port.to_string());
        if single {
            cmd.arg("--single");
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting moto with {}", py.display()))?;
        let stdout = child.stdout.take().context("moto stdout")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .context("reading moto's ready line")?;
        let v: serde_json::Value = serde_json::from_str(line.trim())
            .with_context(|| format!("moto did not start (see {}): {line:?}", log.display()))?;
        let port = v["port"].as_u64().context("moto ready line has no port")? as u16;
        let dynamodb_port = v["dynamodb_port"].as_u64().unwrap_or(port.into());
        Ok(Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            dynamodb_endpoint: format!("http://127.0.0.1:{dynamodb_port}"),
            port,
            child: Mutex::new(child),
        })
    }

    /// One moto for the whole process (tests isolate themselves by resource prefix).
    pub fn shared() -> anyhow::Result<Arc<Moto>> {
        static SHARED: OnceLock<Result<Arc<Moto>, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| Moto::start(0).map(Arc::new).map_err(|e| format!("{e:#}")))
            .clone()
            .map_err(|e| anyhow::anyhow!(e))
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Ok(mut c) = self.child.lock() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

//! A function's cold start, measured as Lambda would see it: the binary is
//! started with `AWS_LAMBDA_RUNTIME_API` pointing at a local Runtime API
//! endpoint (this module's), and the clock runs from the process start to its
//! first `GET /runtime/invocation/next` (init: the SDK clients, the secrets,
//! the config), then from handing it an event to its response (the first
//! invocation). Only the parts of the Runtime API a function's first
//! invocation uses are served (AWS "Lambda runtime API": next, response,
//! error, init error).

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use tokio::sync::Notify;

const PREFIX: &str = "/2018-06-01/runtime";

/// What one cold start took.
#[derive(Debug, Clone)]
pub struct ColdStart {
    /// Process start → its first `next`.
    pub init: Duration,
    /// Event handed out → its response (or error) back.
    pub first_invocation: Duration,
    /// The function's answer (or its error report).
    pub response: Value,
    /// Whether it answered with an error report instead of a response.
    pub errored: bool,
}

#[derive(Default)]
struct Shared {
    event: Value,
    started: Option<Instant>,
    first_next: Option<Instant>,
    handed_out: Option<Instant>,
    answered: Option<(Instant, Value, bool)>,
}

#[derive(Clone)]
struct Api {
    shared: Arc<Mutex<Shared>>,
    done: Arc<Notify>,
    arn: String,
}

async fn next(State(api): State<Api>) -> impl IntoResponse {
    let event = {
        let mut s = api.shared.lock().expect("runtime api state");
        if s.handed_out.is_some() {
            None
        } else {
            let now = Instant::now();
            s.first_next.get_or_insert(now);
            s.handed_out = Some(now);
            Some(s.event.clone())
        }
    };
    let Some(event) = event else {
        // One invocation per cold start: later `next` calls wait (the process is killed).
        std::future::pending::<()>().await;
        unreachable!()
    };
    let deadline = chrono::Utc::now().timestamp_millis() + 60_000;
    let mut headers = HeaderMap::new();
    let mut set = |k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            headers.insert(k, v);
        }
    };
    set("lambda-runtime-aws-request-id", "cold-start-1".into());
    set("lambda-runtime-deadline-ms", deadline.to_string());
    set("lambda-runtime-invoked-function-arn", api.arn.clone());
    set(
        "lambda-runtime-trace-id",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0".into(),
    );
    (StatusCode::OK, headers, axum::Json(event))
}

fn answered(api: &Api, body: &[u8], errored: bool) -> StatusCode {
    let value = serde_json::from_slice(body).unwrap_or(Value::Null);
    api.shared.lock().expect("runtime api state").answered = Some((Instant::now(), value, errored));
    api.done.notify_one();
    StatusCode::ACCEPTED
}

async fn response(
    State(api): State<Api>,
    UrlPath(_id): UrlPath<String>,
    body: axum::body::Bytes,
) -> StatusCode {
    answered(&api, &body, false)
}

async fn error(
    State(api): State<Api>,
    UrlPath(_id): UrlPath<String>,
    body: axum::body::Bytes,
) -> StatusCode {
    answered(&api, &body, true)
}

async fn init_error(State(api): State<Api>, body: axum::body::Bytes) -> StatusCode {
    answered(&api, &body, true)
}

/// Starts `binary` as Lambda would, with `env` (the function's environment)
/// and a local Runtime API that hands it `event`; measures its cold start.
/// Its output goes to `log`.
pub async fn measure(
    binary: &Path,
    name: &str,
    env: &[(String, String)],
    event: Value,
    log: &Path,
) -> anyhow::Result<ColdStart> {
    let shared = Arc::new(Mutex::new(Shared {
        event,
        ..Shared::default()
    }));
    let api = Api {
        shared: shared.clone(),
        done: Arc::new(Notify::new()),
        arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{name}"),
    };
    let app = Router::new()
        .route(&format!("{PREFIX}/invocation/next"), get(next))
        .route(
            &format!("{PREFIX}/invocation/{{id}}/response"),
            post(response),
        )
        .route(&format!("{PREFIX}/invocation/{{id}}/error"), post(error))
        .route(&format!("{PREFIX}/init/error"), post(init_error))
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let out = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let err = out.try_clone()?;
    let mut cmd = tokio::process::Command::new(binary);
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "cold-start")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true);
    shared.lock().expect("runtime api state").started = Some(Instant::now());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let finished = tokio::time::timeout(Duration::from_secs(60), api.done.notified()).await;
    let _ = child.kill().await;
    server.abort();
    if finished.is_err() {
        bail!(
            "{name} answered nothing within 60 s (its output: {})",
            log.display()
        );
    }
    let s = shared.lock().expect("runtime api state");
    let (Some(started), Some((at, value, errored))) = (s.started, s.answered.clone()) else {
        bail!("{name} ended without an answer");
    };
    let Some(first_next) = s.first_next else {
        // An init error: it never asked for an event.
        return Ok(ColdStart {
            init: at - started,
            first_invocation: Duration::ZERO,
            response: value,
            errored: true,
        });
    };
    Ok(ColdStart {
        init: first_next - started,
        first_invocation: at - s.handed_out.unwrap_or(first_next),
        response: value,
        errored,
    })
}

/// A binary's size as a Lambda zip holds it (deflated, as `zip` stores it).
pub fn zipped_size(binary: &Path) -> anyhow::Result<u64> {
    use std::io::Write;
    let raw = std::fs::read(binary).with_context(|| format!("reading {}", binary.display()))?;
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&raw)?;
    // Deflated bytes plus the zip's local header and central directory for one
    // file named `bootstrap` (30 + 46 + 22 bytes + the name twice).
    Ok(z.finish()?.len() as u64 + 30 + 46 + 22 + 2 * "bootstrap".len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A function speaking the Runtime API (a script here): init is its start →
    /// its first `next`, and its answer to the event comes back.
    #[tokio::test]
    async fn a_function_is_timed_from_its_start_to_its_first_next_and_its_answer() {
        let dir = std::env::temp_dir().join(format!("lb-cold-{}", rand::random::<u32>()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("bootstrap");
        std::fs::write(
            &script,
            r#"#!/usr/bin/env python3
import json, os, time, urllib.request
time.sleep(0.3)  # init: clients, secrets, config
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"
with urllib.request.urlopen(api + "/invocation/next") as r:
    rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
    event = json.load(r)
body = json.dumps({"echo": event, "fn": os.environ["AWS_LAMBDA_FUNCTION_NAME"], "env": os.environ["MY_ENV"]}).encode()
urllib.request.urlopen(urllib.request.Request(api + "/invocation/" + rid + "/response", data=body, method="POST"))
time.sleep(30)
"#,
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let c = measure(
            &script,
            "probe",
            &[("MY_ENV".into(), "set".into())],
            serde_json::json!({"n": 1}),
            &dir.join("out.log"),
        )
        .await
        .expect("measured");
        assert!(c.init >= Duration::from_millis(300), "{c:?}");
        assert!(!c.errored);
        assert_eq!(
            c.response,
            serde_json::json!({"echo": {"n": 1}, "fn": "probe", "env": "set"})
        );
        assert!(zipped_size(&script).unwrap() > 0);
    }
}

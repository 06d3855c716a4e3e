//! The operators' console in a real browser: Debian's Chromium, headless, driven
//! through chromedriver (W3C WebDriver) against a local stack. One lead synced,
//! one dead (HubSpot refuses its contact); the operator loads the console, enters
//! the key, sees the flow, filters by `dead`, opens the dead event, replays it
//! once the CRM is fixed, confirms, and sees it synced.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian's `chromium` and
//! `chromium-driver`; `make test` installs them). Without them the test fails.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use lb_pipeline::LedgerStatus;
use lb_tests::webdriver::{By, WebDriver};
use lb_tests::{lead, start, TestStack};
use reqwest::Method;
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long the page may take to show what a step expects.
const DEADLINE: Duration = Duration::from_secs(30);

const CONFIG: &str = r#"version = 1

[connections.hubspot]
kind = "hubspot"
secret = "{hs_secret}"
base_url = "{hubspot_url}"

[[routes]]
bot_id = "*"
connections = ["hubspot"]
"#;

const OK_ID: &str = "evt_console_ok";
const DEAD_ID: &str = "evt_console_dead";
const DEAD_DELIVERY: &str = "evt_console_dead@hubspot";
const DEAD_EMAIL: &str = "ada.lovelace@console.example";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_browser_replays_a_dead_event_until_it_is_synced() {
    let started = Instant::now();
    let hs_secret = format!("e2e-{}/hubspot", rand::random::<u32>());
    let t = start("console", |o| {
        o.secrets = vec![(hs_secret.clone(), o.sim.token.clone())];
        o.config_toml = Some(CONFIG.replace("{hs_secret}", &hs_secret));
    })
    .await;

    let (status, body) = t
        .post(&lead(OK_ID, json!({"email": "grace@console.example"})))
        .await;
    assert_eq!(status, 202, "{body}");
    t.wait_status(&format!("{OK_ID}@hubspot"), LedgerStatus::Synced)
        .await;
    // HubSpot refuses the next contact write: the lead is dead, `crm_rejected`.
    t.admin(
        Method::POST,
        "faults",
        Some(json!({"kind": "error", "status": 400, "probability": 1.0,
                    "route": "POST /crm/v3/objects/contacts/batch/upsert"})),
    )
    .await;
    let (status, body) = t
        .post(&lead(
            DEAD_ID,
            json!({"email": DEAD_EMAIL, "name": "Ada Lovelace"}),
        ))
        .await;
    assert_eq!(status, 202, "{body}");
    let dead = t.wait_status(DEAD_DELIVERY, LedgerStatus::Dead).await;
    let reason = dead.last_error.expect("the reason is kept");
    assert_eq!(
        (reason.code.as_str(), reason.http_status),
        ("crm_rejected", Some(400)),
        "{reason:?}"
    );

    over_http(&t).await;

    let browser = Browser::start()
        .await
        .unwrap_or_else(|e| panic!("the browser test could not start Chromium: {e:#}"));
    let browsed = Instant::now();
    let result = drive(&browser.driver, &t).await;
    browser.stop().await;
    if let Err(e) = result {
        panic!("in the browser: {e:#}");
    }

    let rec = t.wait_status(DEAD_DELIVERY, LedgerStatus::Synced).await;
    assert_eq!(rec.replays, 1, "replayed once, from the console");
    let contact = t.contact_by_email(DEAD_EMAIL).await;
    assert_eq!(
        TestStack::note_ids(&contact).len(),
        1,
        "exactly one note: {contact}"
    );
    eprintln!(
        "console browser test: {:.1} s in the browser, {:.1} s in all",
        browsed.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// The API and the page over plain HTTP: the key is required, people are masked,
/// the page carries its policy.
async fn over_http(t: &TestStack) {
    let info = &t.stack.info;
    let http = &t.client.http;
    let url = |p: &str| format!("{}{p}", info.ingest_url);
    let page = http.get(url("/console")).send().await.expect("ingest");
    assert_eq!(page.status(), 200);
    let header = |n: &str| {
        page.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert!(header("content-type").starts_with("text/html"));
    assert!(header("content-security-policy").starts_with("default-src 'none'"));
    assert_eq!(header("referrer-policy"), "no-referrer");

    for path in ["/v1/console/flow", "/v1/console/events"] {
        let r = http.get(url(path)).send().await.expect("ingest");
        assert_eq!(r.status(), 401, "{path} without a key");
    }
    let r = http
        .post(url("/v1/console/replay"))
        .json(&json!({"ids": [DEAD_ID]}))
        .send()
        .await
        .expect("ingest");
    assert_eq!(r.status(), 401, "no replay without a key");

    let list: Value = http
        .get(url("/v1/console/events?status=dead"))
        .header("x-api-key", &info.status_api_key)
        .send()
        .await
        .expect("ingest")
        .json()
        .await
        .expect("JSON");
    assert_eq!(list["events"][0]["id"], DEAD_DELIVERY, "{list}");
    assert_eq!(list["events"][0]["contact"], "a***@console.example");
    let story: Value = http
        .get(url(&format!("/v1/console/events/{DEAD_ID}")))
        .header("x-api-key", &info.status_api_key)
        .send()
        .await
        .expect("ingest")
        .json()
        .await
        .expect("JSON");
    assert_eq!(story["status"], "dead", "{story}");
    assert_eq!(
        story["deliveries"][0]["last_error"]["http_status"], 400,
        "{story}"
    );
    let all = format!("{list}{story}");
    assert!(
        !all.contains(DEAD_EMAIL) && !all.contains("Lovelace"),
        "never a raw email or name: {all}"
    );
}

/// What an operator does, step by step; every wait has a deadline.
async fn drive(d: &WebDriver, t: &TestStack) -> anyhow::Result<()> {
    let info = &t.stack.info;
    d.goto(format!("{}/console", info.ingest_url)).await?;

    // The key.
    let label = until("the key field's label", || async {
        text(d, "label[for='key']").await
    })
    .await?;
    ensure!(
        label == "Console key",
        "the key field has a label: {label:?}"
    );
    until("the key typed in", || async {
        d.find(By::Id("key"))
            .await
            .ok()?
            .send_keys(&info.status_api_key)
            .await
            .ok()
    })
    .await?;
    click(d, "the key's submit button", "#key-submit").await?;

    // The flow: two deliveries accepted, one synced, one dead, as numbers and bars.
    for (id, want) in [
        ("total-accepted", "2"),
        ("total-synced", "1"),
        ("total-dead", "1"),
        ("total-rejected", "0"),
    ] {
        until(&format!("#{id} to read {want}"), || async {
            text(d, &format!("#{id}")).await.filter(|t| t == want)
        })
        .await?;
    }
    until("the focus on the console's heading", || async {
        let id = d.active_element().await.ok()?.attr("id").await.ok()??;
        (id == "flow-h").then_some(())
    })
    .await?;
    until("a bar each for accepted, synced and dead", || async {
        let bars = d.find_all(By::Css("#chart rect")).await.ok()?;
        (bars.len() >= 3).then_some(())
    })
    .await?;
    until("the flow per hour as a table", || async {
        let table = d
            .find(By::Id("flow-body"))
            .await
            .ok()?
            .inner_html()
            .await
            .ok()?;
        table.contains("<th scope=\"row\">").then_some(())
    })
    .await?;

    // Only the dead ones.
    click(d, "the dead status", "#f-status option[value='dead']").await?;
    click(d, "the filter's apply button", "#f-apply").await?;
    until("one row: the dead delivery", || async {
        let rows = d.find_all(By::Css("#events-body tr")).await.ok()?;
        if rows.len() != 1 {
            return None;
        }
        (text(d, "#events-body button.linkish").await? == DEAD_DELIVERY).then_some(())
    })
    .await?;
    let listed = until("the row's masked contact and reason", || async {
        text(d, "#events-body")
            .await
            .filter(|l| l.contains("a***@console.example") && l.contains("crm_rejected"))
    })
    .await?;
    ensure!(!listed.contains(DEAD_EMAIL), "the row: {listed}");

    // Its story.
    click(d, "the dead delivery's row", "#events-body button.linkish").await?;
    until("the story to say dead", || async {
        text(d, "#story-status").await.filter(|s| s == "dead")
    })
    .await?;
    until("the CRM's answer in the story", || async {
        text(d, "#story-body")
            .await
            .filter(|s| s.contains("HTTP 400") && s.contains("crm_rejected"))
    })
    .await?;

    // The CRM is fixed; the operator replays it, and confirms.
    t.admin(Method::DELETE, "faults", None).await;
    click(d, "the replay button", "#story-body button.replay-one").await?;
    until("the confirmation dialog naming it", || async {
        let shown = d
            .find(By::Id("confirm-yes"))
            .await
            .ok()?
            .is_displayed()
            .await
            .ok()?;
        text(d, "#confirm-h")
            .await
            .filter(|asked| shown && asked.contains(DEAD_DELIVERY))
    })
    .await?;
    click(d, "the confirmation", "#confirm-yes").await?;
    until("the replay to be announced", || async {
        text(d, "#live")
            .await
            .filter(|s| s.contains("Replayed 1 delivery"))
    })
    .await?;

    // The story follows it to the CRM (the worker's next poll, then the CRM calls).
    until_within("the story to say synced", 2 * DEADLINE, || async {
        text(d, "#story-status").await.filter(|s| s == "synced")
    })
    .await?;
    let link = until("a link to the CRM contact", || async {
        d.find(By::Css("#story-body a.record-link"))
            .await
            .ok()?
            .attr("href")
            .await
            .ok()?
    })
    .await?;
    // The attempt that died before the replay is still in the story, with its answer.
    until("the dead attempt in the synced story", || async {
        text(d, "#story-body").await.filter(|s| {
            s.contains("Attempt failed")
                && s.contains("HTTP 400")
                && s.contains("dead, then replayed")
        })
    })
    .await?;
    let read_url = format!("{}/crm/v3/objects/contacts/", info.crm.hubspot.base_url);
    ensure!(
        link.starts_with(&read_url),
        "{link} is the simulator's read URL"
    );
    let source = d.source().await?;
    ensure!(
        !source.contains(DEAD_EMAIL) && !source.contains("Lovelace"),
        "the page never shows the raw email or name"
    );
    Ok(())
}

/// Polls `f` until it answers, for at most [`DEADLINE`].
async fn until<T, F, Fut>(what: &str, f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    until_within(what, DEADLINE, f).await
}

async fn until_within<T, F, Fut>(what: &str, timeout: Duration, f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    lb_local::client::eventually(what, timeout, f).await
}

/// Clicks the first element `css` selects, finding it again until the click
/// lands (a list re-rendered in between makes an element stale).
async fn click(d: &WebDriver, what: &str, css: &str) -> anyhow::Result<()> {
    until(what, || async {
        d.find(By::Css(css)).await.ok()?.click().await.ok()
    })
    .await
}

/// The rendered text of the first element `css` selects.
async fn text(d: &WebDriver, css: &str) -> Option<String> {
    d.find(By::Css(css)).await.ok()?.text().await.ok()
}

/// Chromium under chromedriver, each on this test's own port and profile.
struct Browser {
    driver: WebDriver,
    chromedriver: tokio::process::Child,
    profile: PathBuf,
}

impl Browser {
    async fn start() -> anyhow::Result<Browser> {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            ensure!(
                Path::new(bin).exists(),
                "{bin} is missing: install Debian's chromium and chromium-driver (`make test` does)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut chromedriver = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {CHROMEDRIVER}"))?;
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder().no_proxy().build()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = chromedriver.try_wait()? {
                bail!("chromedriver exited at start ({status})");
            }
            let ready = match http.get(format!("{url}/status")).send().await {
                Ok(r) => r.json::<Value>().await.ok(),
                Err(_) => None,
            };
            if ready.is_some_and(|v| v["value"]["ready"] == true) {
                break;
            }
            if Instant::now() > deadline {
                bail!("chromedriver was not ready within 20 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile =
            std::env::temp_dir().join(format!("lb-console-chromium-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&profile)?;
        let mut args: Vec<String> = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-proxy-server",
            "--window-size=1280,1000",
        ]
        .map(String::from)
        .to_vec();
        args.push(format!("--user-data-dir={}", profile.display()));
        let driver = match WebDriver::new(&url, CHROMIUM, &args).await {
            Ok(d) => d,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&profile);
                return Err(e).context("chromedriver could not start Chromium");
            }
        };
        Ok(Browser {
            driver,
            chromedriver,
            profile,
        })
    }

    async fn stop(mut self) {
        let _ = self.driver.quit().await;
        let _ = self.chromedriver.kill().await;
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

//! A minimal W3C WebDriver client (the dozen commands the console's browser
//! test uses) over reqwest, for chromedriver.
//!
//! Written here rather than taken from a crate: `thirtyfour` turns on
//! serde_json's `preserve_order` for the whole workspace's test build (so the
//! tests would run with other JSON map semantics than the Lambdas ship with),
//! and `fantoccini` depends on the MPL-2.0 `webdriver` crate, outside the
//! project's license policy (`deny.toml`). The protocol is a handful of JSON
//! requests (https://www.w3.org/TR/webdriver2/).

use anyhow::{bail, Context};
use serde_json::{json, Value};

/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How to find an element.
pub enum By<'a> {
    Id(&'a str),
    Css(&'a str),
}

impl By<'_> {
    fn css(&self) -> String {
        match self {
            By::Id(id) => format!("#{id}"),
            By::Css(css) => css.to_string(),
        }
    }
}

/// One browser session.
pub struct WebDriver {
    http: reqwest::Client,
    session: String,
}

/// One element of the page.
pub struct Element<'d> {
    driver: &'d WebDriver,
    id: String,
}

impl WebDriver {
    /// Starts a Chromium session on the chromedriver at `url`.
    pub async fn new(url: &str, chromium: &str, args: &[String]) -> anyhow::Result<WebDriver> {
        let http = reqwest::Client::builder().no_proxy().build()?;
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args}
        }}});
        let v: Value = http
            .post(format!("{url}/session"))
            .json(&caps)
            .send()
            .await?
            .json()
            .await?;
        let Some(id) = v["value"]["sessionId"].as_str() else {
            bail!("chromedriver did not start a session: {v}");
        };
        Ok(WebDriver {
            http,
            session: format!("{url}/session/{id}"),
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self.http.request(method, format!("{}{path}", self.session));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req
            .send()
            .await?
            .json()
            .await
            .context("a WebDriver answer")?;
        if let Some(e) = v["value"]["error"].as_str() {
            bail!("{e}: {}", v["value"]["message"].as_str().unwrap_or(""));
        }
        Ok(v["value"].clone())
    }

    pub async fn goto(&self, url: impl AsRef<str>) -> anyhow::Result<()> {
        self.call(
            reqwest::Method::POST,
            "/url",
            Some(json!({"url": url.as_ref()})),
        )
        .await
        .map(|_| ())
    }

    fn element(&self, v: &Value) -> anyhow::Result<Element<'_>> {
        let id = v[ELEMENT].as_str().context("an element reference")?;
        Ok(Element {
            driver: self,
            id: id.to_string(),
        })
    }

    pub async fn find(&self, by: By<'_>) -> anyhow::Result<Element<'_>> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": by.css()})),
            )
            .await?;
        self.element(&v)
    }

    pub async fn find_all(&self, by: By<'_>) -> anyhow::Result<Vec<Element<'_>>> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": by.css()})),
            )
            .await?;
        v.as_array()
            .into_iter()
            .flatten()
            .map(|e| self.element(e))
            .collect()
    }

    pub async fn active_element(&self) -> anyhow::Result<Element<'_>> {
        let v = self
            .call(reqwest::Method::GET, "/element/active", None)
            .await?;
        self.element(&v)
    }

    /// The page's HTML as the browser has it now.
    pub async fn source(&self) -> anyhow::Result<String> {
        let v = self.call(reqwest::Method::GET, "/source", None).await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    pub async fn quit(&self) -> anyhow::Result<()> {
        self.call(reqwest::Method::DELETE, "", None)
            .await
            .map(|_| ())
    }
}

impl Element<'_> {
    async fn get(&self, what: &str) -> anyhow::Result<Value> {
        self.driver
            .call(
                reqwest::Method::GET,
                &format!("/element/{}/{what}", self.id),
                None,
            )
            .await
    }

    pub async fn click(&self) -> anyhow::Result<()> {
        self.driver
            .call(
                reqwest::Method::POST,
                &format!("/element/{}/click", self.id),
                Some(json!({})),
            )
            .await
            .map(|_| ())
    }

    pub async fn send_keys(&self, text: &str) -> anyhow::Result<()> {
        self.driver
            .call(
                reqwest::Method::POST,
                &format!("/element/{}/value", self.id),
                Some(json!({"text": text})),
            )
            .await
            .map(|_| ())
    }

    /// The rendered text.
    pub async fn text(&self) -> anyhow::Result<String> {
        Ok(self
            .get("text")
            .await?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    pub async fn inner_html(&self) -> anyhow::Result<String> {
        Ok(self
            .get("property/innerHTML")
            .await?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    pub async fn attr(&self, name: &str) -> anyhow::Result<Option<String>> {
        Ok(self
            .get(&format!("attribute/{name}"))
            .await?
            .as_str()
            .map(str::to_string))
    }

    pub async fn is_displayed(&self) -> anyhow::Result<bool> {
        Ok(self.get("displayed").await?.as_bool().unwrap_or(false))
    }
}

//! A real browser for the board's tests: Debian's headless `chromium`, driven over WebDriver by
//! `chromedriver` (Debian's `chromium-driver`, started here on a free port) through `fantoccini`.
//!
//! Nothing here sleeps to synchronise: [`Browser::wait`] polls a JavaScript condition in the page
//! until it holds or its deadline passes, and then fails with what the page showed.

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::servers::{free_port, Proc};

/// Where the board's screenshots go (`target/board-screenshots/`).
pub fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/board-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One headless Chromium and the chromedriver that drives it.
pub struct Browser {
    pub client: Client,
    driver: Proc,
    driver_port: u16,
    session: Option<String>,
    /// The profile: a fresh one per browser, so no storage leaks between tests.
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium of `width`×`height` CSS pixels.
    pub async fn start(width: u32, height: u32) -> Browser {
        let driver_port = free_port();
        let child = Command::new(chromedriver())
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "chromedriver runs (deploy/local/install.sh installs Debian's chromium-driver)",
            );
        let driver = Proc {
            child,
            name: "chromedriver".into(),
        };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", driver_port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "chromedriver did not open port {driver_port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::Builder::new()
            .prefix("fraud-sla-chromium")
            .tempdir()
            .unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium(),
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--disable-extensions",
                    "--hide-scrollbars",
                    "--force-device-scale-factor=1",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        // The page's console, for the message of a failed wait.
        caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
        let client = ClientBuilder::native()
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{driver_port}"))
            .await
            .expect("a Chromium session");
        let session = client.session_id().await.ok().flatten();
        let browser = Browser {
            client,
            driver,
            driver_port,
            session,
            _profile: profile,
        };
        browser.resize(width, height).await;
        browser
    }

    /// Makes the viewport (not the window) `width`×`height`.
    pub async fn resize(&self, width: u32, height: u32) {
        self.client.set_window_size(width, height).await.unwrap();
        let inner = self
            .js("return [window.innerWidth, window.innerHeight];")
            .await;
        let (iw, ih) = (
            inner[0].as_u64().unwrap_or(0) as u32,
            inner[1].as_u64().unwrap_or(0) as u32,
        );
        if (iw, ih) != (width, height) && iw > 0 && ih > 0 {
            let (w, h) = (
                width + width.saturating_sub(iw),
                height + height.saturating_sub(ih),
            );
            self.client.set_window_size(w, h).await.unwrap();
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// Runs `script` (a function body: `return …`) in the page.
    pub async fn js(&self, script: &str) -> Value {
        self.js_with(script, Vec::new()).await
    }

    pub async fn js_with(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Polls `script` (a function body whose `return` is the condition; `arguments[0]` is `arg`)
    /// every 100 ms until it returns something truthy, and returns that; fails after `within`
    /// with `what` and the page's text.
    pub async fn wait(&self, what: &str, within: Duration, script: &str, arg: Value) -> Value {
        let start = Instant::now();
        loop {
            let v = self.js_with(script, vec![arg.clone()]).await;
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                Value::Array(a) => !a.is_empty(),
                Value::Object(_) => true,
            };
            if truthy {
                return v;
            }
            if start.elapsed() > within {
                panic!(
                    "waited {within:?} for {what}; the page at {} showed:\n{}\nconsole:\n{}",
                    self.client
                        .current_url()
                        .await
                        .map(|u| u.to_string())
                        .unwrap_or_default(),
                    self.page_text().await,
                    self.console().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Everything the page shows as text, with its banner and connection state.
    pub async fn page_text(&self) -> String {
        self.js(
            "return `[conn: ${document.querySelector('#conn')?.dataset.state}] \
             [banner: ${document.querySelector('#banner')?.textContent}]\n` \
             + document.body.innerText;",
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Sends a Chrome DevTools Protocol command through chromedriver (e.g. to block a URL).
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        let session = self.session.as_ref().expect("a session");
        let url = format!(
            "http://127.0.0.1:{}/session/{session}/goog/cdp/execute",
            self.driver_port
        );
        let got = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .post(url)
            .json(&json!({ "cmd": cmd, "params": params }))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{cmd}: {e}"));
        assert!(got.status().is_success(), "{cmd}: {}", got.status());
        got.json().await.unwrap_or(Value::Null)
    }

    /// What the page logged to its console (errors included) since the last call.
    pub async fn console(&self) -> String {
        let Some(session) = &self.session else {
            return String::new();
        };
        let url = format!(
            "http://127.0.0.1:{}/session/{session}/se/log",
            self.driver_port
        );
        let got = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .post(url)
            .json(&json!({ "type": "browser" }))
            .send()
            .await;
        let Ok(body) = got else {
            return String::new();
        };
        let v: Value = body.json().await.unwrap_or(Value::Null);
        v["value"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| format!("{} {}", e["level"], e["message"]))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    }

    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let el = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        el.clear().await.unwrap();
        el.send_keys(text).await.unwrap();
    }

    pub async fn select(&self, css: &str, value: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .select_by_value(value)
            .await
            .unwrap();
    }

    /// Saves a PNG of the viewport as `target/board-screenshots/<name>.png`; returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.unwrap();
        let path = screenshot_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Ends the session (chromedriver stops Chromium) and chromedriver.
    pub async fn close(mut self) {
        self.session = None;
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    /// A failed test never reaches [`Browser::close`]: ask chromedriver to end the session (it
    /// stops its Chromium) before chromedriver itself goes, so no browser outlives the test.
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            let url = format!("http://127.0.0.1:{}/session/{session}", self.driver_port);
            std::thread::spawn(move || {
                let _ = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .no_proxy()
                    .build()
                    .map(|c| c.delete(url).send());
            })
            .join()
            .ok();
        }
        let _ = &self.driver;
    }
}

fn chromedriver() -> String {
    std::env::var("FRAUD_SLA_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into())
}

/// Debian's `/usr/bin/chromium` is a shell wrapper; chromedriver wants the binary.
fn chromium() -> String {
    if let Ok(path) = std::env::var("FRAUD_SLA_CHROMIUM") {
        return path;
    }
    for path in ["/usr/lib/chromium/chromium", "/usr/bin/chromium"] {
        if Path::new(path).exists() {
            return path.into();
        }
    }
    "chromium".into()
}

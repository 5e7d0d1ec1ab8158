//! A real browser for tests: Debian's `chromium`, headless, driven over
//! WebDriver by its `chromedriver` (both installed by
//! `scripts/ensure-browser.sh`, which `./dev test` runs) through
//! `fantoccini`. Each [`Browser`] starts its own chromedriver on a free
//! loopback port and ends it when dropped.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use fantoccini::{Client, ClientBuilder};

/// A headless chromium session and the chromedriver serving it.
pub struct Browser {
    /// The WebDriver client.
    pub client: Client,
    driver: Child,
}

/// The chromium binary: `$CHROMIUM` or Debian's `/usr/bin/chromium`.
fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Browser {
    /// Whether chromium and chromedriver are installed.
    pub fn available() -> bool {
        Path::new(&chromium()).exists()
            && Command::new("chromedriver")
                .arg("--version")
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    }

    /// Start chromedriver on a free port and open a headless chromium
    /// window of 1280×1000 (`--no-sandbox`: tests run as root on CI).
    pub async fn start() -> anyhow::Result<Browser> {
        // Fails only when a provider is already installed: that one serves.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let port = free_port()?;
        let mut driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start chromedriver (bash scripts/ensure-browser.sh installs it)")?;
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium(),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1000"],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = loop {
            let connected = match ClientBuilder::rustls() {
                Ok(mut b) => b.capabilities(caps.clone()).connect(&url).await,
                Err(e) => {
                    let _ = driver.kill();
                    let _ = driver.wait();
                    return Err(e.into());
                }
            };
            match connected {
                Ok(c) => break c,
                Err(e) if Instant::now() > deadline => {
                    let _ = driver.kill();
                    let _ = driver.wait();
                    bail!("chromedriver on {url}: {e}");
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        Ok(Browser { client, driver })
    }

    /// Save a PNG screenshot of the window to `path`.
    pub async fn screenshot(&self, path: &Path) -> anyhow::Result<()> {
        let png = self.client.screenshot().await?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png)?;
        Ok(())
    }

    /// Close the session, then end chromedriver.
    pub async fn close(mut self) -> anyhow::Result<()> {
        let closed = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        closed?;
        Ok(())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

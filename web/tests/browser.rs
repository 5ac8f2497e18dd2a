//! The page in a real browser (Debian's headless Chromium through chromedriver): ask the headline
//! question, wait for the model, check the SQL, the first row and the answer; save a screenshot
//! to target/screenshots/ask.png for review.

mod common;

use fantoccini::{ClientBuilder, Locator};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct ChromeDriver(Child);

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn asking_in_the_page_shows_sql_rows_and_answer() {
    let base = common::start(&common::database_url(), 1).await;
    let best = common::friday_best_seller().await;

    let port = free_port();
    let _driver = ChromeDriver(
        Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (apt-get install chromium-driver, or scripts/setup-machine test)"),
    );
    let capabilities = serde_json::json!({
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                     "--disable-dev-shm-usage", "--window-size=1100,1300"]
        }
    });
    let started = Instant::now();
    let browser = loop {
        let mut builder = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(capabilities.as_object().unwrap().clone());
        match builder.connect(&format!("http://127.0.0.1:{port}")).await {
            Ok(browser) => break browser,
            Err(e) if started.elapsed() < Duration::from_secs(20) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(250)).await
            }
            Err(e) => panic!("chromedriver did not start: {e}"),
        }
    };

    browser.goto(&base).await.unwrap();
    let input = browser.find(Locator::Css("#question")).await.unwrap();
    input.send_keys("What is the most bought pizza on Fridays?").await.unwrap();
    browser.find(Locator::Css("#ask")).await.unwrap().click().await.unwrap();
    assert!(browser.find(Locator::Css("#ask")).await.unwrap().attr("disabled").await.unwrap().is_some(), "busy state while the model works");

    let answer = browser
        .wait()
        .at_most(Duration::from_secs(600))
        .every(Duration::from_millis(500))
        .for_element(Locator::XPath("//p[@id='answer'][normalize-space()]"))
        .await
        .unwrap_or_else(|e| panic!("no answer appeared: {e}"));
    let answer_text = answer.text().await.unwrap();
    let sql = browser.find(Locator::Css("#sql")).await.unwrap().text().await.unwrap();
    let first_row = browser.find(Locator::Css("#rows tbody tr")).await.unwrap().text().await.unwrap();
    let header = browser.find(Locator::Css("#rows thead tr")).await.unwrap().text().await.unwrap();

    let screenshots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
    std::fs::create_dir_all(&screenshots).unwrap();
    std::fs::write(screenshots.join("ask.png"), browser.screenshot().await.unwrap()).unwrap();
    browser.close().await.unwrap();

    assert!(sql.to_uppercase().contains("SELECT"), "{sql}");
    assert!(!header.is_empty(), "the table has a header");
    assert!(first_row.contains(&best), "first row shows {best}: {first_row}");
    assert!(!answer_text.is_empty(), "an answer in words");
}

//! The page in a real browser (Debian's headless Chromium through chromedriver): ask the headline
//! question, watch the progress (phases, the SQL as it is written), check the SQL, the first row
//! and the answer; cancel a question from the page. Screenshots for review go to
//! target/screenshots/: ask-progress.png (mid-question) and ask.png (answered).

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

/// The status line once the whole answer is on the page.
const ANSWERED: Locator<'static> = Locator::XPath("//p[@id='status'][starts-with(normalize-space(), 'Answered in')]");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn browser(port: u16) -> fantoccini::Client {
    let capabilities = serde_json::json!({
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                     "--disable-dev-shm-usage", "--window-size=1100,1300"]
        }
    });
    let started = Instant::now();
    loop {
        let mut builder = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(capabilities.as_object().unwrap().clone());
        match builder.connect(&format!("http://127.0.0.1:{port}")).await {
            Ok(browser) => break browser,
            Err(_) if started.elapsed() < Duration::from_secs(20) => tokio::time::sleep(Duration::from_millis(250)).await,
            Err(e) => panic!("chromedriver did not start: {e}"),
        }
    }
}

fn chromedriver(port: u16) -> ChromeDriver {
    ChromeDriver(
        Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (apt-get install chromium-driver, or scripts/setup-machine test)"),
    )
}

fn screenshots() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits until the model is writing SQL and some of it is on the page; returns that text.
async fn sql_being_written(browser: &fantoccini::Client) -> String {
    let started = Instant::now();
    loop {
        let phase = browser.find(Locator::Css("#progress li.active")).await.ok();
        let phase = match phase {
            Some(element) => element.attr("data-phase").await.unwrap().unwrap_or_default(),
            None => String::new(),
        };
        let sql = browser.find(Locator::Css("#sql")).await.unwrap().text().await.unwrap();
        if phase == "writing_sql" && sql.len() > 6 {
            return sql;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "the SQL never appeared while being written (phase {phase:?})");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn asking_in_the_page_shows_progress_then_sql_rows_and_answer() {
    let base = common::start(&common::uncached_database_url(), 1).await;
    let best = common::friday_best_seller().await;
    let port = free_port();
    let _driver = chromedriver(port);
    let browser = browser(port).await;

    browser.goto(&base).await.unwrap();
    let input = browser.find(Locator::Css("#question")).await.unwrap();
    input.send_keys("What is the most bought pizza on Fridays?").await.unwrap();
    browser.find(Locator::Css("#ask")).await.unwrap().click().await.unwrap();

    // Mid-question: the phase list shows where it is, and the SQL appears as it is written.
    let partial_sql = sql_being_written(&browser).await;
    let done: Vec<String> = {
        let mut names = Vec::new();
        for li in browser.find_all(Locator::Css("#progress li.done")).await.unwrap() {
            names.push(li.attr("data-phase").await.unwrap().unwrap_or_default());
        }
        names
    };
    assert_eq!(done, ["reading_schema"], "reading the schema is done while SQL is written");
    assert!(browser.find(Locator::Css("#cancel")).await.unwrap().is_displayed().await.unwrap(), "Cancel is offered");
    std::fs::write(screenshots().join("ask-progress.png"), browser.screenshot().await.unwrap()).unwrap();

    // The answer is streamed too; the status line says when everything has arrived.
    browser
        .wait()
        .at_most(Duration::from_secs(600))
        .every(Duration::from_millis(500))
        .for_element(ANSWERED)
        .await
        .unwrap_or_else(|e| panic!("no answer appeared: {e}"));
    let answer_text = browser.find(Locator::Css("#answer")).await.unwrap().text().await.unwrap();
    let sql = browser.find(Locator::Css("#sql")).await.unwrap().text().await.unwrap();
    let first_row = browser.find(Locator::Css("#rows tbody tr")).await.unwrap().text().await.unwrap();
    let header = browser.find(Locator::Css("#rows thead tr")).await.unwrap().text().await.unwrap();
    let all_done = browser.find_all(Locator::Css("#progress li.done")).await.unwrap().len();
    std::fs::write(screenshots().join("ask.png"), browser.screenshot().await.unwrap()).unwrap();
    browser.close().await.unwrap();

    assert!(sql.starts_with(partial_sql.lines().next().unwrap()), "the final SQL continues what was streamed: {partial_sql:?} / {sql:?}");
    assert_eq!(all_done, 4, "every phase is done");
    assert!(!header.is_empty(), "the table has a header");
    assert!(first_row.contains(&best), "first row shows {best}: {first_row}");
    assert!(answer_text.replace(' ', "_").to_lowercase().contains(&best), "the answer names {best}: {answer_text}");
}

/// Cancel in the page stops the question in the database too, and the service goes on answering.
#[tokio::test]
async fn a_question_can_be_cancelled_from_the_page() {
    let base = common::start(&common::database_url(), 1).await;
    let port = free_port();
    let _driver = chromedriver(port);
    let browser = browser(port).await;
    browser.goto(&base).await.unwrap();
    browser.find(Locator::Css("#question")).await.unwrap().send_keys("List every pizza name with its total revenue per month").await.unwrap();
    browser.find(Locator::Css("#ask")).await.unwrap().click().await.unwrap();
    sql_being_written(&browser).await;
    browser.find(Locator::Css("#cancel")).await.unwrap().click().await.unwrap();
    let status = browser.wait().at_most(Duration::from_secs(10)).for_element(Locator::XPath("//p[@id='status'][normalize-space()='Cancelled.']")).await;
    assert!(status.is_ok(), "the page says the question was cancelled");

    // The backend stops working on it within a few seconds.
    let (client, connection) = tokio_postgres::connect(&common::admin_url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let started = Instant::now();
    loop {
        let active: i64 = client
            .query_one("SELECT count(*) FROM pg_stat_activity WHERE usename = 'nl2sql_web' AND state = 'active' AND query LIKE '%nl2sql_ask%'", &[])
            .await
            .unwrap()
            .get(0);
        if active == 0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the question still runs in the database");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The same pooled connection answers the next question.
    browser.find(Locator::Css("#question")).await.unwrap().clear().await.unwrap();
    browser.find(Locator::Css("#question")).await.unwrap().send_keys("How many pizzas were sold in total?").await.unwrap();
    browser.find(Locator::Css("#ask")).await.unwrap().click().await.unwrap();
    let answer = browser.wait().at_most(Duration::from_secs(600)).for_element(ANSWERED).await;
    browser.close().await.unwrap();
    assert!(answer.is_ok(), "the next question is answered");
}

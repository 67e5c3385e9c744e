//! token-refresh throughput against a fake token endpoint (wiremock) that answers every
//! refresh after 50 ms, at concurrency 16, on SQLite: 2,000 due connections per run, three
//! runs (each 2 h of fake time after the previous, so every connection is due again).
//! With 16 calls of 50 ms in flight the endpoint alone allows 320 refreshes/s.
//!
//! `cargo bench -p token-refresh --bench throughput`

use std::time::{Duration, Instant};

use chrono::Duration as Span;
use secrecy::SecretString;
use serde_json::json;
use shared::db::ProviderType;
use shared::vault::TokenContext;
use testkit::scheduled::ClockedApp;
use token_refresh::{Settings, run};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const CONNECTIONS: usize = 2_000;
const RUNS: i64 = 3;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let server = MockServer::start().await;
        let body = json!({ "access_token": "at-new", "token_type": "Bearer", "expires_in": 3600 });
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(body).set_delay(Duration::from_millis(50)))
            .mount(&server)
            .await;
        let providers = json!({ "providers": { "gdrive": {
            "client_id": "c", "client_secret": "s", "token_url": format!("{}/token", server.uri())
        }}});
        let t = ClockedApp::new(providers).await;
        let a = t.tenant().await;
        let current = t.app.current().await.unwrap();
        let vault = &current.vault;
        for i in 0..CONNECTIONS {
            let mut n = testkit::new_connection(&a);
            n.provider_type = ProviderType::GDrive;
            n.token_expiry = chrono::Utc::now() + Span::minutes(5);
            let c = t.store().create_connection(&n).await.unwrap();
            let access = vault.encrypt(TokenContext::access(a.id, c.base.id), &SecretString::from("at".to_owned()));
            let refresh = vault.encrypt(TokenContext::refresh(a.id, c.base.id), &SecretString::from(format!("rt-{i}")));
            t.store()
                .swap_connection_tokens(a.id, c.base.id, &c.encrypted_access_token, access, Some(refresh))
                .await
                .unwrap();
        }
        let settings = Settings { concurrency: 16, time_budget: Duration::from_secs(600), ..Settings::default() };
        println!("token-refresh, {CONNECTIONS} due connections, fake endpoint answering after 50 ms, concurrency 16");
        println!("| run | refreshed | failed | wall time | refreshes/s |");
        println!("|---:|---:|---:|---:|---:|");
        let mut rates = Vec::new();
        for k in 0..RUNS {
            let app = t.at(Span::hours(2 * k)).await;
            let started = Instant::now();
            let report = run(&app, &settings).await;
            let elapsed = started.elapsed();
            let rate = report.acted as f64 / elapsed.as_secs_f64();
            rates.push(rate);
            println!(
                "| {} | {} | {} | {:.2} s | {:.0} |",
                k + 1,
                report.acted,
                report.failed,
                elapsed.as_secs_f64(),
                rate
            );
            assert_eq!(report.acted, CONNECTIONS as u64);
        }
        rates.sort_by(f64::total_cmp);
        println!("median: {:.0} refreshes/s (endpoint bound: 320/s)", rates[rates.len() / 2]);
    });
}

mod common;
use common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn smoke() {
    let env = Env::new("smoke", 2, FAST_SLA);
    let p = env.processor();
    p.wait_ready(Duration::from_secs(30));
    let prod = env.broker.producer();
    let now = now_ms();
    produce(&prod, &env.topics.alerts, Some("A-1"), &alert_json("A-1", now, "high")).await;
    let esc = env.escalations();
    let recs = collect_until(&esc, Duration::from_secs(20), |r| ids(r).len() >= 4);
    println!("{:#?}", recs.iter().map(|r| r.json()).collect::<Vec<_>>());
    println!("{}", p.log_text());
}

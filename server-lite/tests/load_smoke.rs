//! The load driver's smoke mode: 50 agents heartbeating and polling for two seconds
//! against a server on loopback, with no errors. (The 1,000-agent figures come from
//! `cargo run --release -p coffer-server --example load`.)

#[path = "../examples/load/driver.rs"]
mod driver;

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_agents_heartbeat_and_poll_without_errors() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = coffer_server::config::Config::new(
        dir.path().to_owned(),
        url::Url::parse(&format!("http://{addr}")).unwrap(),
    );
    config.enrol_per_minute = 10_000;
    let started = coffer_server::Server::open(config, None).unwrap();
    let admin = started.admin_token.as_ref().unwrap().to_string();
    tokio::spawn(coffer_server::server::serve(
        listener,
        started.state,
        std::future::pending(),
    ));
    let report = driver::run(&driver::Options {
        base: format!("http://{addr}"),
        admin,
        agents: 50,
        duration: Duration::from_secs(2),
        interval: Duration::from_millis(200),
        poll_wait: 0,
        // A listing and two puts a round: the presign path under load, too.
        presigns: 3,
    })
    .await
    .unwrap();
    assert_eq!(report.errors, 0, "{:?}", report.first_errors);
    assert!(report.requests >= 100, "{report:?}");
}

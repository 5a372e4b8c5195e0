//! The demo and the token refresh against a real Aurora DSQL cluster, which CI cannot reach:
//! ignored by default, run with
//! `CLUSTER_ENDPOINT=… cargo test -p app --test suite real_cluster -- --ignored` (AWS credentials in
//! the default chain). As `admin`, and also as `CLUSTER_USER` when that is another user
//! (onboard it first with `app user create NAME --iam-role ARN`). Run without a cluster
//! configured, they fail and say what to set.

use std::time::Duration;

use app::config::Config;
use app::dsql::ADMIN_USER;
use app::dsql::retry::RetryPolicy;
use app::session::Session;

/// Why these tests are ignored by default.
const NEEDS_A_CLUSTER: &str = "needs an Aurora DSQL cluster: set CLUSTER_ENDPOINT and AWS \
                               credentials, then run with --ignored";

/// The configuration for `user`, from the environment; fails the test when no cluster is
/// configured, since it was asked to run against one.
fn cluster_config(user: &str, extra: &[(&str, &str)]) -> Config {
    assert!(
        std::env::var_os("CLUSTER_ENDPOINT").is_some(),
        "CLUSTER_ENDPOINT is not set: this test {NEEDS_A_CLUSTER}"
    );
    Config::from_vars(|name| {
        extra
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| (*value).to_owned())
            .or_else(|| (name == "CLUSTER_USER").then(|| user.to_owned()))
            .or_else(|| std::env::var(name).ok())
    })
    .expect("a valid cluster configuration")
}

/// `admin`, and `CLUSTER_USER` if it names someone else.
fn users() -> Vec<String> {
    let mut users = vec![ADMIN_USER.to_owned()];
    if let Ok(user) = std::env::var("CLUSTER_USER")
        && user != ADMIN_USER
        && !user.is_empty()
    {
        users.push(user);
    }
    users
}

#[tokio::test]
#[ignore = "needs an Aurora DSQL cluster: set CLUSTER_ENDPOINT and AWS credentials, then run with --ignored"]
async fn the_demo_runs_on_a_real_cluster() {
    for user in users() {
        let config = cluster_config(&user, &[]);
        let session = Session::open(&config)
            .await
            .expect("connect to the cluster");
        let db = session.db();
        app::demo::migrate(&db).await.expect("migrate");
        let mut lines = Vec::new();
        let summary = app::demo::run(&db, &RetryPolicy::default(), |line| lines.push(line))
            .await
            .unwrap_or_else(|e| panic!("demo as {user}: {e}"));
        assert_eq!(lines.len(), 12, "{lines:#?}");
        assert_eq!(summary.visit_count, 2);
        assert_eq!(summary.deleted, 12);
        session.close().await;
    }
}

#[tokio::test]
#[ignore = "needs an Aurora DSQL cluster: set CLUSTER_ENDPOINT and AWS credentials, then run with --ignored"]
async fn the_pool_refreshes_its_token_on_a_real_cluster() {
    for user in users() {
        let config = cluster_config(&user, &[("DSQL_TOKEN_LIFETIME_SECS", "10")]);
        let session = Session::open(&config)
            .await
            .expect("connect to the cluster");
        let status = session.pool().status();
        crate::common::eventually(
            Duration::from_secs(60),
            "two refreshes of 10-second tokens",
            || async { (status.successes() >= 2).then_some(()) },
        )
        .await;
        // A connection opened now must use a refreshed token: the first one has expired.
        let pool = session.pool().pool();
        let held = pool.acquire().await.expect("a connection").detach();
        drop(held);
        let mut fresh = pool
            .acquire()
            .await
            .expect("a new connection after the refresh");
        sqlx::query("SELECT 1")
            .execute(&mut *fresh)
            .await
            .expect("query");
        drop(fresh);
        session.close().await;
    }
}

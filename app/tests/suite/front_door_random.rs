//! Random input against a live front door: random bytes where the opening should be, and random
//! (well-framed) messages from a logged-in client. Whatever a client sends, the front door and
//! the server behind it keep serving everyone else: after every case, a new login through the
//! front door runs a query.
#![cfg(feature = "front-door")]

use crate::common;

use std::time::Duration;

use app::local::front_door::wire;
use common::door::{Door, door};
use common::raw::{logged_in, read_until_closed};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use sqlx::Connection;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the front door may keep a connection open after the client has ended its side.
const CLOSE_WITHIN: Duration = Duration::from_secs(10);

/// The tags a client sends (and a few it never should), for the random messages.
const CLIENT_TAGS: &[u8] = b"QPBEDSHCFdcfpXx\x00\xff";

/// Ends the client's side and reads until the front door closes the connection too, so the
/// front door is not stuck writing to a client that stopped reading; panics if it keeps the
/// connection open.
async fn drain<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) {
    let _ = stream.shutdown().await;
    read_until_closed(stream, CLOSE_WITHIN).await;
}

/// Whether a new login through the front door runs `SELECT 1`.
async fn still_serves(door: &Door, database: &str) -> bool {
    let source = door.good_tokens("admin").await;
    match door.connect(database, "admin", &source).await {
        Ok(mut conn) => {
            let one: Result<i32, _> = sqlx::query_scalar("SELECT 1").fetch_one(&mut conn).await;
            let _ = conn.close().await;
            one.is_ok()
        }
        Err(_) => false,
    }
}

/// Random client messages: a tag from [`CLIENT_TAGS`] and up to 48 random bytes each.
fn messages() -> impl Strategy<Value = Vec<(u8, Vec<u8>)>> {
    prop::collection::vec(
        (
            prop::sample::select(CLIENT_TAGS),
            prop::collection::vec(any::<u8>(), 0..48),
        ),
        1..8,
    )
}

#[test]
fn random_openings_and_messages_never_stop_the_front_door() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let (door, database) = runtime.block_on(async {
        let door = door().await;
        let database = common::fresh_database("front_door_random").await;
        (door, database)
    });
    let mut runner = TestRunner::new(Config {
        cases: 24,
        ..Config::default()
    });
    let openings = prop::collection::vec(any::<u8>(), 0..64);
    runner
        .run(&openings, |bytes| {
            runtime.block_on(async {
                let mut tcp = TcpStream::connect(("127.0.0.1", door.port()))
                    .await
                    .expect("reach the front door");
                let _ = tcp.write_all(&bytes).await;
                drain(&mut tcp).await;
            });
            prop_assert!(runtime.block_on(still_serves(&door, &database)));
            Ok(())
        })
        .expect("random openings");
    runner
        .run(&messages(), |messages| {
            runtime.block_on(async {
                let mut stream = logged_in(&door, &database).await;
                let mut out = Vec::new();
                for (tag, body) in &messages {
                    wire::put_message(&mut out, *tag, body);
                }
                // And a well-formed end, so a session that survived answers it.
                wire::put_message(&mut out, b'S', b"");
                wire::put_message(&mut out, b'Q', b"SELECT 1\0");
                let _ = stream.write_all(&out).await;
                let _ = stream.flush().await;
                drain(&mut stream).await;
            });
            prop_assert!(runtime.block_on(still_serves(&door, &database)));
            Ok(())
        })
        .expect("random messages");
}

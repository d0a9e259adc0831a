//! The agent's socket takes a lane only with a number asked for, once,
//! and the token; the lanes come out in the join's order; a connection
//! that says anything else is dropped and the others are waited for.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::time::Instant;

use super::*;
use router::lane_rules::socket_hello;

/// Connect to `prepared`'s socket and send `hello`, then `tag`.
async fn lane(prepared: &Prepared, hello: Vec<u8>, tag: u8) -> UnixStream {
    let mut stream = UnixStream::connect(prepared.dir.join(SOCKET_NAME))
        .await
        .unwrap();
    stream.write_all(&hello).await.unwrap();
    stream.write_all(&[tag]).await.unwrap();
    stream
}

/// Half a second from now.
fn soon() -> Instant {
    Instant::now() + Duration::from_millis(500)
}

/// The first byte after the hello on each reader.
async fn tags(readers: &mut [LaneRead]) -> Vec<u8> {
    let mut tags = Vec::new();
    for reader in readers {
        let mut tag = [0u8];
        reader.read_exact(&mut tag).await.unwrap();
        tags.push(tag[0]);
    }
    tags
}

#[tokio::test]
async fn lanes_on_the_socket_come_out_in_the_joins_order_whatever_order_they_connect_in() {
    let prepared = prepare(3).unwrap();
    let token = prepared.token;
    let _three = lane(&prepared, socket_hello(3, &token), 30).await;
    let _one = lane(&prepared, socket_hello(1, &token), 10).await;
    let mut readers = prepared.accept(&[1, 3], soon()).await.unwrap();
    assert_eq!(tags(&mut readers).await, [10, 30]);
}

#[tokio::test]
async fn a_wrong_token_an_unasked_number_a_number_twice_or_silence_is_dropped() {
    let prepared = prepare(3).unwrap();
    let token = prepared.token;
    let mut wrong = token;
    wrong[5] ^= 1;
    let _silent = UnixStream::connect(prepared.dir.join(SOCKET_NAME))
        .await
        .unwrap();
    let _bad = lane(&prepared, socket_hello(1, &wrong), 0).await;
    let _unasked = lane(&prepared, socket_hello(2, &token), 0).await;
    let _zero = lane(&prepared, socket_hello(0, &token), 0).await;
    let _one = lane(&prepared, socket_hello(1, &token), 11).await;
    let _again = lane(&prepared, socket_hello(1, &token), 0).await;
    let _three = lane(&prepared, socket_hello(3, &token), 33).await;
    let mut readers = prepared.accept(&[1, 3], soon()).await.unwrap();
    assert_eq!(tags(&mut readers).await, [11, 33]);
}

#[tokio::test]
async fn without_every_lane_asked_for_the_join_fails_at_its_deadline_with_the_last_refusal() {
    let prepared = prepare(3).unwrap();
    let token = prepared.token;
    let mut wrong = token;
    wrong[0] ^= 1;
    let _one = lane(&prepared, socket_hello(1, &token), 0).await;
    let _bad = lane(&prepared, socket_hello(3, &wrong), 0).await;
    let e = prepared.accept(&[1, 3], soon()).await.err().unwrap();
    assert!(matches!(e, LanesFailure::WrongToken(3)), "{e}");
    let prepared = prepare(1).unwrap();
    let _silent = UnixStream::connect(prepared.dir.join(SOCKET_NAME))
        .await
        .unwrap();
    let e = prepared.accept(&[1], soon()).await.err().unwrap();
    assert!(matches!(e, LanesFailure::NoConnection), "{e}");
}

#[tokio::test]
async fn what_was_made_is_gone_once_dropped_and_forgotten_by_the_agent() {
    let prepared = prepare(2).unwrap();
    let dir = prepared.dir.clone();
    let names = prepared.names.clone();
    assert!(dir.join(SOCKET_NAME).exists() && dir.join("2").exists());
    assert_eq!(
        names.lock().unwrap().len(),
        4,
        "the socket, 2 FIFOs, the directory"
    );
    drop(prepared);
    assert!(!dir.exists(), "{dir:?} is left");
    // What the agent would remove when it ends: nothing, since the name
    // may be anyone's now.
    assert!(names.lock().unwrap().is_empty());
}

/// Made ahead of a push that never came: an agent that ends removes it.
#[tokio::test]
async fn what_was_made_and_never_joined_is_gone_when_the_agent_ends() {
    let router = router::Router::new(1, vec![0], 1 << 20);
    let mut lanes = Lanes::new(router.clone(), Staged::default());
    lanes.on_request(LanesRequest { lanes: 3 }, 0, 1000).await;
    let dir = lanes.prepared.as_ref().unwrap().dir.clone();
    assert!(dir.join(SOCKET_NAME).exists() && dir.join("3").exists());
    drop(lanes);
    assert!(!dir.exists(), "{dir:?} is left");
}

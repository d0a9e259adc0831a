use super::*;
use crate::connection::{FrameReader, FrameWriter};
use crate::router::turn::TURN_BYTES;
use bytes::Bytes;
use proto::message::handle;
use std::time::Duration;

fn data(dst: ContextId, src: ContextId, auth: ContextId, h: Handle, reply_to: Handle) -> Frame {
    Frame::data(
        Header {
            dst,
            src,
            auth,
            handle: h,
            reply_to,
        },
        Bytes::from_static(b"x"),
    )
}

#[tokio::test]
async fn routes_down_up_and_locally() {
    let r = Router::new(1, vec![0], 1 << 20);
    let (parent, mut prx) = r.add_stream("parent", 0, StreamRole::Parent, 16).await;
    let (child, mut crx) = r.add_stream("child", 2, StreamRole::Child, 16).await;
    assert_eq!(prx.try_recv().unwrap().header.handle, handle::ADD_ROUTE);
    let mut local = r.register_inbox(&[500], 4);

    r.route(data(1, 0, 0, 500, 0), Some(parent)).await;
    assert_eq!(local.try_recv().unwrap().header.handle, 500);
    r.route(data(2, 0, 0, 7, 0), Some(parent)).await;
    assert_eq!(crx.try_recv().unwrap().header.dst, 2);
    r.route(data(0, 2, 2, 7, 0), Some(child)).await;
    assert_eq!(prx.try_recv().unwrap().header.dst, 0);
    // Unknown handle: dead reply to the sender's reply_to.
    r.route(data(1, 2, 2, 4242, 1234), Some(child)).await;
    let dead = crx.try_recv().unwrap();
    assert!(dead.is_dead());
    assert_eq!(dead.header.handle, 1234);
    assert!(dead.dead_reason().contains("invalid handle"));
}

#[tokio::test]
async fn forged_authority_is_dropped() {
    let r = Router::new(1, vec![0], 1 << 20);
    let (_, mut prx) = r.add_stream("parent", 0, StreamRole::Parent, 16).await;
    let (child, _crx) = r.add_stream("child", 2, StreamRole::Child, 16).await;
    let announced = prx.try_recv().unwrap();
    assert_eq!(announced.header.handle, handle::ADD_ROUTE);
    let mut spawn = r.register_inbox(&[handle::SPAWN], 4);
    // The child claims the host's authority: dropped, and the child
    // is cut off (its route goes, and the parent hears so).
    r.route(data(1, 0, 0, handle::SPAWN, 0), Some(child)).await;
    assert!(spawn.try_recv().is_err());
    assert!(!r.has_route(2));
    assert_eq!(prx.try_recv().unwrap().header.handle, handle::DEL_ROUTE);
    r.route(data(0, 2, 0, 9, 0), Some(child)).await;
    assert!(prx.try_recv().is_err());
}

#[tokio::test]
async fn add_route_propagates_and_loss_is_reported() {
    let r = Router::new(1, vec![0], 1 << 20);
    let (parent, mut prx) = r.add_stream("parent", 0, StreamRole::Parent, 16).await;
    let (child, _) = r.add_stream("child", 2, StreamRole::Child, 16).await;
    let announced = prx.try_recv().unwrap();
    assert_eq!(
        announced
            .decode_cbor::<RouteUpdate>("route")
            .unwrap()
            .context,
        2
    );
    let add = Frame::cbor(
        Header {
            dst: 1,
            src: 2,
            auth: 2,
            handle: handle::ADD_ROUTE,
            reply_to: 0,
        },
        &RouteUpdate {
            context: 3,
            reason: String::new(),
        },
    );
    // Only a route that was asked for: the host's CONNECT for context 3
    // passes through us down to 2.
    r.route(add.clone(), Some(child)).await;
    assert!(!r.has_route(3), "a claim nobody asked for");
    let (child, mut crx) = r.add_stream("child", 2, StreamRole::Child, 16).await;
    assert_eq!(prx.try_recv().unwrap().header.handle, handle::DEL_ROUTE);
    assert_eq!(prx.try_recv().unwrap().header.handle, handle::ADD_ROUTE);
    let connect = proto::message::ConnectRequest {
        new_id: 3,
        hop: proto::hop::Hop::Local,
        name: "local".into(),
        log_level: 0,
        password: None,
        agent_dir: None,
    };
    r.route(
        Frame::cbor(
            Header {
                dst: 2,
                src: 0,
                auth: 0,
                handle: handle::CONNECT,
                reply_to: 0,
            },
            &connect,
        ),
        Some(parent),
    )
    .await;
    assert_eq!(crx.try_recv().unwrap().header.handle, handle::CONNECT);
    r.route(add, Some(child)).await;
    let mut events = r.subscribe();
    let up = prx.try_recv().unwrap();
    assert_eq!(up.header.handle, handle::ADD_ROUTE);
    assert!(r.has_route(3));
    r.route(data(3, 0, 0, 7, 0), None).await;
    assert_eq!(crx.try_recv().unwrap().header.dst, 3);
    r.remove_stream(child, "child died").await;
    let mut lost: Vec<ContextId> = Vec::new();
    while let Ok(RouterEvent::ContextLost { context, .. }) = events.try_recv() {
        lost.push(context);
    }
    lost.sort();
    assert_eq!(lost, vec![2, 3]);
    assert!(!r.has_route(3));
    let mut dels = 0;
    while let Ok(f) = prx.try_recv() {
        assert_eq!(f.header.handle, handle::DEL_ROUTE);
        dels += 1;
    }
    assert_eq!(dels, 2);
}

#[tokio::test]
async fn host_without_route_answers_dead() {
    let r = Router::new(0, vec![], 1 << 20);
    let (h, mut rx) = r.alloc_reply_handle(5);
    r.send(Frame::data(
        Header {
            dst: 5,
            src: 0,
            auth: 0,
            handle: 7,
            reply_to: h,
        },
        Bytes::new(),
    ))
    .await;
    let dead = rx.try_recv().unwrap();
    assert!(dead.is_dead());
    assert!(dead.dead_reason().contains("no route"));
}

/// A consumer that does not read makes senders wait once its queue is
/// full; nothing piles up, and reading lets them go on.
#[tokio::test]
async fn a_full_queue_makes_senders_wait() {
    let r = Router::new(0, vec![], 1 << 20);
    let (_, mut rx) = r.add_stream("slow", 2, StreamRole::Child, 3).await;
    for _ in 0..3 {
        tokio::time::timeout(Duration::from_secs(5), r.send(data(2, 0, 0, 7, 0)))
            .await
            .expect("room in the queue");
    }
    let r2 = r.clone();
    let waiting = tokio::spawn(async move { r2.send(data(2, 0, 0, 7, 0)).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished(), "the fourth frame waits for room");
    rx.recv().await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("a read makes room")
        .unwrap();
}

/// A session's inbox takes from its agent no more than the bytes its
/// credit allows in flight: one frame more, and the agent is cut off
/// while it arrives, not when (or if) the session reads it.
#[tokio::test]
async fn a_session_inbox_is_bounded_in_bytes_on_arrival() {
    use crate::router::stream::SESSION_QUEUE_BYTES;
    let r = Router::new(0, vec![], 4 << 20);
    let (agent, _arx) = r.add_stream("agent", 1, StreamRole::Child, 16).await;
    let (session, mut inbox) = r.add_session_stream("session", 1 << 24).await;
    r.bind_session(session, 1);
    let chunk = 1 << 20;
    let fits = SESSION_QUEUE_BYTES / chunk;
    for _ in 0..fits {
        let mut f = data(1 << 24, 1, 1, handle::SESSION_STDOUT, 0);
        f.payload = Bytes::from(vec![0u8; chunk]);
        tokio::time::timeout(Duration::from_secs(5), r.route(f, Some(agent)))
            .await
            .expect("within the bound nothing waits");
    }
    assert!(r.has_route(1));
    let mut f = data(1 << 24, 1, 1, handle::SESSION_STDOUT, 0);
    f.payload = Bytes::from(vec![0u8; chunk]);
    tokio::time::timeout(Duration::from_secs(5), r.route(f, Some(agent)))
        .await
        .expect("beyond the bound nothing waits either");
    assert!(!r.has_route(1), "the agent is cut off");
    let mut taken = 0;
    while inbox.try_recv().is_ok() {
        taken += 1;
    }
    assert_eq!(taken, fits);
}

/// Bulk senders wait once a stream's queue holds its budget; they go on
/// as the writer drains it, and a stream's removal releases them.
#[tokio::test]
async fn paced_senders_wait_for_the_write_queue() {
    let r = Router::new(1, vec![0], 1 << 20);
    // Nobody reads the far end yet: the writer stalls after 4 KiB.
    let (near, far) = tokio::io::duplex(4096);
    let sid = r
        .attach_writer("child", 2, StreamRole::Child, FrameWriter::new(near))
        .await;
    let chunk = STREAM_QUEUE_BUDGET / 4;
    let frame = move || {
        let mut f = data(2, 1, 1, handle::SESSION_STDIN, 0);
        f.payload = Bytes::from(vec![1u8; chunk]);
        f
    };
    for _ in 0..4 {
        tokio::time::timeout(Duration::from_secs(5), r.send_paced(frame()))
            .await
            .expect("within the budget a paced send does not wait");
    }
    let r2 = r.clone();
    let waiting = tokio::spawn(async move { r2.send_paced(frame()).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished(), "a fifth quarter must wait");
    // Draining the stream lets it through.
    let mut reader = FrameReader::new(far, 1 << 20);
    for _ in 0..5 {
        let f = reader.read_frame().await.unwrap().unwrap();
        assert_eq!(f.payload.len(), chunk);
    }
    tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .unwrap()
        .unwrap();
    // With the reader stalled again, removing the stream frees waiters.
    for _ in 0..4 {
        r.send_paced(frame()).await;
    }
    let r3 = r.clone();
    let blocked = tokio::spawn(async move { r3.send_paced(frame()).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    r.remove_stream(sid, "test").await;
    tokio::time::timeout(Duration::from_secs(5), blocked)
        .await
        .expect("removal releases paced senders")
        .unwrap();
}

/// Turns at a stream are exclusive, granted in order, and given back by
/// dropping them; there is no turn toward a context nothing leads to.
#[tokio::test]
async fn turns_are_exclusive_and_in_order() {
    let r = Router::new(1, vec![0], 1 << 20);
    let (_, _rx) = r.add_stream("child", 2, StreamRole::Child, 16).await;
    assert!(r.take_turn(9).await.is_none(), "no stream leads to 9");
    let mut first = r.take_turn(2).await.expect("a turn");
    assert!(first.spend(TURN_BYTES - 1));
    assert!(!first.spend(1), "a turn is worth TURN_BYTES");
    let (order_tx, mut order) = mpsc::channel(4);
    for n in [1, 2] {
        let (r, order_tx) = (r.clone(), order_tx.clone());
        tokio::spawn(async move {
            let _turn = r.take_turn(2).await;
            order_tx.send(n).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        order.try_recv().is_err(),
        "nobody goes while the turn is held"
    );
    drop(first);
    assert_eq!(order.recv().await, Some(1));
    assert_eq!(order.recv().await, Some(2));
}

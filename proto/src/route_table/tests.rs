use super::*;
use proptest::prelude::*;

const A: StreamId = 1; // agent 1, and agent 3 behind it
const B: StreamId = 2; // agent 2
const S_B: StreamId = 10; // a session that agent 2 runs
const S_A: StreamId = 11; // a session that agent 3 runs
const UNBOUND: StreamId = 12; // a session not started yet
const SESSION_B: ContextId = 1 << 24;
const SESSION_A: ContextId = (1 << 24) + 1;
const SESSION_NEW: ContextId = (1 << 24) + 2;

/// The host with two agents, one more behind the first, and sessions.
fn host() -> RouteTable {
    let mut t = RouteTable::new(0, vec![]);
    t.add(A, StreamRole::Child, 1, false);
    t.add(B, StreamRole::Child, 2, false);
    t.expect_route(3, A);
    assert_eq!(t.route_update(A, 1, 3, true), Ok(Accepted::Added(3)));
    t.add(S_B, StreamRole::Child, SESSION_B, true);
    t.bind(S_B, 2);
    t.add(S_A, StreamRole::Child, SESSION_A, true);
    t.bind(S_A, 3);
    t.add(UNBOUND, StreamRole::Child, SESSION_NEW, true);
    t.bind_handle(2000, 2);
    t
}

fn h(dst: ContextId, src: ContextId, auth: ContextId, handle: Handle) -> Header {
    Header {
        dst,
        src,
        auth,
        handle,
        reply_to: 0,
    }
}

#[test]
fn a_session_takes_output_only_from_its_agent() {
    let t = host();
    let out = handle::SESSION_STDOUT;
    assert_eq!(
        t.decide(&h(SESSION_B, 2, 2, out), Some(B)),
        Decision::Forward(S_B)
    );
    // Agent 1 writes into agent 2's session, as itself or as agent 2.
    assert_eq!(
        t.decide(&h(SESSION_B, 1, 1, out), Some(A)),
        Decision::Refused(Refusal::Sibling(SESSION_B))
    );
    assert_eq!(
        t.decide(&h(SESSION_B, 2, 1, out), Some(A)),
        Decision::Refused(Refusal::Source(2))
    );
    // Agent 3's session, through agent 1: its output, and agent 1's
    // dead messages about it; not agent 1 speaking for itself.
    assert_eq!(
        t.decide(&h(SESSION_A, 3, 3, out), Some(A)),
        Decision::Forward(S_A)
    );
    let mut dead = h(SESSION_A, 1, 1, out);
    dead.reply_to = handle::IS_DEAD;
    assert_eq!(t.decide(&dead, Some(A)), Decision::Forward(S_A));
    assert_eq!(
        t.decide(&h(SESSION_A, 1, 1, out), Some(A)),
        Decision::Refused(Refusal::Sibling(SESSION_A))
    );
    // Nobody's frames reach a session before it is bound.
    assert_eq!(
        t.decide(&h(SESSION_NEW, 2, 2, out), Some(B)),
        Decision::Refused(Refusal::Sibling(SESSION_NEW))
    );
    // The host itself always may.
    assert_eq!(
        t.decide(&h(SESSION_NEW, 0, 0, out), None),
        Decision::Forward(UNBOUND)
    );
}

#[test]
fn children_reach_neither_siblings_nor_themselves() {
    let t = host();
    let stdin = handle::SESSION_STDIN;
    // Agent 1 feeds stdin to a session on agent 2, as the session.
    assert_eq!(
        t.decide(&h(2, SESSION_B, SESSION_B, stdin), Some(A)),
        Decision::Refused(Refusal::Authority(SESSION_B))
    );
    assert_eq!(
        t.decide(&h(2, 1, 1, handle::SPAWN), Some(A)),
        Decision::Refused(Refusal::Sibling(2))
    );
    assert_eq!(
        t.decide(&h(3, 1, 1, stdin), Some(A)),
        Decision::Refused(Refusal::Reflected(3))
    );
    assert_eq!(
        t.decide(&h(1, 1, 1, stdin), Some(A)),
        Decision::Refused(Refusal::Reflected(1))
    );
}

#[test]
fn a_reply_handle_takes_answers_from_whom_it_asked() {
    let t = host();
    assert_eq!(t.decide(&h(0, 2, 2, 2000), Some(B)), Decision::Local);
    assert_eq!(
        t.decide(&h(0, 1, 1, 2000), Some(A)),
        Decision::Refused(Refusal::BoundHandle(2000))
    );
    assert_eq!(t.decide(&h(0, 1, 1, 2001), Some(A)), Decision::Local);
}

#[test]
fn routes_are_claimed_only_as_asked() {
    let mut t = host();
    // Agent 1 pre-claims the ids the host hands out next.
    for ctx in 4..8 {
        assert_eq!(
            t.route_update(A, 1, ctx, true),
            Err(ClaimRefused::NotAsked(ctx))
        );
    }
    // The host asks agent 2 for context 4: only agent 2 may claim it.
    t.expect_route(4, B);
    assert_eq!(
        t.route_update(A, 1, 4, true),
        Err(ClaimRefused::NotAsked(4))
    );
    assert_eq!(t.route_update(B, 3, 4, true), Err(ClaimRefused::NotAChild));
    assert_eq!(t.route_update(B, 2, 4, true), Ok(Accepted::Added(4)));
    assert_eq!(
        t.route_update(B, 2, 4, true),
        Err(ClaimRefused::AlreadyRouted(4))
    );
    assert_eq!(t.toward(4), Some(B));
    // Nobody claims the host, a session, or another's route, or drops one.
    assert_eq!(
        t.route_update(A, 1, 0, true),
        Err(ClaimRefused::Ancestor(0))
    );
    assert_eq!(
        t.route_update(A, 1, SESSION_B, true),
        Err(ClaimRefused::AlreadyRouted(SESSION_B))
    );
    assert_eq!(
        t.route_update(A, 1, 4, false),
        Err(ClaimRefused::NotRouted(4))
    );
    assert_eq!(
        t.route_update(S_B, SESSION_B, 9, true),
        Err(ClaimRefused::NotAChild)
    );
    assert_eq!(t.route_update(B, 2, 4, false), Ok(Accepted::Removed(4)));
}

#[test]
fn an_agent_obeys_only_its_parent_and_passes_claims_up_as_asked() {
    // Agent 1: parent the host, child agent 2.
    let mut t = RouteTable::new(1, vec![0]);
    t.add(100, StreamRole::Parent, 0, false);
    t.add(101, StreamRole::Child, 2, false);
    assert_eq!(
        t.decide(&h(1, 0, 0, handle::SPAWN), Some(100)),
        Decision::Local
    );
    assert_eq!(
        t.decide(&h(1, SESSION_B, SESSION_B, 121), Some(100)),
        Decision::Local
    );
    // The child speaks as the host or as a session.
    assert_eq!(
        t.decide(&h(1, 0, 0, handle::SPAWN), Some(101)),
        Decision::Refused(Refusal::Authority(0))
    );
    assert_eq!(
        t.decide(&h(1, SESSION_B, SESSION_B, 121), Some(101)),
        Decision::Refused(Refusal::Authority(SESSION_B))
    );
    // Its output goes up; the parent may not speak as the child.
    assert_eq!(
        t.decide(&h(SESSION_B, 2, 2, 123), Some(101)),
        Decision::Forward(100)
    );
    assert_eq!(
        t.decide(&h(1, 2, 0, 121), Some(100)),
        Decision::Refused(Refusal::Source(2))
    );
    // A frame from the parent for nobody below goes nowhere, not back.
    assert_eq!(
        t.decide(&h(9, 0, 0, 121), Some(100)),
        Decision::Undeliverable("no route")
    );
    t.expect_route(3, 101);
    assert_eq!(t.route_update(101, 2, 3, true), Ok(Accepted::Added(3)));
    assert_eq!(
        t.route_update(100, 0, 4, true),
        Err(ClaimRefused::NotAChild)
    );
}

#[test]
fn pending_connects_are_bounded() {
    let mut t = RouteTable::new(0, vec![]);
    t.add(A, StreamRole::Child, 1, false);
    for n in 0..(PENDING_CONNECTS as u32 + 10) {
        t.expect_route(100 + n, A);
    }
    assert_eq!(t.pending.len(), PENDING_CONNECTS);
    assert_eq!(
        t.route_update(A, 1, 100, true),
        Err(ClaimRefused::NotAsked(100))
    );
    assert_eq!(t.route_update(A, 1, 200, true), Ok(Accepted::Added(200)));
    t.remove(A);
    assert!(t.pending.is_empty());
}

/// Which context stream `sid` may speak for: the contexts behind it.
fn behind(t: &RouteTable, sid: StreamId) -> Vec<ContextId> {
    t.link(sid)
        .map(|l| l.routed.iter().copied().collect())
        .unwrap_or_default()
}

proptest! {
    /// Whatever header a hostile agent 1 (or 3 behind it) sends, the
    /// frame reaches no stream but a session that agent 1's subtree
    /// runs, and is never taken as another context's.
    #[test]
    fn a_hostile_child_reaches_only_its_own(
        dst in prop_oneof![0u32..6, (1u32 << 24)..(1 << 24) + 4, any::<u32>()],
        src in prop_oneof![0u32..6, (1u32 << 24)..(1 << 24) + 4, any::<u32>()],
        auth in prop_oneof![0u32..6, (1u32 << 24)..(1 << 24) + 4, any::<u32>()],
        handle in prop_oneof![Just(2000u32), 100u32..130, any::<u32>()],
        dead in any::<bool>(),
    ) {
        let mut t = host();
        let header = Header { dst, src, auth, handle, reply_to: if dead { handle::IS_DEAD } else { 0 } };
        let mine = behind(&t, A);
        match t.decide(&header, Some(A)) {
            Decision::Forward(to) => {
                prop_assert_eq!(to, S_A);
                prop_assert!(mine.contains(&src));
            }
            Decision::Local => {
                prop_assert!(mine.contains(&src) && mine.contains(&auth));
                prop_assert!(handle != 2000);
            }
            Decision::RouteUpdate => {
                prop_assert!(mine.contains(&src));
                // No claim succeeds: nothing was asked of agent 1.
                let update = t.route_update(A, src, dst.wrapping_add(handle), true);
                prop_assert!(update.is_err());
            }
            Decision::Refused(_) | Decision::Undeliverable(_) => {}
        }
    }
}

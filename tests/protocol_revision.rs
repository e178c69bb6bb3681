//! The protocol revision in the join (`wire::PROTOCOL_REVISION`): a peer of another
//! revision is refused by name at the join, on the host (a join request of another
//! revision) and on the client (an acceptance of another revision), rather than joining
//! and having every state datagram dropped.

use std::time::Instant;

use theta_net::net::token::{mint, JoinSecret};
use theta_net::proto::{
    Channel, Client, Config, ConnId, DisconnectCause, Host, Output, SessionEvent,
};
use theta_net::wire::{self, fb, Message, FILE_IDENTIFIER, PROTOCOL_REVISION, WIRE_VERSION};
use theta_net::{Layout, World};

const UNIX_NOW: u64 = 1_800_000_000;

fn world() -> World {
    let mut world = World::default();
    world.register("r.Value", Layout::Fixed(4)).unwrap();
    world
}

/// A message of `kind` around `payload`, as a peer of any revision would finish it.
fn finish(
    mut fbb: flatbuffers::FlatBufferBuilder<'_>,
    kind: fb::Payload,
    payload: flatbuffers::WIPOffset<flatbuffers::UnionWIPOffset>,
) -> Vec<u8> {
    let message = fb::Message::create(
        &mut fbb,
        &fb::MessageArgs {
            version: WIRE_VERSION,
            payload_type: kind,
            payload: Some(payload),
        },
    );
    fbb.finish(message, Some(FILE_IDENTIFIER));
    fbb.finished_data().to_vec()
}

/// A join request with `token` for a host of `registry_hash`, of protocol `revision`.
fn join_request(token: &str, registry_hash: u64, revision: u16) -> Vec<u8> {
    let mut fbb = flatbuffers::FlatBufferBuilder::new();
    let token = fbb.create_string(token);
    let request = fb::JoinRequest::create(
        &mut fbb,
        &fb::JoinRequestArgs {
            token: Some(token),
            registry_hash,
            revision,
            ..Default::default()
        },
    );
    finish(fbb, fb::Payload::JoinRequest, request.as_union_value())
}

/// What the host answers `request` with: the refusal's reason and message, or `None`
/// when it admitted the peer.
fn host_answer(request: &[u8]) -> Option<(fb::RefuseReason, String)> {
    let secret = JoinSecret::from_bytes([3; 32]);
    let now = Instant::now();
    let mut host = match Host::new(world(), secret, Config::default(), now, [1; 32]) {
        Ok(host) => host,
        Err(e) => panic!("host: {}", e.error),
    };
    host.handle_join(ConnId(1), None, now, UNIX_NOW, request);
    while let Some(output) = host.poll_output() {
        match output {
            Output::Admitted { .. } => return None,
            Output::Send { bytes, .. } => {
                if let Ok(Message::JoinRefused(refused)) = wire::decode(&bytes) {
                    let message = refused.message().unwrap_or_default().to_owned();
                    // The engine hears it too.
                    let event = host.poll_event();
                    assert!(
                        matches!(&event, Some(SessionEvent::JoinRefused { reason, .. }) if *reason == message),
                        "{event:?}"
                    );
                    return Some((refused.reason(), message));
                }
            }
            Output::Close { .. } => {}
        }
    }
    panic!("the host neither admitted nor refused");
}

#[test]
fn the_host_refuses_a_join_request_of_another_revision_by_name() {
    let secret = JoinSecret::from_bytes([3; 32]);
    let hash = world().registry().hash();
    let token = |peer| mint(&secret, peer, UNIX_NOW + 60, None).to_text();
    // The same request of this revision is admitted: only the revision differs below.
    assert_eq!(
        host_answer(&join_request(&token(2), hash, PROTOCOL_REVISION)),
        None
    );
    // Revision 1 (whose requests carry none: 0 reads the same) and a future one.
    for revision in [0, 1, PROTOCOL_REVISION + 1] {
        let (reason, message) = host_answer(&join_request(&token(3), hash, revision))
            .unwrap_or_else(|| panic!("revision {revision} was admitted"));
        assert_eq!(reason, fb::RefuseReason::ProtocolRevision);
        assert!(
            message.contains(&format!("protocol revision {revision}"))
                && message.contains(&format!("this host revision {PROTOCOL_REVISION}")),
            "{message}"
        );
        let update = if revision < PROTOCOL_REVISION {
            "update the client"
        } else {
            "update the host"
        };
        assert!(message.contains(update), "{message}");
    }
}

/// A host's acceptance of protocol `revision`.
fn join_accepted(revision: u16) -> Vec<u8> {
    let mut fbb = flatbuffers::FlatBufferBuilder::new();
    let accepted = fb::JoinAccepted::create(
        &mut fbb,
        &fb::JoinAcceptedArgs {
            peer: 2,
            host_peer: 1,
            tick: 1,
            next_counter: 1,
            revision,
            ..Default::default()
        },
    );
    finish(fbb, fb::Payload::JoinAccepted, accepted.as_union_value())
}

/// What a client does with `accepted`: its first event after it.
fn client_answer(accepted: &[u8]) -> SessionEvent {
    let world = world();
    let now = Instant::now();
    let mut client = Client::new(world.registry(), "token", Config::default(), now).unwrap();
    client.connected(ConnId(1));
    let request = client.poll_output();
    assert!(
        matches!(&request, Some(Output::Send { channel: Channel::Reliable, bytes, .. })
            if matches!(wire::decode(bytes), Ok(Message::JoinRequest(r)) if r.revision() == PROTOCOL_REVISION)),
        "the client's request carries its revision"
    );
    client.handle_stream(ConnId(1), now, accepted);
    client.poll_event().expect("an event")
}

#[test]
fn a_client_leaves_a_host_of_another_revision_by_name() {
    assert!(matches!(
        client_answer(&join_accepted(PROTOCOL_REVISION)),
        SessionEvent::Joined { peer: 2 }
    ));
    for revision in [0, 1, PROTOCOL_REVISION + 1] {
        match client_answer(&join_accepted(revision)) {
            SessionEvent::Disconnected { reason, cause } => {
                assert_eq!(cause, DisconnectCause::Refused);
                assert!(
                    reason.contains(&format!("the host speaks protocol revision {revision}"))
                        && reason.contains(&format!("this client revision {PROTOCOL_REVISION}")),
                    "{reason}"
                );
            }
            other => panic!("revision {revision}: {other:?}"),
        }
    }
}

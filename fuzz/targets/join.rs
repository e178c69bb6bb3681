//! Targets `join_request` and `join_token`: what the host checks before it allocates
//! anything for a peer, and the client's reading of the answer.
//!
//! `join_request`: each record is one connection's first message, as the host reads it
//! (at most [`MAX_JOIN_REQUEST`] bytes, `wire::decode`, the protocol revision, then the
//! resume token or the join token with one `TokenVerifier` for all records, then the
//! registry hash; the component types it carries are read as a room server reads them),
//! or as a client reads the host's answer (`JoinAccepted` of this revision, `JoinRefused`). The session's admission steps
//! are crate-private; they are mirrored here through the public types they use.
//!
//! `join_token`: each record is a time step (its first byte, in minutes) and a token's text,
//! checked by one `TokenVerifier` of capacity [`REPLAY_CAPACITY`].

use std::collections::BTreeSet;

use theta_net::net::token::{JoinSecret, JoinToken, TokenError, TokenVerifier};
use theta_net::wire::registry_bytes::{decode_registry, encode_registry};
use theta_net::wire::{self, Message, PROTOCOL_REVISION};

use super::{fixture, input, Outcome};

/// Largest join request the host reads (as the session bounds it).
pub const MAX_JOIN_REQUEST: usize = theta_net::proto::MAX_JOIN_REQUEST;
/// Used tokens the `join_token` verifier remembers: small, so that a run fills it.
pub const REPLAY_CAPACITY: usize = 4;

/// Checks a token's text with `verifier` at `now` and what an accepted one promises: its
/// claims are the token's, it is unexpired, and the same text is refused as replayed.
fn verify(verifier: &mut TokenVerifier, text: &str, now: u64) -> Result<u16, TokenError> {
    let result = verifier.verify(text, now);
    let parsed = JoinToken::from_text(text);
    match &result {
        Ok(claims) => {
            let token = parsed.as_ref().expect("an accepted token parses");
            assert_eq!(
                (claims.peer(), claims.expires(), claims.nonce()),
                (token.peer(), token.expires(), token.nonce())
            );
            assert!(claims.expires() > now, "accepted an expired token");
            assert_eq!(verifier.verify(text, now), Err(TokenError::Replayed));
        }
        Err(TokenError::Forged | TokenError::Expired { .. } | TokenError::Replayed) => {
            assert!(
                parsed.is_ok(),
                "refused a token it could not parse as forged"
            );
        }
        Err(_) => {}
    }
    if let Ok(token) = parsed {
        // The text form is canonical: lowercase, trimmed.
        assert_eq!(token.to_text(), text.trim().to_ascii_lowercase());
    }
    assert!(
        verifier.len() <= verifier.capacity(),
        "replay cache over its bound"
    );
    result.map(|claims| claims.peer())
}

/// The component types a join request carries (a room server learns a room's from them),
/// read as the room server reads them: refused, or read back into the same bytes. False
/// when refused.
fn registry_reads_back(request: &theta_net::wire::fb::JoinRequest<'_>) -> bool {
    let Some(types) = request.registry() else {
        return true;
    };
    match decode_registry(types.bytes()) {
        Ok((registry, used)) => {
            let mut again = Vec::new();
            encode_registry(&registry, &mut again);
            assert_eq!(
                &again[..],
                &types.bytes()[..used],
                "the types read back the same"
            );
            true
        }
        Err(_) => false,
    }
}

/// Join requests and their answers (see the module docs). Header bit 0: the host holds a
/// resume token for [`fixture::RESUME_PEER`].
pub fn join_request(data: &[u8]) -> Outcome {
    let (header, records) = input::split(data);
    let mut verifier = TokenVerifier::with_capacity(JoinSecret::from_bytes(fixture::SECRET), 8);
    let registry_hash = fixture::prime().registry.hash();
    let mut resumable = (header & 1 != 0).then_some(fixture::RESUME);
    let mut connected: BTreeSet<u16> = BTreeSet::new();
    let mut outcome = Outcome::default();
    for bytes in records {
        if bytes.len() > MAX_JOIN_REQUEST {
            outcome.refuse();
            continue;
        }
        let output = match wire::decode(bytes) {
            // Another protocol revision is refused first, whatever it presents.
            Ok(Message::JoinRequest(request)) if request.revision() != PROTOCOL_REVISION => None,
            Ok(Message::JoinRequest(request)) if !registry_reads_back(&request) => None,
            Ok(Message::JoinRequest(request)) => match request.resume() {
                Some(resume) => {
                    let presented = resume.bytes();
                    let known = request.peer() == fixture::RESUME_PEER
                        && resumable.is_some_and(|expected| {
                            presented.len() == expected.len()
                                && presented
                                    .iter()
                                    .zip(expected)
                                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                                    == 0
                        });
                    let admitted = known
                        && request.registry_hash() == registry_hash
                        && connected.insert(request.peer());
                    if admitted {
                        // One use.
                        resumable = None;
                    }
                    admitted.then_some(presented.len())
                }
                None => {
                    let token = request.token();
                    let peer = verify(&mut verifier, token, fixture::NOW_UNIX).ok();
                    peer.filter(|&peer| {
                        request.registry_hash() == registry_hash
                            && peer != 0
                            && connected.insert(peer)
                    })
                    .map(|_| token.len())
                }
            },
            // A client leaves a host of another revision.
            Ok(Message::JoinAccepted(accepted)) if accepted.revision() != PROTOCOL_REVISION => None,
            Ok(Message::JoinAccepted(accepted)) => {
                let resume = accepted
                    .resume()
                    .map(|r| r.bytes().to_vec())
                    .unwrap_or_default();
                let _ = (
                    accepted.peer(),
                    accepted.host_peer(),
                    accepted.tick(),
                    accepted.snapshot_chunks(),
                    accepted.next_counter(),
                    accepted.resumed(),
                );
                Some(resume.len())
            }
            Ok(Message::JoinRefused(refused)) => {
                let _ = refused.reason();
                Some(refused.message().unwrap_or("refused").to_owned().len())
            }
            _ => None,
        };
        match output {
            Some(output) => outcome.accept(bytes.len(), output),
            None => outcome.refuse(),
        }
    }
    outcome
}

/// Token texts through one verifier (see the module docs); text that is not UTF-8 never
/// reaches it (a FlatBuffers string is verified UTF-8).
pub fn join_token(data: &[u8]) -> Outcome {
    let (_, records) = input::split(data);
    let mut verifier =
        TokenVerifier::with_capacity(JoinSecret::from_bytes(fixture::SECRET), REPLAY_CAPACITY);
    let mut now = fixture::NOW_UNIX;
    let mut outcome = Outcome::default();
    for record in records {
        let Some((&minutes, text)) = record.split_first() else {
            outcome.refuse();
            continue;
        };
        now += 60 * u64::from(minutes);
        let Ok(text) = std::str::from_utf8(text) else {
            outcome.refuse();
            continue;
        };
        // The CLI's secret parser takes the same kind of text.
        if let Ok(secret) = JoinSecret::from_hex(text) {
            assert_eq!(secret.to_hex(), text.trim().to_ascii_lowercase());
        }
        match verify(&mut verifier, text, now) {
            Ok(_) => outcome.accept(record.len(), std::mem::size_of::<JoinToken>()),
            Err(_) => outcome.refuse(),
        }
    }
    outcome
}

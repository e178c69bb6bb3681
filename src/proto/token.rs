//! Join tokens: the host's admission check, run before it allocates anything for a peer.
//!
//! A token authorises one peer id until an expiry time (Unix seconds) and carries a random
//! nonce so that it can be used once only. It is signed with HMAC-SHA256 under the host's
//! [`JoinSecret`]:
//!
//! ```text
//! tag = HMAC-SHA256(secret, "theta-join-v1" || peer (u16 BE) || expires (u64 BE) || nonce (u64 BE))
//! ```
//!
//! Its text form, short enough to type on a command line, is the lowercase hex of
//! `version (1 byte, = 1) || peer || expires || nonce || tag`: 51 bytes, 102 hex digits.
//!
//! A token for a room of a room server (`theta serve`) is version 2 and names its room;
//! the room id is signed with the rest:
//!
//! ```text
//! tag  = HMAC-SHA256(secret, "theta-join-v2" || peer || expires || nonce || len (u8) || room)
//! text = hex(version (= 2) || peer || expires || nonce || len || room || tag)
//! ```
//!
//! A room server refuses version-1 tokens (they name no room) and a hosted session refuses
//! version-2 ones, each with a reason that says so.
//!
//! The host checks tokens with a [`TokenVerifier`], which keeps a bounded cache of the
//! tokens already used.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;

use super::room_id::{RoomId, MAX_ROOM_ID_BYTES};
use crate::hex::{hex_decode, hex_encode};

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// The token format version of a hosted session's tokens, first byte of the text form.
pub const TOKEN_VERSION: u8 = 1;

/// The token format version of a room's tokens (they name the room).
pub const ROOM_TOKEN_VERSION: u8 = 2;

/// Length in bytes of a version-1 token (version, peer, expires, nonce, tag); the text
/// form has twice as many hex digits. A room's token adds the room id and its length.
pub const TOKEN_LEN: usize = 1 + 2 + 8 + 8 + TAG_LEN;

/// The default bound on the number of unexpired used tokens a [`TokenVerifier`] remembers.
pub const DEFAULT_REPLAY_CAPACITY: usize = 65_536;

/// Domain separation for the HMAC input.
const CONTEXT: &[u8] = b"theta-join-v1";
/// The same for a room's token.
const ROOM_CONTEXT: &[u8] = b"theta-join-v2";
/// HMAC-SHA256 output length.
const TAG_LEN: usize = 32;
/// Length of the signed message of a version-1 token.
const MESSAGE_LEN: usize = CONTEXT.len() + 2 + 8 + 8;
/// Longest signed message (a room's token with the longest room id).
const MAX_MESSAGE_LEN: usize = MESSAGE_LEN + 1 + MAX_ROOM_ID_BYTES;

/// Why a token was refused, or a secret or token could not be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The text is not a token of this format.
    #[error("malformed join token: {0}")]
    Malformed(String),
    /// The tag does not match: the token was not minted with the host's secret, or was
    /// altered.
    #[error("join token forged (bad signature)")]
    Forged,
    /// The token's expiry has passed.
    #[error("join token expired at {expired_at} (Unix seconds; now {now})")]
    Expired {
        /// The token's expiry, Unix seconds.
        expired_at: u64,
        /// The verifier's current time, Unix seconds.
        now: u64,
    },
    /// The token was used before.
    #[error("join token already used")]
    Replayed,
    /// The token is valid but the verifier already remembers its maximum number of
    /// unexpired used tokens, so it could not record this one against replay.
    #[error("join token refused: replay cache full ({capacity} unexpired tokens in use)")]
    ReplayCacheFull {
        /// The verifier's capacity.
        capacity: usize,
    },
    /// A join secret's text form is invalid.
    #[error("invalid join secret: {0}")]
    BadSecret(String),
    /// The system random number generator failed.
    #[error("system random number generator failed")]
    Random,
    /// The token names another room than the one it was presented to, or names a room at
    /// a hosted session, or names none at a room server.
    #[error("{}", wrong_room(token.as_deref(), expected.as_deref()))]
    WrongRoom {
        /// The token's room (`None`: a version-1 token, which names none).
        token: Option<String>,
        /// The room it was presented to (`None`: a hosted session, which has no rooms).
        expected: Option<String>,
    },
}

fn wrong_room(token: Option<&str>, expected: Option<&str>) -> String {
    match (token, expected) {
        (None, Some(room)) => format!(
            "join token names no room (a version-1 token, for a hosted session); room {room:?} is on a room server: mint a token for the room"
        ),
        (Some(room), None) => format!(
            "join token is for room {room:?} on a room server; this host runs a single session"
        ),
        (token, expected) => format!(
            "join token is for room {:?}, not {:?}",
            token.unwrap_or(""),
            expected.unwrap_or("")
        ),
    }
}

/// The host's 32-byte secret for minting and checking join tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinSecret([u8; 32]);

impl JoinSecret {
    /// A fresh random secret from the system's secure random number generator.
    ///
    /// # Panics
    /// If the operating system's random number generator fails (it does not on supported
    /// platforms); [`JoinSecret::try_generate`] reports that as an error instead.
    pub fn generate() -> Self {
        match Self::try_generate() {
            Ok(secret) => secret,
            Err(e) => panic!("cannot generate a join secret: {e}"),
        }
    }

    /// A fresh random secret, or [`TokenError::Random`] if the system's random number
    /// generator fails.
    pub fn try_generate() -> Result<Self, TokenError> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| TokenError::Random)?;
        Ok(Self(bytes))
    }

    /// A secret from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The secret's 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses 64 hex digits (either case; surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self, TokenError> {
        let bytes = hex_decode(text.trim()).map_err(TokenError::BadSecret)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            TokenError::BadSecret(format!(
                "expected 32 bytes (64 hex digits), got {}",
                b.len()
            ))
        })?;
        Ok(Self(bytes))
    }

    /// Lowercase hex, 64 digits.
    pub fn to_hex(&self) -> String {
        hex_encode(&self.0)
    }

    fn key(&self) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, &self.0)
    }
}

impl fmt::Debug for JoinSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JoinSecret(<redacted>)")
    }
}

/// A signed join token. Parsing one ([`JoinToken::from_text`]) does not check it: that is
/// [`TokenVerifier::verify`]'s job.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct JoinToken {
    peer: u16,
    expires: u64,
    nonce: u64,
    room: Option<RoomName>,
    tag: [u8; TAG_LEN],
}

/// A checked room id kept inline, so that a token stays `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct RoomName {
    len: u8,
    bytes: [u8; MAX_ROOM_ID_BYTES],
}

impl RoomName {
    fn new(room: &RoomId) -> RoomName {
        let mut bytes = [0u8; MAX_ROOM_ID_BYTES];
        let id = room.as_str().as_bytes();
        bytes[..id.len()].copy_from_slice(id);
        RoomName {
            len: id.len() as u8,
            bytes,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    fn as_str(&self) -> &str {
        // Only checked room ids (ASCII) are ever stored.
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }
}

impl fmt::Debug for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Signs a token for `peer`, valid until `expires_unix` (Unix seconds, exclusive), with the
/// given nonce or, for `None`, a random one. Every token meant to be used should have its
/// own nonce: a verifier accepts one (peer, nonce) pair once only.
///
/// # Panics
/// With `nonce: None`, if the operating system's random number generator fails (it does
/// not on supported platforms); [`try_mint`] reports that as an error instead.
pub fn mint(secret: &JoinSecret, peer: u16, expires_unix: u64, nonce: Option<u64>) -> JoinToken {
    match try_mint(secret, peer, expires_unix, nonce) {
        Ok(token) => token,
        Err(e) => panic!("cannot mint a join token: {e}"),
    }
}

/// [`mint`], reporting a failure of the system's random number generator as
/// [`TokenError::Random`] instead of panicking.
pub fn try_mint(
    secret: &JoinSecret,
    peer: u16,
    expires_unix: u64,
    nonce: Option<u64>,
) -> Result<JoinToken, TokenError> {
    try_signed(secret, peer, expires_unix, nonce, None)
}

/// Signs a token for `peer` in `room` of a room server (a version-2 token), valid until
/// `expires_unix`; the nonce as for [`mint`].
///
/// # Panics
/// As [`mint`]; [`try_mint_for_room`] reports a random number generator failure instead.
pub fn mint_for_room(
    secret: &JoinSecret,
    room: &RoomId,
    peer: u16,
    expires_unix: u64,
    nonce: Option<u64>,
) -> JoinToken {
    match try_mint_for_room(secret, room, peer, expires_unix, nonce) {
        Ok(token) => token,
        Err(e) => panic!("cannot mint a join token: {e}"),
    }
}

/// [`mint_for_room`], reporting a failure of the system's random number generator as
/// [`TokenError::Random`] instead of panicking.
pub fn try_mint_for_room(
    secret: &JoinSecret,
    room: &RoomId,
    peer: u16,
    expires_unix: u64,
    nonce: Option<u64>,
) -> Result<JoinToken, TokenError> {
    try_signed(secret, peer, expires_unix, nonce, Some(RoomName::new(room)))
}

/// Signs a token with `nonce`, or a random one.
fn try_signed(
    secret: &JoinSecret,
    peer: u16,
    expires: u64,
    nonce: Option<u64>,
    room: Option<RoomName>,
) -> Result<JoinToken, TokenError> {
    let nonce = match nonce {
        Some(n) => n,
        None => random_nonce()?,
    };
    Ok(signed(secret, peer, expires, nonce, room))
}

fn random_nonce() -> Result<u64, TokenError> {
    let mut bytes = [0u8; 8];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| TokenError::Random)?;
    Ok(u64::from_be_bytes(bytes))
}

fn signed(
    secret: &JoinSecret,
    peer: u16,
    expires: u64,
    nonce: u64,
    room: Option<RoomName>,
) -> JoinToken {
    let (message, len) = message(peer, expires, nonce, room.as_ref());
    let signature = hmac::sign(&secret.key(), &message[..len]);
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(signature.as_ref());
    JoinToken {
        peer,
        expires,
        nonce,
        room,
        tag,
    }
}

/// The bytes the tag signs, and how many of the buffer's they are.
fn message(
    peer: u16,
    expires: u64,
    nonce: u64,
    room: Option<&RoomName>,
) -> ([u8; MAX_MESSAGE_LEN], usize) {
    let mut m = [0u8; MAX_MESSAGE_LEN];
    let context = if room.is_some() {
        ROOM_CONTEXT
    } else {
        CONTEXT
    };
    let (head, rest) = m.split_at_mut(context.len());
    head.copy_from_slice(context);
    rest[..2].copy_from_slice(&peer.to_be_bytes());
    rest[2..10].copy_from_slice(&expires.to_be_bytes());
    rest[10..18].copy_from_slice(&nonce.to_be_bytes());
    let mut len = MESSAGE_LEN;
    if let Some(room) = room {
        let id = room.as_bytes();
        rest[18] = room.len;
        rest[19..19 + id.len()].copy_from_slice(id);
        len += 1 + id.len();
    }
    (m, len)
}

impl JoinToken {
    /// The peer id the token authorises.
    pub fn peer(&self) -> u16 {
        self.peer
    }

    /// The expiry, Unix seconds: the token is refused from this second on.
    pub fn expires(&self) -> u64 {
        self.expires
    }

    /// The token's nonce.
    pub fn nonce(&self) -> u64 {
        self.nonce
    }

    /// The room the token admits to (a version-2 token), or `None` for a hosted session's.
    pub fn room(&self) -> Option<&str> {
        self.room.as_ref().map(RoomName::as_str)
    }

    /// The text form: lowercase hex, 102 digits for a hosted session's token, 104 and two
    /// per character of the room id for a room's.
    pub fn to_text(&self) -> String {
        let mut bytes = Vec::with_capacity(TOKEN_LEN + 1 + MAX_ROOM_ID_BYTES);
        bytes.push(match self.room {
            Some(_) => ROOM_TOKEN_VERSION,
            None => TOKEN_VERSION,
        });
        bytes.extend_from_slice(&self.peer.to_be_bytes());
        bytes.extend_from_slice(&self.expires.to_be_bytes());
        bytes.extend_from_slice(&self.nonce.to_be_bytes());
        if let Some(room) = &self.room {
            bytes.push(room.len);
            bytes.extend_from_slice(room.as_bytes());
        }
        bytes.extend_from_slice(&self.tag);
        hex_encode(&bytes)
    }

    /// Parses the text form (hex in either case, surrounding whitespace ignored), without
    /// checking the signature or the expiry.
    pub fn from_text(text: &str) -> Result<Self, TokenError> {
        let text = text.trim();
        let longest = 2 * (TOKEN_LEN + 1 + MAX_ROOM_ID_BYTES);
        // Bounded before decoding: a hostile peer's text is never decoded whole.
        if text.len() < 2 * TOKEN_LEN || text.len() > longest {
            return Err(TokenError::Malformed(format!(
                "expected {} to {longest} hex digits, got {} characters",
                2 * TOKEN_LEN,
                text.len()
            )));
        }
        let bytes = hex_decode(text).map_err(TokenError::Malformed)?;
        let malformed = |what: String| TokenError::Malformed(what);
        let (version, rest) = bytes
            .split_first()
            .ok_or_else(|| malformed("empty".into()))?;
        let fixed = |rest: &[u8]| -> Option<(u16, u64, u64)> {
            Some((
                u16::from_be_bytes(rest.get(..2)?.try_into().ok()?),
                u64::from_be_bytes(rest.get(2..10)?.try_into().ok()?),
                u64::from_be_bytes(rest.get(10..18)?.try_into().ok()?),
            ))
        };
        let (peer, expires, nonce) = fixed(rest).ok_or_else(|| malformed("too short".into()))?;
        let rest = &rest[18..];
        let (room, tag) = match *version {
            TOKEN_VERSION => (None, rest),
            ROOM_TOKEN_VERSION => {
                let (&len, rest) = rest
                    .split_first()
                    .ok_or_else(|| malformed("no room id".into()))?;
                let len = usize::from(len);
                let id = rest
                    .get(..len)
                    .ok_or_else(|| malformed("room id cut short".into()))?;
                let id = std::str::from_utf8(id)
                    .ok()
                    .and_then(|id| RoomId::new(id).ok())
                    .ok_or_else(|| malformed("the room id is not a room id".into()))?;
                (Some(RoomName::new(&id)), &rest[len..])
            }
            other => {
                return Err(malformed(format!(
                    "unsupported version {other} (expected {TOKEN_VERSION}, or {ROOM_TOKEN_VERSION} for a room)"
                )))
            }
        };
        let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| {
            malformed(format!(
                "expected a {TAG_LEN}-byte tag, got {} bytes",
                tag.len()
            ))
        })?;
        Ok(Self {
            peer,
            expires,
            nonce,
            room,
            tag,
        })
    }
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl FromStr for JoinToken {
    type Err = TokenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_text(s)
    }
}

/// What an accepted token grants.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TokenClaims {
    peer: u16,
    expires: u64,
    nonce: u64,
}

impl TokenClaims {
    /// The peer id the token authorises.
    pub fn peer(&self) -> u16 {
        self.peer
    }

    /// The token's expiry, Unix seconds.
    pub fn expires(&self) -> u64 {
        self.expires
    }

    /// The token's nonce.
    pub fn nonce(&self) -> u64 {
        self.nonce
    }
}

/// Checks join tokens against the host's secret and refuses replays.
///
/// It remembers each accepted token's (peer, nonce) until the token expires; expired
/// entries are pruned as time advances. At most `capacity` unexpired tokens are
/// remembered: beyond that a valid new token is refused with
/// [`TokenError::ReplayCacheFull`] rather than letting the cache grow (so tokens should
/// have short lifetimes).
///
/// The verifier's clock never goes back: a `now_unix` older than the latest one seen is
/// taken as the latest one, so that a clock stepping backwards cannot revive a token whose
/// record was already pruned.
pub struct TokenVerifier {
    key: hmac::Key,
    /// The room tokens must name (`None`: a hosted session's tokens name none).
    room: Option<RoomId>,
    /// (peer, nonce) → expiry, of accepted, unexpired tokens.
    used: HashMap<(u16, u64), u64>,
    /// The same entries ordered by expiry, for pruning.
    by_expiry: BTreeSet<(u64, u16, u64)>,
    capacity: usize,
    now: u64,
}

impl TokenVerifier {
    /// A verifier for tokens minted with `secret`, remembering up to
    /// [`DEFAULT_REPLAY_CAPACITY`] used tokens.
    pub fn new(secret: JoinSecret) -> Self {
        Self::with_capacity(secret, DEFAULT_REPLAY_CAPACITY)
    }

    /// A verifier of a room's tokens (version 2, naming `room`), remembering up to
    /// [`DEFAULT_REPLAY_CAPACITY`] used tokens.
    pub fn for_room(secret: JoinSecret, room: RoomId) -> Self {
        let mut verifier = Self::new(secret);
        verifier.room = Some(room);
        verifier
    }

    /// A verifier remembering up to `capacity` unexpired used tokens.
    pub fn with_capacity(secret: JoinSecret, capacity: usize) -> Self {
        Self {
            key: secret.key(),
            room: None,
            used: HashMap::new(),
            by_expiry: BTreeSet::new(),
            capacity,
            now: 0,
        }
    }

    /// Checks a token's text at `now_unix` (Unix seconds), in this order: it parses
    /// ([`TokenError::Malformed`]), its tag is right, compared in constant time
    /// ([`TokenError::Forged`]), it names the verifier's room or, at a hosted session, none
    /// ([`TokenError::WrongRoom`]), it has not expired ([`TokenError::Expired`]), it was not
    /// used before ([`TokenError::Replayed`]), and there is room to remember it
    /// ([`TokenError::ReplayCacheFull`]). Only a token passing all checks is recorded as
    /// used.
    pub fn verify(&mut self, text: &str, now_unix: u64) -> Result<TokenClaims, TokenError> {
        let token = JoinToken::from_text(text)?;
        let (message, len) = message(token.peer, token.expires, token.nonce, token.room.as_ref());
        hmac::verify(&self.key, &message[..len], &token.tag).map_err(|_| TokenError::Forged)?;
        let expected = self.room.as_ref().map(RoomId::as_str);
        if token.room() != expected {
            return Err(TokenError::WrongRoom {
                token: token.room().map(str::to_owned),
                expected: expected.map(str::to_owned),
            });
        }
        self.advance(now_unix);
        if token.expires <= self.now {
            return Err(TokenError::Expired {
                expired_at: token.expires,
                now: self.now,
            });
        }
        let id = (token.peer, token.nonce);
        if self.used.contains_key(&id) {
            return Err(TokenError::Replayed);
        }
        if self.used.len() >= self.capacity {
            return Err(TokenError::ReplayCacheFull {
                capacity: self.capacity,
            });
        }
        self.used.insert(id, token.expires);
        self.by_expiry
            .insert((token.expires, token.peer, token.nonce));
        Ok(TokenClaims {
            peer: token.peer,
            expires: token.expires,
            nonce: token.nonce,
        })
    }

    /// Advances the clock to `now_unix` (if later) and forgets tokens that have expired.
    pub fn prune(&mut self, now_unix: u64) {
        self.advance(now_unix);
    }

    /// The number of used, unexpired tokens remembered.
    pub fn len(&self) -> usize {
        self.used.len()
    }

    /// Whether no used token is remembered.
    pub fn is_empty(&self) -> bool {
        self.used.is_empty()
    }

    /// The bound on remembered tokens.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn advance(&mut self, now_unix: u64) {
        self.now = self.now.max(now_unix);
        while let Some(&(expires, peer, nonce)) = self.by_expiry.first() {
            if expires > self.now {
                break;
            }
            self.by_expiry.pop_first();
            self.used.remove(&(peer, nonce));
        }
    }
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("remembered", &self.used.len())
            .field("capacity", &self.capacity)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn secret() -> JoinSecret {
        JoinSecret::from_bytes([7u8; 32])
    }

    fn token(peer: u16, expires: u64, nonce: u64) -> String {
        mint(&secret(), peer, expires, Some(nonce)).to_text()
    }

    /// Flips one bit of the byte at `index` of a token's text form.
    fn flip_byte(text: &str, index: usize) -> String {
        let mut bytes = hex_decode(text).expect("hex");
        bytes[index] ^= 0x01;
        hex_encode(&bytes)
    }

    #[test]
    fn round_trip() {
        let s = secret();
        let t = mint(&s, 3, NOW + 60, None);
        let text = t.to_text();
        assert_eq!(text.len(), 2 * TOKEN_LEN);
        assert!(text.starts_with("01"));
        assert!(text
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        let parsed = JoinToken::from_text(&text).expect("parse");
        assert_eq!(parsed, t);
        assert_eq!(parsed.peer(), 3);
        assert_eq!(parsed.expires(), NOW + 60);
        assert_eq!(text.parse::<JoinToken>().expect("FromStr"), t);
        assert_eq!(t.to_string(), text);
        // Upper case and surrounding whitespace are accepted.
        assert_eq!(
            JoinToken::from_text(&format!(" {}\n", text.to_uppercase())).expect("upper"),
            t
        );

        let mut v = TokenVerifier::new(s);
        let claims = v.verify(&text, NOW).expect("valid token");
        assert_eq!(claims.peer(), 3);
        assert_eq!(claims.expires(), NOW + 60);
        assert_eq!(claims.nonce(), t.nonce());
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn random_nonces_differ() {
        let a = mint(&secret(), 1, NOW + 60, None);
        let b = try_mint(&secret(), 1, NOW + 60, None).expect("try_mint");
        assert_ne!(a.nonce(), b.nonce());
        assert_ne!(a.to_text(), b.to_text());
    }

    #[test]
    fn forged_tokens_are_refused() {
        let text = token(5, NOW + 60, 42);
        // Every byte after the version: peer, expiry, nonce and tag.
        for index in 1..TOKEN_LEN {
            let mut v = TokenVerifier::new(secret());
            let forged = flip_byte(&text, index);
            assert_eq!(
                v.verify(&forged, NOW),
                Err(TokenError::Forged),
                "byte {index}"
            );
            assert!(v.is_empty(), "a refused token is not recorded");
        }
        // A token minted with another secret.
        let other = JoinSecret::from_bytes([8u8; 32]);
        let foreign = mint(&other, 5, NOW + 60, Some(42)).to_text();
        let mut v = TokenVerifier::new(secret());
        assert_eq!(v.verify(&foreign, NOW), Err(TokenError::Forged));
        // Forgery is reported even when the token would also be expired.
        assert_eq!(
            v.verify(&flip_byte(&token(5, NOW - 1, 1), 40), NOW),
            Err(TokenError::Forged)
        );
        // The original still verifies.
        assert!(v.verify(&text, NOW).is_ok());
        assert_eq!(
            TokenError::Forged.to_string(),
            "join token forged (bad signature)"
        );
    }

    #[test]
    fn expired_tokens_are_refused() {
        let mut v = TokenVerifier::new(secret());
        let err = v.verify(&token(1, NOW, 1), NOW).expect_err("expires now");
        assert_eq!(
            err,
            TokenError::Expired {
                expired_at: NOW,
                now: NOW
            }
        );
        assert!(err
            .to_string()
            .starts_with("join token expired at 1700000000"));
        assert_eq!(
            v.verify(&token(1, NOW - 100, 2), NOW),
            Err(TokenError::Expired {
                expired_at: NOW - 100,
                now: NOW
            })
        );
        assert!(v.is_empty());
        assert!(v.verify(&token(1, NOW + 1, 3), NOW).is_ok());
    }

    #[test]
    fn replayed_tokens_are_refused() {
        let mut v = TokenVerifier::new(secret());
        let text = token(2, NOW + 60, 9);
        assert!(v.verify(&text, NOW).is_ok());
        assert_eq!(v.verify(&text, NOW), Err(TokenError::Replayed));
        assert_eq!(v.verify(&text, NOW + 30), Err(TokenError::Replayed));
        assert_eq!(TokenError::Replayed.to_string(), "join token already used");
        // Once expired, the replay is refused as expired.
        assert!(matches!(
            v.verify(&text, NOW + 60),
            Err(TokenError::Expired { .. })
        ));
        // Same nonce, other peer: a different token.
        assert!(v.verify(&token(3, NOW + 120, 9), NOW + 60).is_ok());
    }

    #[test]
    fn clock_going_back_does_not_revive_pruned_tokens() {
        let mut v = TokenVerifier::new(secret());
        let text = token(2, NOW + 10, 9);
        assert!(v.verify(&text, NOW).is_ok());
        v.prune(NOW + 20);
        assert!(v.is_empty());
        assert_eq!(
            v.verify(&text, NOW),
            Err(TokenError::Expired {
                expired_at: NOW + 10,
                now: NOW + 20
            })
        );
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let good = token(1, NOW + 60, 1);
        let wrong_version = {
            let mut bytes = hex_decode(&good).expect("hex");
            bytes[0] = 2;
            hex_encode(&bytes)
        };
        let cases = [
            ("empty", String::new()),
            ("odd length", good[..good.len() - 1].to_owned()),
            ("non-hex", format!("{}zz", &good[..good.len() - 2])),
            ("non-ascii", format!("{}é", &good[..good.len() - 2])),
            ("too short", good[..good.len() - 2].to_owned()),
            ("too long", format!("{good}00")),
            ("wrong version", wrong_version),
        ];
        for (what, text) in cases {
            let mut v = TokenVerifier::new(secret());
            let err = v.verify(&text, NOW).expect_err(what);
            assert!(matches!(err, TokenError::Malformed(_)), "{what}: {err:?}");
            assert!(
                err.to_string().starts_with("malformed join token: "),
                "{what}: {err}"
            );
            assert!(v.is_empty());
        }
    }

    #[test]
    fn replay_cache_prunes_expired_nonces() {
        let mut v = TokenVerifier::new(secret());
        for i in 0..10u64 {
            assert!(v.verify(&token(1, NOW + 10 + i, i), NOW).is_ok());
        }
        assert_eq!(v.len(), 10);
        v.prune(NOW + 14); // expiries NOW+10 ..= NOW+14 are gone
        assert_eq!(v.len(), 5);
        // Verifying also prunes.
        assert!(v.verify(&token(1, NOW + 100, 100), NOW + 17).is_ok());
        assert_eq!(v.len(), 3); // NOW+18, NOW+19 and the new one
        v.prune(NOW + 1000);
        assert!(v.is_empty());
    }

    #[test]
    fn capacity_bound_refuses_instead_of_growing() {
        let mut v = TokenVerifier::with_capacity(secret(), 3);
        assert_eq!(v.capacity(), 3);
        for i in 0..3u64 {
            assert!(v.verify(&token(1, NOW + 10, i), NOW).is_ok());
        }
        let err = v.verify(&token(1, NOW + 10, 3), NOW).expect_err("full");
        assert_eq!(err, TokenError::ReplayCacheFull { capacity: 3 });
        assert!(err.to_string().contains("replay cache full"));
        assert_eq!(v.len(), 3);
        // Replays are still reported as replays when full.
        assert_eq!(
            v.verify(&token(1, NOW + 10, 0), NOW),
            Err(TokenError::Replayed)
        );
        // Once entries expire there is room again.
        assert!(v.verify(&token(1, NOW + 20, 3), NOW + 10).is_ok());
        assert_eq!(v.len(), 1);
        // A zero-capacity verifier accepts nothing.
        let mut none = TokenVerifier::with_capacity(secret(), 0);
        assert!(matches!(
            none.verify(&token(1, NOW + 10, 0), NOW),
            Err(TokenError::ReplayCacheFull { capacity: 0 })
        ));
    }

    #[test]
    fn default_capacity() {
        assert_eq!(TokenVerifier::new(secret()).capacity(), 65_536);
    }

    #[test]
    fn secret_hex_round_trip_and_errors() {
        let s = JoinSecret::generate();
        let hex = s.to_hex();
        assert_eq!(hex.len(), 64);
        assert_eq!(JoinSecret::from_hex(&hex).expect("parse"), s);
        assert_eq!(JoinSecret::from_hex(&hex.to_uppercase()).expect("upper"), s);
        assert_eq!(JoinSecret::from_bytes(*s.as_bytes()), s);
        assert_ne!(JoinSecret::try_generate().expect("random"), s);
        for bad in ["", "abc", "zz", &hex[..62], &format!("{hex}00")] {
            let err = JoinSecret::from_hex(bad).expect_err(bad);
            assert!(matches!(err, TokenError::BadSecret(_)), "{bad}: {err}");
        }
        assert_eq!(format!("{s:?}"), "JoinSecret(<redacted>)");
        assert!(!format!("{:?}", TokenVerifier::new(s)).contains(&hex));
    }

    fn room(id: &str) -> RoomId {
        RoomId::new(id).expect("room id")
    }

    #[test]
    fn a_room_token_names_its_room_and_is_checked_against_it() {
        let t = mint_for_room(&secret(), &room("lobby-1"), 4, NOW + 60, Some(11));
        let text = t.to_text();
        assert!(text.starts_with("02"));
        assert_eq!(text.len(), 2 * (TOKEN_LEN + 1 + 7));
        let parsed = JoinToken::from_text(&text).expect("parse");
        assert_eq!(parsed, t);
        assert_eq!(parsed.room(), Some("lobby-1"));
        assert_eq!(parsed.peer(), 4);
        // The longest room id fits.
        let long = mint_for_room(&secret(), &room(&"r".repeat(64)), 4, NOW + 60, None);
        assert_eq!(JoinToken::from_text(&long.to_text()).expect("long"), long);

        let mut lobby = TokenVerifier::for_room(secret(), room("lobby-1"));
        assert_eq!(lobby.verify(&text, NOW).expect("its room").peer(), 4);
        assert_eq!(lobby.verify(&text, NOW), Err(TokenError::Replayed));

        // Another room, a hosted session, and a version-1 token at a room: each refused
        // with a reason naming the rooms.
        let mut other = TokenVerifier::for_room(secret(), room("arena"));
        let err = other.verify(&text, NOW).expect_err("another room");
        assert_eq!(
            err.to_string(),
            "join token is for room \"lobby-1\", not \"arena\""
        );
        let mut hosted = TokenVerifier::new(secret());
        let err = hosted.verify(&text, NOW).expect_err("a hosted session");
        assert!(
            err.to_string()
                .contains("for room \"lobby-1\" on a room server; this host runs a single session"),
            "{err}"
        );
        let old = token(4, NOW + 60, 12);
        let err = lobby
            .verify(&old, NOW)
            .expect_err("a version-1 token at a room");
        assert!(matches!(err, TokenError::WrongRoom { token: None, .. }));
        assert!(
            err.to_string()
                .starts_with("join token names no room (a version-1 token"),
            "{err}"
        );
        assert!(other.is_empty() && hosted.is_empty());
    }

    #[test]
    fn a_room_tokens_room_is_signed_and_bounded() {
        let text = mint_for_room(&secret(), &room("lobby"), 4, NOW + 60, Some(11)).to_text();
        // Every byte after the version, the room's length and name included.
        let len = text.len() / 2;
        for index in 1..len {
            let mut v = TokenVerifier::for_room(secret(), room("lobby"));
            let err = v
                .verify(&flip_byte(&text, index), NOW)
                .expect_err("altered");
            assert!(
                matches!(err, TokenError::Forged | TokenError::Malformed(_)),
                "byte {index}: {err:?}"
            );
        }
        // A room name that is not a room id, a length past the end, and a text longer
        // than any token are malformed.
        let mut bytes = hex_decode(&text).expect("hex");
        bytes[20] = b'/';
        assert!(matches!(
            JoinToken::from_text(&hex_encode(&bytes)),
            Err(TokenError::Malformed(_))
        ));
        let mut bytes = hex_decode(&text).expect("hex");
        bytes[19] = 200;
        assert!(matches!(
            JoinToken::from_text(&hex_encode(&bytes)),
            Err(TokenError::Malformed(_))
        ));
        let huge = "02".repeat(4096);
        let err = JoinToken::from_text(&huge).expect_err("huge");
        assert!(
            err.to_string().contains("hex digits, got 8192 characters"),
            "{err}"
        );
    }

    #[test]
    fn tag_is_hmac_sha256_of_documented_message() {
        let t = mint(&secret(), 0x0102, 0x0304, Some(0x0506));
        let mut msg = b"theta-join-v1".to_vec();
        msg.extend_from_slice(&0x0102u16.to_be_bytes());
        msg.extend_from_slice(&0x0304u64.to_be_bytes());
        msg.extend_from_slice(&0x0506u64.to_be_bytes());
        let expected = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &[7u8; 32]), &msg);
        assert_eq!(&t.tag[..], expected.as_ref());
        assert_eq!(&t.to_text()[..38], "01010200000000000003040000000000000506");

        let t = mint_for_room(&secret(), &room("ab"), 0x0102, 0x0304, Some(0x0506));
        let mut msg = b"theta-join-v2".to_vec();
        msg.extend_from_slice(&0x0102u16.to_be_bytes());
        msg.extend_from_slice(&0x0304u64.to_be_bytes());
        msg.extend_from_slice(&0x0506u64.to_be_bytes());
        msg.extend_from_slice(&[2, b'a', b'b']);
        let expected = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &[7u8; 32]), &msg);
        assert_eq!(&t.tag[..], expected.as_ref());
        assert_eq!(
            &t.to_text()[..44],
            "02010200000000000003040000000000000506026162"
        );
    }
}

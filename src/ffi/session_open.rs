//! Opening sessions over QUIC: the host calls (a bind address, a self-signed or PEM
//! certificate) and the join calls (an address or a host name, a pinned fingerprint or CA
//! roots), with the addresses the C side gives.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::mpsc;

use super::background;
use super::boundary::{boundary, FfiError, FfiResult};
use super::session::{
    insert, registry_of, secret_in, take_world, text_in, PendingJoin, SessionObject, ThetaSession,
    THETA_FINGERPRINT_LEN,
};
use super::session_config::{config_in, ThetaSessionConfig};
use super::world::ThetaWorld;
use super::{bytes_in, check_out, write_out, ThetaStatus};
use crate::net::session::{Session, SessionError};
use crate::net::tls::{Fingerprint, HostIdentity, ServerTrust};

fn invalid(message: impl Into<String>) -> FfiError {
    FfiError::new(ThetaStatus::InvalidArgument, message)
}

/// A certificate, key or CA that is unusable: `THETA_STATUS_TLS`.
fn tls_error(error: crate::net::tls::TlsError) -> FfiError {
    SessionError::Tls(error).into()
}

/// A socket address as the C side gives it: a literal one, or a host name to resolve.
enum Address {
    /// `"127.0.0.1:7000"`, `"[::1]:7000"`.
    Literal(SocketAddr),
    /// `"name:port"`, with a port that parses.
    Name(String),
}

/// Reads a socket address, `"127.0.0.1:7000"` or `"[::1]:7000"`, or a `"name:port"`
/// (not resolved here).
///
/// # Safety
/// As `bytes_in`.
unsafe fn address_text_in(ptr: *const u8, len: usize, what: &str) -> FfiResult<Address> {
    // SAFETY: forwarded contract.
    let text = unsafe { text_in(ptr, len, what) }?.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(Address::Literal(addr));
    }
    let name_and_port = text
        .rsplit_once(':')
        .filter(|(name, port)| !name.is_empty() && port.parse::<u16>().is_ok());
    match name_and_port {
        Some(_) => Ok(Address::Name(text.to_owned())),
        None => Err(invalid(format!(
            "{what} {text:?} is not an address (host:port)"
        ))),
    }
}

/// Reads a socket address; a `"name:port"` is resolved here (a host's bind address, which
/// names this machine: `localhost` or its own name, answered without the network).
///
/// # Safety
/// As `bytes_in`.
unsafe fn address_in(ptr: *const u8, len: usize, what: &str) -> FfiResult<SocketAddr> {
    // SAFETY: forwarded contract.
    match unsafe { address_text_in(ptr, len, what) }? {
        Address::Literal(addr) => Ok(addr),
        Address::Name(text) => first_address(&text)
            .map_err(|e| invalid(format!("{what} {text:?} does not resolve: {e}"))),
    }
}

/// The first address `text` (`name:port`) resolves to.
fn first_address(text: &str) -> std::io::Result<SocketAddr> {
    text.to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))
}

/// Hosts a session on `bind` (UTF-8, e.g. `"127.0.0.1:7000"`; port 0 picks a free port,
/// see `theta_session_local_port`) with a fresh self-signed certificate (clients pin its
/// `theta_session_fingerprint`) and writes its handle to `out_session`.
///
/// The world is MOVED into the session, which holds the authoritative state from now on:
/// on success the `world` handle is freed (later calls with it give
/// `THETA_STATUS_INVALID_HANDLE`); write through `theta_session_spawn`/`_set`/... instead.
/// A world that another thread is using right now is refused with
/// `THETA_STATUS_INVALID_ARGUMENT` and stays valid. Entities spawned by the host belong to
/// the world's `local_peer`.
///
/// `secret_hex` is the join secret as 64 hex digits, to keep tokens valid across host
/// restarts; NULL with `secret_hex_len` 0 generates a random one. Either way the secret
/// never leaves the session: invite clients with `theta_session_mint_token`. `config` may
/// be NULL for the defaults; one with an unknown `ThetaCodec` or a zstd level outside
/// zstd's range is `THETA_STATUS_INVALID_ARGUMENT` and leaves the world valid.
///
/// The session runs one network thread of its own; `theta_session_free` closes its
/// connections and joins it. Any failure (a bad or busy address, an invalid config)
/// leaves the world valid and unchanged under its handle.
///
/// # Safety
/// `bind` must point to `bind_len` readable bytes; `secret_hex` to `secret_hex_len`
/// readable bytes (or be NULL when that is 0); `config` must be NULL or point to a
/// `ThetaSessionConfig`; `out_session` to a writable `ThetaSession`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_host(
    bind: *const u8,
    bind_len: usize,
    world: ThetaWorld,
    secret_hex: *const u8,
    secret_hex_len: usize,
    config: *const ThetaSessionConfig,
    out_session: *mut ThetaSession,
) -> ThetaStatus {
    boundary("theta_session_host", || {
        // SAFETY: per the contract.
        unsafe {
            host_with(
                bind,
                bind_len,
                world,
                secret_hex,
                secret_hex_len,
                config,
                out_session,
                || HostIdentity::self_signed(&[]).map_err(tls_error),
            )
        }
    })
}

/// Hosts as `theta_session_host` does, presenting the certificate chain `cert_chain_pem`
/// (leaf first) and its private key `key_pem` (both PEM text) instead of a self-signed
/// certificate, so clients can verify it against a CA (`theta_session_join_ca`) or pin
/// it. A chain or key that does not parse, or a key that does not match the leaf, is
/// `THETA_STATUS_TLS` and leaves the world valid.
///
/// # Safety
/// As `theta_session_host`; `cert_chain_pem` and `key_pem` must point to their lengths of
/// readable bytes.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn theta_session_host_pem(
    bind: *const u8,
    bind_len: usize,
    world: ThetaWorld,
    cert_chain_pem: *const u8,
    cert_chain_pem_len: usize,
    key_pem: *const u8,
    key_pem_len: usize,
    secret_hex: *const u8,
    secret_hex_len: usize,
    config: *const ThetaSessionConfig,
    out_session: *mut ThetaSession,
) -> ThetaStatus {
    boundary("theta_session_host_pem", || {
        // SAFETY: per the contract.
        let chain = unsafe { text_in(cert_chain_pem, cert_chain_pem_len, "cert_chain_pem") }?;
        // SAFETY: per the contract.
        let key = unsafe { text_in(key_pem, key_pem_len, "key_pem") }?;
        // SAFETY: per the contract.
        unsafe {
            host_with(
                bind,
                bind_len,
                world,
                secret_hex,
                secret_hex_len,
                config,
                out_session,
                || HostIdentity::from_pem(chain, key).map_err(tls_error),
            )
        }
    })
}

/// The body of the host calls, with the identity made by `identity` once the arguments
/// are checked and before the world is taken.
///
/// # Safety
/// As `theta_session_host`.
#[allow(clippy::too_many_arguments)]
unsafe fn host_with(
    bind: *const u8,
    bind_len: usize,
    world: ThetaWorld,
    secret_hex: *const u8,
    secret_hex_len: usize,
    config: *const ThetaSessionConfig,
    out_session: *mut ThetaSession,
    identity: impl FnOnce() -> FfiResult<HostIdentity>,
) -> FfiResult {
    check_out(out_session, "out_session")?;
    // SAFETY: per the contract.
    let bind = unsafe { address_in(bind, bind_len, "bind") }?;
    // SAFETY: per the contract.
    let secret = unsafe { secret_in(secret_hex, secret_hex_len) }?;
    // SAFETY: per the contract.
    let settings = unsafe { config_in(config) }?;
    let identity = identity()?;
    let fingerprint = identity.fingerprint();
    let session = take_world(world, |w| {
        Session::host(bind, w, &identity, secret.clone(), settings)
    })?;
    let handle = insert(SessionObject::new(session, Some(secret), Some(fingerprint)));
    // SAFETY: checked non-NULL.
    unsafe { write_out(out_session, handle) };
    Ok(())
}

/// Joins the host at `addr` (UTF-8, e.g. `"192.168.1.20:7000"`, or `"name:port"`) and
/// writes the session's handle to `out_session`. The host's
/// certificate must have the SHA-256 `fingerprint` (`THETA_FINGERPRINT_LEN` bytes, from
/// the host's `theta_session_fingerprint`); `token` is a join token's text (from the
/// host's `theta_session_mint_token`). `registry_world` is NOT consumed: only its
/// component types are read, and they must equal the host's. `config` may be NULL; an
/// invalid one is refused as by `theta_session_host`. A client decodes whatever codec the
/// host sends; its own codecs apply to what it sends.
///
/// Returns at once, before any packet was exchanged and before a host name is resolved
/// (a background thread resolves it; until it has, calls that need the connection give
/// `THETA_STATUS_NOT_CONNECTED`, while tick, poll, stats and free work as usual): the
/// outcome arrives as a `THETA_SESSION_EVENT_KIND_JOINED` or
/// `THETA_SESSION_EVENT_KIND_DISCONNECTED` event (with the reason, e.g. an expired, forged
/// or malformed token, a fingerprint or registry mismatch, a name that did not resolve)
/// from `theta_session_poll_events` after some `theta_session_tick` calls. The session
/// runs one network thread of its own; `theta_session_free` or `theta_session_close`
/// leaves and joins it.
///
/// # Safety
/// `addr` must point to `addr_len` readable bytes; `fingerprint` to
/// `THETA_FINGERPRINT_LEN` readable bytes; `token` to `token_len` readable bytes;
/// `config` must be NULL or point to a `ThetaSessionConfig`; `out_session` to a writable
/// `ThetaSession`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_join(
    addr: *const u8,
    addr_len: usize,
    fingerprint: *const u8,
    token: *const u8,
    token_len: usize,
    registry_world: ThetaWorld,
    config: *const ThetaSessionConfig,
    out_session: *mut ThetaSession,
) -> ThetaStatus {
    boundary("theta_session_join", || {
        check_out(out_session, "out_session")?;
        if fingerprint.is_null() {
            return Err(FfiError::null("fingerprint"));
        }
        // SAFETY: non-NULL and THETA_FINGERPRINT_LEN readable bytes per the contract.
        let pinned = unsafe { bytes_in(fingerprint, THETA_FINGERPRINT_LEN, "fingerprint") }?;
        let mut bytes = [0u8; THETA_FINGERPRINT_LEN];
        bytes.copy_from_slice(pinned);
        let fingerprint = Fingerprint(bytes);
        // SAFETY: per the contract.
        unsafe {
            join_with(
                addr,
                addr_len,
                ServerTrust::Fingerprint(fingerprint),
                None,
                token,
                token_len,
                registry_world,
                config,
                out_session,
            )
        }
    })
}

/// Joins as `theta_session_join` does, but verifies the host's certificate chain against
/// the CA certificates in `ca_pem` (PEM text, one or more) for the host name `server_name`
/// (UTF-8) instead of pinning a fingerprint. `theta_session_fingerprint` then gives all
/// zeros. CA text that does not parse, or holds no certificate, is `THETA_STATUS_TLS`; a
/// host whose chain does not verify is refused during the handshake, reported as a
/// `DISCONNECTED` event.
///
/// # Safety
/// As `theta_session_join`; `ca_pem` and `server_name` must point to their lengths of
/// readable bytes.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn theta_session_join_ca(
    addr: *const u8,
    addr_len: usize,
    ca_pem: *const u8,
    ca_pem_len: usize,
    server_name: *const u8,
    server_name_len: usize,
    token: *const u8,
    token_len: usize,
    registry_world: ThetaWorld,
    config: *const ThetaSessionConfig,
    out_session: *mut ThetaSession,
) -> ThetaStatus {
    boundary("theta_session_join_ca", || {
        check_out(out_session, "out_session")?;
        // SAFETY: per the contract.
        let ca = unsafe { text_in(ca_pem, ca_pem_len, "ca_pem") }?;
        // SAFETY: per the contract.
        let name = unsafe { text_in(server_name, server_name_len, "server_name") }?;
        use rustls::pki_types::pem::PemObject;
        let roots = rustls::pki_types::CertificateDer::pem_slice_iter(ca.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| FfiError::new(ThetaStatus::Tls, format!("ca_pem: {e}")))?;
        if roots.is_empty() {
            return Err(FfiError::new(
                ThetaStatus::Tls,
                "ca_pem holds no certificate",
            ));
        }
        // SAFETY: per the contract.
        unsafe {
            join_with(
                addr,
                addr_len,
                ServerTrust::CaRoots(roots),
                Some(name.to_owned()),
                token,
                token_len,
                registry_world,
                config,
                out_session,
            )
        }
    })
}

/// The body of the join calls.
///
/// # Safety
/// As `theta_session_join` for the pointers it takes.
#[allow(clippy::too_many_arguments)]
unsafe fn join_with(
    addr: *const u8,
    addr_len: usize,
    trust: ServerTrust,
    server_name: Option<String>,
    token: *const u8,
    token_len: usize,
    registry_world: ThetaWorld,
    config: *const ThetaSessionConfig,
    out_session: *mut ThetaSession,
) -> FfiResult {
    // SAFETY: per the contract.
    let addr = unsafe { address_text_in(addr, addr_len, "addr") }?;
    // SAFETY: per the contract.
    let token = unsafe { text_in(token, token_len, "token") }?;
    // SAFETY: per the contract.
    let mut settings = unsafe { config_in(config) }?;
    if let Some(name) = server_name {
        settings.server_name = name;
    }
    let fingerprint = match &trust {
        ServerTrust::Fingerprint(pinned) => *pinned,
        ServerTrust::CaRoots(_) => Fingerprint([0; THETA_FINGERPRINT_LEN]),
    };
    let registry = registry_of(registry_world)?;
    let object = match addr {
        Address::Literal(addr) => SessionObject::new(
            Session::join(addr, &trust, token, &registry, settings)?,
            None,
            Some(fingerprint),
        ),
        Address::Name(name) => {
            let (tell, answer) = mpsc::sync_channel(1);
            let lookup = name.clone();
            background::spawn("theta-resolve", move || {
                // The session may be gone by now: then nobody listens, which is fine.
                let _ = tell.send(first_address(&lookup));
            });
            SessionObject::resolving(
                answer,
                PendingJoin {
                    name,
                    trust,
                    token: token.to_owned(),
                    registry,
                    settings,
                },
                fingerprint,
            )
        }
    };
    let handle = insert(object);
    // SAFETY: checked non-NULL by the callers.
    unsafe { write_out(out_session, handle) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> FfiResult<Address> {
        // SAFETY: a valid byte range.
        unsafe { address_text_in(text.as_ptr(), text.len(), "addr") }
    }

    #[test]
    fn literal_addresses_parse_here_and_names_wait_for_a_resolver() {
        assert!(matches!(address("127.0.0.1:7000"), Ok(Address::Literal(a)) if a.port() == 7000));
        assert!(matches!(address(" [::1]:9 "), Ok(Address::Literal(a)) if a.is_ipv6()));
        assert!(
            matches!(address("host.example:7000"), Ok(Address::Name(n)) if n == "host.example:7000")
        );
        for bad in ["", "no-port", ":7000", "name:99999", "name:port"] {
            let err = address(bad).err().expect(bad);
            assert_eq!(err.status, ThetaStatus::InvalidArgument, "{bad}");
        }
    }
}
